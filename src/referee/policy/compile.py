"""Policy rules compiled for the hot path.

``decide`` runs for every item, so the per-rule work that does not depend on
the item — expanding ``"*"``, turning lists into sets, reading the threshold —
is done once per (surface, country) and cached on the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from referee.policy.schema import Rule


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    categories: frozenset[str]
    detectors: frozenset[str] | None
    #: None means ``model_default``: take the threshold from the signal.
    threshold: float | None


def compile_rules(rules: tuple[Rule, ...], all_categories: tuple[str, ...]) -> tuple[CompiledRule, ...]:
    return tuple(
        CompiledRule(
            rule=r,
            categories=frozenset(all_categories if r.categories == "*" else r.categories),
            detectors=None if r.detectors is None else frozenset(r.detectors),
            threshold=None if r.threshold == "model_default" else float(r.threshold),
        )
        for r in rules
    )
