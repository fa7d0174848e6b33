from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from referee.errors import PolicyError
from referee.model import Action
from referee.policy import Policy
from referee.policy.diff import diff
from referee.policy.lint import lint_file
from tests.conftest import REPO, SMALL_POLICY


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_default_policy_loads_and_lints_clean() -> None:
    path = REPO / "policies" / "default.yaml"
    policy = Policy.from_file(path)
    assert {"hate", "harassment", "sexual", "sexual_minors", "violence", "self_harm", "spam",
            "illegal_goods"} <= set(policy.categories)
    assert [p for p in lint_file(path) if p.severity == "error"] == []


def test_unknown_surface_falls_back_to_strict_default(small_policy: Policy) -> None:
    rules = small_policy.rules_for("brand_new_feature")
    assert [r.id for r in rules] == ["default.any"]


def test_jurisdiction_layer_replaces_rule_by_id(small_policy: Policy) -> None:
    us = {r.id: r for r in small_policy.rules_for("comment", "US")}
    de = {r.id: r for r in small_policy.rules_for("comment", "de")}
    assert us["comment.hate.remove"].threshold == 0.9
    assert de["comment.hate.remove"].threshold == 0.7
    assert set(us) == set(de)


def test_schema_errors_carry_line_and_field(tmp_path: Path) -> None:
    bad = SMALL_POLICY.replace("threshold: 0.9, action: remove", "threshold: 1.5, action: obliterate")
    path = write(tmp_path, bad)
    with pytest.raises(PolicyError) as info:
        Policy.from_file(path)
    problems = info.value.problems
    by_path = {p.path: p for p in problems}
    line = next(i for i, l in enumerate(bad.splitlines(), 1) if "1.5" in l)
    assert by_path["surfaces.comment.rules[0].threshold"].line == line
    assert "between 0 and 1" in by_path["surfaces.comment.rules[0].threshold"].message
    assert by_path["surfaces.comment.rules[0].action"].line == line
    assert "obliterate" in by_path["surfaces.comment.rules[0].action"].message
    assert "hold_for_review" in by_path["surfaces.comment.rules[0].action"].hint
    assert str(problems[0]).startswith(f"{path}:{line}:")


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "id: x\nversion: 1\ncategories: [unclosed\n")
    with pytest.raises(PolicyError) as info:
        Policy.from_file(path)
    assert info.value.problems[0].line is not None
    assert "YAML" in str(info.value)


LINT_ME = """\
id: lintme
version: "2"
categories:
  hate: {description: hate}
  spam: {description: spam}
surfaces:
  default:
    rules:
      - {id: d, categories: "*", threshold: 0.5, action: hold_for_review}
  comment:
    rules:
      - {id: c.hate, categories: hat, threshold: 0.5, action: remove}
      - {id: c.spam.review, categories: spam, threshold: 0.3, action: remove}
      - {id: c.spam.label, categories: spam, threshold: 0.6, action: label}
  comment:
    rules: []
jurisdictions:
  EU:
    countries: [DE]
    surfaces:
      podcast: {rules: []}
"""


def test_lint_reports_each_problem_with_line_and_hint(tmp_path: Path) -> None:
    problems = lint_file(write(tmp_path, LINT_ME))
    text = "\n".join(map(str, problems))
    lines = LINT_ME.splitlines()

    def line_of(snippet: str, nth: int = 1) -> int:
        hits = [i for i, l in enumerate(lines, 1) if snippet in l]
        return hits[nth - 1]

    dup = [p for p in problems if "duplicate surface 'comment'" in p.message]
    assert dup and dup[0].line == line_of("  comment:", 2)
    # The duplicate key means YAML keeps the empty second block, so the rule-level
    # checks run on a clean copy below.
    assert "podcast" in text and "unreachable" in text


def test_lint_unknown_category_and_unreachable_rule(tmp_path: Path) -> None:
    src = LINT_ME.replace("  comment:\n    rules: []\n", "")
    problems = lint_file(write(tmp_path, src))
    lines = src.splitlines()
    unknown = [p for p in problems if "unknown category 'hat'" in p.message]
    assert unknown and unknown[0].line == next(i for i, l in enumerate(lines, 1) if "hat," in l)
    assert "did you mean 'hate'" in unknown[0].hint
    unreachable = [p for p in problems if "'c.spam.label' is unreachable" in p.message]
    assert unreachable and unreachable[0].line == next(i for i, l in enumerate(lines, 1) if "c.spam.label" in l)


def test_lint_cli_exits_nonzero(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from referee.cli import app

    result = CliRunner().invoke(app, ["policy", "lint", str(write(tmp_path, LINT_ME))])
    assert result.exit_code == 1
    assert "duplicate surface 'comment'" in result.output and ":15:" in result.output
    clean = CliRunner().invoke(app, ["policy", "lint", str(REPO / "policies" / "default.yaml")])
    assert clean.exit_code == 0, clean.output


def test_diff_shows_threshold_and_rule_changes(small_policy: Policy) -> None:
    newer = Policy.from_yaml(
        SMALL_POLICY.replace('version: "1"', 'version: "2"')
        .replace("threshold: 0.9, action: remove", "threshold: 0.8, action: remove")
        .replace("      - {id: comment.spam, categories: spam, threshold: 0.5, action: limit_reach, on_error: allow}\n", "")
    )
    changes = {c.where: c for c in diff(small_policy, newer)}
    assert changes["version"].old == "1" and changes["version"].new == "2"
    moved = changes["surfaces.comment.rules[comment.hate.remove].threshold"]
    assert (moved.old, moved.new) == (0.9, 0.8)
    assert changes["surfaces.comment.rules[comment.spam]"].kind == "removed"
    assert diff(small_policy, small_policy) == []


def test_rule_threshold_model_default_is_allowed() -> None:
    p = Policy.from_yaml(SMALL_POLICY.replace("threshold: 0.5, action: hold_for_review}", "threshold: model_default, action: hold_for_review}"))
    assert p.rules_for("comment")[1].threshold == "model_default"
    assert p.rules_for("comment")[1].action is Action.hold_for_review


def test_default_policy_passes_its_own_tests_with_the_lexicon() -> None:
    """The shipped policy's unit tests hold with the detector every install has."""
    from referee.engine import Engine
    from referee.engine.suite import run_cases

    policy = Policy.from_file(REPO / "policies" / "default.yaml")
    with Engine.from_policy(policy, only=["lexicon"]) as engine:
        results = run_cases(engine, policy.tests())
    assert len(results) >= 10
    assert [r.why for r in results if not r.passed] == []
