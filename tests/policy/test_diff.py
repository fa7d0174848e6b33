"""``policy diff`` shows every enforcement change, sections added to the schema included."""

from __future__ import annotations

from referee.policy import Policy
from referee.policy.diff import diff
from tests.conftest import SMALL_POLICY

PLAN = """\
plan:
  - {id: cheap, detectors: [keyword]}
"""


def test_new_top_level_fields_are_diffed() -> None:
    old = Policy.from_yaml(SMALL_POLICY)
    new = Policy.from_yaml(SMALL_POLICY + "on_uninspected: remove\n" + PLAN)
    changes = {c.where: c for c in diff(old, new)}
    assert (changes["on_uninspected"].old, changes["on_uninspected"].new) == ("hold_for_review", "remove")
    assert changes["plan"].kind == "added" and changes["plan"].new[0]["id"] == "cheap"


def test_plan_stages_are_diffed_by_id() -> None:
    old = Policy.from_yaml(SMALL_POLICY + PLAN)
    new = Policy.from_yaml(SMALL_POLICY + PLAN.replace("cheap", "first"))
    changes = {c.where: c.kind for c in diff(old, new)}
    assert changes == {"plan.cheap": "removed", "plan.first": "added"}
    assert diff(old, old) == []
