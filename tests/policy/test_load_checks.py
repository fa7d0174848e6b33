"""Loading a policy fails closed: every problem lint calls an error refuses the load.

Each test here loaded (and ran) before loading ran lint's checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from referee.errors import PolicyError
from referee.policy import Policy
from referee.policy.lint import ERROR, WARNING, check_text, lint_file
from referee.policy.load import load_tests

GOLDEN = Path(__file__).parent / "golden"

BASE = """\
id: p
version: "1"
categories:
  hate: {description: hate}
  spam: {description: spam}
detectors:
  lexicon: {}
surfaces:
  default:
    rules:
      - {id: d, categories: "*", threshold: 0.5, action: hold_for_review}
  comment:
    rules:
      - {id: c.hate, categories: hate, threshold: 0.8, action: remove}
"""


def refused(text: str, source: str = "p.yaml") -> PolicyError:
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(text, source=source)
    return info.value


def line(text: str, snippet: str, nth: int = 1) -> int:
    return [i for i, l in enumerate(text.splitlines(), 1) if snippet in l][nth - 1]


def assert_golden(name: str, text: str) -> None:
    """Compare with golden/<name>; REFEREE_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("REFEREE_UPDATE_GOLDEN"):
        path.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == path.read_text(encoding="utf-8")


def test_base_policy_loads_and_lints_clean(tmp_path: Path) -> None:
    Policy.from_yaml(BASE)
    path = tmp_path / "p.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert lint_file(path) == []


def test_policy_without_default_surface_refuses_to_load() -> None:
    text = BASE.replace("  default:\n    rules:\n      - {id: d, categories: \"*\", threshold: 0.5, action: hold_for_review}\n", "")
    err = refused(text)
    [problem] = err.problems
    assert (problem.line, problem.path) == (line(text, "surfaces:"), "surfaces")
    assert "no 'default' surface" in problem.message and "surfaces.default" in problem.hint


def test_duplicate_surface_refuses_to_load_naming_both_lines() -> None:
    text = BASE + "  comment:\n    rules: []\n"
    err = refused(text)
    [problem] = err.problems
    first, second = line(text, "  comment:"), line(text, "  comment:", 2)
    assert (problem.line, problem.path) == (second, "surfaces.comment")
    assert f"duplicate surface 'comment' (first on line {first})" in problem.message
    assert f"p.yaml:{second}:" in str(err)


def test_duplicate_key_anywhere_refuses_to_load() -> None:
    text = BASE.replace("  lexicon: {}\n", "  lexicon:\n    normalise: true\n    normalise: false\n")
    [problem] = refused(text).problems
    assert problem.path == "detectors.lexicon.normalise" and problem.line == line(text, "normalise", 2)
    assert f"duplicate key 'normalise' (first on line {line(text, 'normalise')})" in problem.message


def test_rule_with_unknown_category_refuses_to_load() -> None:
    text = BASE.replace("categories: hate, threshold: 0.8", "categories: hat, threshold: 0.8")
    [problem] = refused(text).problems
    assert problem.path == "surfaces.comment.rules[0].categories" and problem.line == line(text, "hat,")
    assert problem.message == "unknown category 'hat'"
    assert problem.hint == "did you mean 'hate'? Known: hate, spam"


def test_rule_with_unknown_detector_refuses_to_load() -> None:
    text = BASE.replace("categories: hate, threshold: 0.8", "categories: hate, detectors: lexicn, threshold: 0.8")
    [problem] = refused(text).problems
    assert problem.path == "surfaces.comment.rules[0].detectors"
    assert "'lexicn', which the policy does not configure" in problem.message
    assert problem.hint.startswith("did you mean 'lexicon'?")


def test_unreachable_rule_and_layer_on_unknown_surface_refuse_to_load() -> None:
    text = BASE + (
        "  message:\n"
        "    rules:\n"
        "      - {id: m.review, categories: spam, threshold: 0.3, action: remove}\n"
        "      - {id: m.label, categories: spam, threshold: 0.6, action: label}\n"
        "jurisdictions:\n"
        "  EU:\n"
        "    countries: [DE]\n"
        "    surfaces:\n"
        "      podcast: {rules: []}\n"
    )
    problems = {p.path: p for p in refused(text).problems}
    assert set(problems) == {"surfaces.message.rules[1]", "jurisdictions.EU.surfaces.podcast"}
    assert "rule 'm.label' is unreachable" in problems["surfaces.message.rules[1]"].message
    assert problems["surfaces.message.rules[1]"].line == line(text, "m.label")
    assert "layer for surface 'podcast'" in problems["jurisdictions.EU.surfaces.podcast"].message


def test_every_error_is_reported_in_one_load() -> None:
    """Schema errors do not hide the semantic ones: all come back at once."""
    text = BASE.replace("threshold: 0.8, action: remove", "threshold: 1.5, action: remove") \
               .replace("categories: hate, threshold", "categories: hat, threshold") \
               .replace("  default:\n", "  defualt:\n")
    err = refused(text, source="faulty.yaml")
    assert {p.path for p in err.problems} == {
        "surfaces", "surfaces.comment.rules[0].threshold", "surfaces.comment.rules[0].categories",
    }
    assert "rename surfaces.defualt to 'default'" in err.problems[0].hint
    assert_golden("load_refused.txt", str(err))


def test_load_and_lint_report_the_same_errors(tmp_path: Path) -> None:
    text = BASE.replace("categories: hate, threshold", "categories: [hate, spma], detectors: [lexicon, llm], threshold") \
        + "  comment:\n    rules:\n      - {id: x, categories: hatee, action: obliterate}\n"
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        Policy.from_file(path)
    linted = [p for p in lint_file(path) if p.severity == ERROR]
    assert info.value.problems == linted
    assert len(linted) == 5  # the duplicate, and in each block what is wrong with it


def test_warnings_are_lint_only(tmp_path: Path) -> None:
    text = BASE.replace("      - {id: d, categories: \"*\", threshold: 0.5, action: hold_for_review}\n", "") \
               .replace("    rules:\n  comment:", "    rules: []\n  comment:")
    policy = Policy.from_yaml(text)  # loads: only warnings
    assert policy.rules_for("brand_new") == ()
    warnings = check_text(text, "p.yaml").problems
    assert [p.severity for p in warnings] == [WARNING, WARNING]
    assert {p.path for p in warnings} == {"categories.spam", "surfaces.default"}


def test_tests_file_reports_every_bad_case(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text("tests:\n  - {text: a}\n  - {text: b, expect: allow}\n  - {text: c, expect: smite}\n",
                    encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_tests(path)
    assert [(p.line, p.path) for p in info.value.problems] == [(2, "tests[0]"), (4, "tests[2].expect")]


@pytest.mark.parametrize("text", ["", "- a list\n", "id: [unclosed\n", "a: &a [*a]\n", "a: &a {b: *a}\n"])
def test_what_is_not_a_policy_is_refused_with_a_line(text: str) -> None:
    err = refused(text)
    assert err.problems and all(p.severity == ERROR and p.line for p in err.problems)
