"""``referee policy lint`` lists every problem in one run, each with file:line and a hint."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from referee.policy.lint import ERROR, lint_file
from tests.policy.test_load_checks import BASE, assert_golden, line

FAULTY = """\
id: faulty
version: "3"
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
      - {id: c.hate, categories: hate, threshold: 2, action: remove}
      - {id: c.spam, categories: spma, threshold: 0.5, action: limit_reach, colour: red}
      - {id: c.llm, categories: hate, detectors: lexicn, threshold: 0.4, action: hold_for_review}
  comment:
    rules:
      - {id: c2, categories: [spam, haet], threshold: 0.5, action: label}
jurisdictions:
  EU:
    countries: [DE, Germany]
    surfaces:
      message: {remove_rules: [nope]}
tests:
  - {text: hi, expect_categories: [hat]}
"""


def write(tmp_path: Path, text: str, name: str = "faulty.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_schema_error_and_unknown_category_both_reported(tmp_path: Path) -> None:
    text = BASE.replace("threshold: 0.8, action: remove", "threshold: 0.8, action: obliterate") \
               .replace("categories: hate, threshold: 0.8", "categories: hat, threshold: 0.8")
    problems = lint_file(write(tmp_path, text))
    by_path = {p.path: p for p in problems}
    assert set(by_path) == {"surfaces.comment.rules[0].action", "surfaces.comment.rules[0].categories"}
    assert "obliterate" in by_path["surfaces.comment.rules[0].action"].message
    unknown = by_path["surfaces.comment.rules[0].categories"]
    assert unknown.line == line(text, "hat,") and "did you mean 'hate'" in unknown.hint


def test_every_problem_in_one_run(tmp_path: Path) -> None:
    path = write(tmp_path, FAULTY)
    problems = lint_file(path)
    assert all(p.severity == ERROR and p.line for p in problems)
    # The block YAML drops (the first 'comment') is checked as well as the one it keeps.
    assert line(FAULTY, "c.spam") in {p.line for p in problems}
    assert line(FAULTY, "haet") in {p.line for p in problems}
    assert_golden("lint_faulty.txt", "\n".join(map(str, problems)).replace(str(path), "faulty.yaml"))


def test_lint_cli_lists_them_all(tmp_path: Path) -> None:
    from referee.cli import app

    path = write(tmp_path, FAULTY)
    result = CliRunner().invoke(app, ["policy", "lint", str(path)])
    assert result.exit_code == 1
    assert result.output.count(f"{path}:") == len(lint_file(path))
    assert "unknown category 'spma'" in result.output and "duplicate surface 'comment'" in result.output
