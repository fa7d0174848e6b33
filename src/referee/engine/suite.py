"""Runs policy test cases (text + surface + country → expected action) through an engine.

The same case format serves ``referee policy test`` (cases in or beside the
policy) and functional suites in evaluation, so a team writes a case once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from referee.engine.run import Engine
from referee.model import ContentItem, Decision
from referee.policy.schema import PolicyTest


@dataclass(frozen=True)
class CaseResult:
    case: PolicyTest
    decision: Decision
    passed: bool
    why: str

    @property
    def label(self) -> str:
        return self.case.name or self.case.text[:60]


def run_cases(engine: Engine, cases: Sequence[PolicyTest]) -> list[CaseResult]:
    items = [
        ContentItem(id=f"policy-test-{i}", text=c.text, surface=c.surface, country=c.country)
        for i, c in enumerate(cases)
    ]
    results = []
    for case, decision in zip(cases, engine.moderate_many(items)):
        problems = []
        if case.expect is not None and decision.action is not case.expect:
            problems.append(f"expected {case.expect.value}, got {decision.action.value}")
        if case.expect_categories is not None and set(case.expect_categories) != set(decision.categories):
            problems.append(f"expected categories {sorted(case.expect_categories)}, got {list(decision.categories)}")
        why = "; ".join(problems) or f"{decision.action.value}"
        if problems and decision.reasons:
            why += " (" + "; ".join(r.message for r in decision.reasons[:2]) + ")"
        results.append(CaseResult(case, decision, not problems, why))
    return results
