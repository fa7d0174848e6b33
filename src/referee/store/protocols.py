"""The store, split by role: small protocols, each with a SQL and an in-memory implementation.

- ``DecisionLog``: append-only decisions. Each record gets a store-assigned,
  gap-free sequence number; a decision can be superseded at most once, so an
  item's decisions form a chain whose last link is its *head*.
- ``ContentStore``: the items' content (text, media references) by content
  hash, apart from the decisions, so retention and erasure can empty it
  without touching the log.
- ``KeyStore``: API keys (stored hashed) and their scopes.
- ``ShadowStore``: what shadow candidates would have decided (never enforced, never
  in the decision log) and experiments' exposures and configurations.

The engine needs only ``heads`` and ``append`` (``engine.DecisionSink``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from referee.model import Action, ContentItem, Decision, Record
from referee.model.base import Frozen


class DecisionLog(Protocol):
    def append(self, pairs: Sequence[tuple[ContentItem, Decision]]) -> list[Decision]:
        """Store decisions and their items' content in one transaction, in order. A
        decision whose id is stored already, or whose ``supersedes`` another record
        superseded first, comes back as the item's stored head; nothing forks."""
        ...

    def get(self, decision_id: str) -> Decision | None: ...

    def get_many(self, decision_ids: Sequence[str]) -> dict[str, Decision]: ...

    def head(self, item_id: str) -> Decision | None: ...

    def heads(self, item_ids: Sequence[str]) -> dict[str, Decision]: ...

    def history(self, item_id: str) -> list[Record]:
        """Every record about an item, oldest first."""
        ...

    def pending_heads(self, limit: int = 100) -> list[Decision]:
        """Heads (decisions nothing supersedes) with a plan stage still ``pending``, oldest
        first: the durable queue of async stages that have not written their decision."""
        ...

    def list(self, since: datetime | None = None, action: str | None = None, limit: int = 100) -> list[Decision]:
        """Newest first."""
        ...

    def records(self, after_seq: int = 0, limit: int | None = None) -> Iterator[Record]:
        """Records in sequence order, from ``after_seq + 1`` (exports, the tamper-evident chain)."""
        ...


class ContentStore(Protocol):
    def put(self, items: Sequence[ContentItem]) -> None: ...

    def get(self, item_id: str, content_hash: str) -> ContentItem | None:
        """The item as it was moderated; None when unknown or erased."""
        ...

    def contexts(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """The ``context`` of each (item id, content hash) that ``get`` would return, in one
        read and without the parts (review priority reads reach from it); absent keys are
        unknown or erased."""
        ...

    def erase(self, content_hash: str) -> bool:
        """Forget the content (retention, erasure requests); decisions stay. True if it was there."""
        ...


class KeyStore(Protocol):
    def create_key(self, name: str, scopes: list[str]) -> str: ...

    def check_key(self, key: str) -> tuple[str, frozenset[str]]: ...

    def revoke_key(self, key_id: str) -> None: ...

    def list_keys(self) -> list[dict[str, Any]]: ...


class ShadowDecision(Frozen):
    """A shadow candidate's decision about an item, beside the champion decision it shadowed.

    Stored apart from the decision log: nothing enforces, reviews, seals or reports it."""

    candidate_id: str
    champion_decision_id: str
    champion_action: Action
    decision: Decision


class Exposure(Frozen):
    """A unit (an author, or an item) saw an experiment's arm: that arm's engine decided ``item_id``."""

    experiment: str
    unit: str
    arm: str
    item_id: str
    decision_id: str
    ts: datetime


class ShadowStore(Protocol):
    def add_shadow(self, rows: Sequence[ShadowDecision]) -> int:
        """Store shadow decisions; one already stored for its (candidate, champion decision)
        is skipped. Returns how many were new."""
        ...

    def shadow_decisions(self, candidate_id: str, since: datetime | None = None,
                         until: datetime | None = None) -> list[ShadowDecision]:
        """The candidate's shadow decisions created in [since, until), oldest first."""
        ...

    def shadow_candidates(self) -> list[str]:
        """Every candidate id with shadow decisions, sorted."""
        ...

    def register_experiment(self, name: str, config: dict[str, Any]) -> None:
        """Record an experiment's configuration. The same again is a no-op; a different
        configuration under a name already running raises StoreError (an experiment whose
        arms change mid-run cannot be analysed: start one under a new name)."""
        ...

    def experiment_config(self, name: str) -> dict[str, Any] | None: ...

    def log_exposures(self, rows: Sequence[Exposure]) -> int:
        """Store exposures; one per (experiment, unit, item), later ones skipped. Returns how many were new."""
        ...

    def exposures(self, experiment: str, since: datetime | None = None,
                  until: datetime | None = None) -> list[Exposure]:
        """The experiment's exposures with ``ts`` in [since, until), oldest first."""
        ...

    def erase_unit(self, unit: str) -> int:
        """Forget every exposure of a unit (an author's erasure request). Returns how many went."""
        ...
