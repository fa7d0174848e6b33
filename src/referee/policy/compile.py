"""Policy rules compiled for the hot path.

``decide`` runs for every item, so the per-rule work that does not depend on
the item — expanding ``"*"``, turning lists into sets, reading the threshold —
is done once per (surface, country) and cached on the policy. Whether any rule
reads audio segments is decided here too (``needs_segments``), so an item under
a policy without segment rules pays nothing for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from referee.policy.schema import Rule, Segments


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    categories: tuple[str, ...]
    detectors: frozenset[str] | None
    #: None means ``model_default``: take the threshold from the signal.
    threshold: float | None
    #: None: the rule reads signal scores; else it reads time-coded evidence (``Segments``).
    segments: Segments | None = None


class CompiledRules(tuple[CompiledRule, ...]):
    """A surface's compiled rules, and whether any of them reads audio segments."""

    needs_segments: bool

    def __new__(cls, rules: tuple[CompiledRule, ...] = ()) -> Self:
        self = super().__new__(cls, rules)
        self.needs_segments = any(r.segments is not None for r in rules)
        return self


def compile_rules(rules: tuple[Rule, ...], all_categories: tuple[str, ...]) -> CompiledRules:
    return CompiledRules(tuple(
        CompiledRule(
            rule=r,
            # A tuple in the policy's order, not a set: the reason's signals and, on a tie, its
            # category follow this order, and a set's order changes with the hash seed.
            categories=tuple(dict.fromkeys(all_categories if r.categories == "*" else r.categories)),
            detectors=None if r.detectors is None else frozenset(r.detectors),
            threshold=None if r.threshold == "model_default" else float(r.threshold),
            segments=r.segments,
        )
        for r in rules
    ))
