"""Decision identity: which inputs make a decision, and the id of each link in its chain.

An automated decision is a function of the item's content, the policy's
*content* (its sha256, not only its version label: editing a threshold
without bumping ``version`` must not return the old decision), the detector
versions and the engine configuration. ``input_key`` hashes exactly those;
``decision_id`` adds the decision it supersedes, so every link of an item's
chain has its own id even when the inputs repeat (a provisional decision and
its recovery share an input key, not an id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

_SEP = "\x1f"  # unit separator: cannot appear in ids, hashes or versions by accident


def _digest(parts: list[str], prefix: str) -> str:
    return prefix + hashlib.sha256(_SEP.join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def input_key(
    item_id: str,
    content_hash: str,
    country: str | None,
    policy_id: str,
    policy_version: str,
    policy_sha256: str,
    detector_versions: Mapping[str, str],
    engine_config_id: str,
) -> str:
    parts = [item_id, content_hash, country or "", policy_id, policy_version, policy_sha256, engine_config_id]
    parts += [f"{name}={version}" for name, version in sorted(detector_versions.items())]
    return _digest(parts, "in_")


def decision_id(input_key: str, supersedes: str | None, source: str = "automated", salt: str = "") -> str:
    """The id of the decision made from ``input_key`` that replaces ``supersedes``.

    Automated decisions are deterministic (no ``salt``), which makes moderation
    idempotent; a human verdict passes a salt (its reviewer and time) because
    two verdicts on the same decision are two different acts."""
    return _digest([input_key, supersedes or "", source, salt], "dec_")
