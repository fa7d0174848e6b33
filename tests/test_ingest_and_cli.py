from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import referee
from referee.cli import app
from referee.errors import InputError
from referee.ingest import read_items
from referee.model import MAX_TEXT_CHARS, ContentItem
from tests.conftest import SMALL_POLICY, KeywordDetector


def test_public_surface_is_pinned():
    assert sorted(referee.__all__) == [
        "Action", "AuthError", "ConfigError", "ContentItem", "Decision", "DecisionStore", "DetectorError",
        "DetectorFailure", "DetectorTimeout", "Engine", "Evidence", "InputError", "MediaRef", "ModelError",
        "Policy", "PolicyError", "Reason", "RefereeError", "Signal", "StoreError", "decide",
    ]


def test_bad_jsonl_lines_are_reported_by_line_and_field():
    lines = [
        b'{"id": "ok1", "text": "fine"}',
        b'{"id": "bad-json", "text": ',
        b'{"id": "x", "text": "t", "surface": "Bad Surface"}',
        b'{"id": "y", "text": "\xff\xfe"}',
        b'{"id": "z", "txt": "typo"}',
        json.dumps({"id": "big", "text": "a" * (MAX_TEXT_CHARS + 1)}).encode(),
        b"",
        b'{"id": "ok2", "text": "also fine", "country": "de"}',
    ]
    results = list(read_items(io.BytesIO(b"\n".join(lines))))
    good = [r for r in results if isinstance(r, ContentItem)]
    bad = [str(r) for r in results if isinstance(r, InputError)]
    assert [g.id for g in good] == ["ok1", "ok2"] and good[1].country == "DE"
    assert bad[0].startswith("line 2: not valid JSON")
    assert bad[1].startswith("line 3: surface:") and "lower_snake_case" in bad[1]
    assert bad[2].startswith("line 4: invalid UTF-8")
    assert bad[3].startswith("line 5: txt: unknown field")
    assert bad[4].startswith("line 6: text:") and "MAX_TEXT_CHARS" in bad[4]


def test_csv_extra_columns_go_to_context(tmp_path: Path):
    path = tmp_path / "items.csv"
    path.write_text("id,text,surface,thread\n1,hello,message,t-9\n2,,comment,\n", encoding="utf-8")
    results = list(read_items(path))
    assert results[0].context == {"thread": "t-9"} and results[0].surface == "message"
    assert results[1].text == ""


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch) -> Path:
    from referee.detectors.base import detectors

    monkeypatch.setitem(detectors._items, "keyword", KeywordDetector)
    policy = tmp_path / "small.yaml"
    policy.write_text(SMALL_POLICY + "tests:\n  - {text: 'vile vile vile vile', surface: comment, expect: remove}\n"
                      "  - {text: 'hello', surface: comment, expect: allow}\n", encoding="utf-8")
    monkeypatch.setenv("REFEREE_POLICY", str(policy))
    monkeypatch.setenv("REFEREE_DB_URL", f"sqlite:///{tmp_path}/cli.db")
    return policy


def test_moderate_writes_jsonl_and_reports_bad_lines(cli_env: Path, tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "vile vile vile vile"}\nnot json\n{"id": "b", "text": "buy"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["moderate", str(src)])
    assert result.exit_code == 1  # one bad line: reported, not dropped silently
    decisions = [json.loads(l) for l in result.stdout.splitlines() if l.startswith("{")]
    assert [(d["item_id"], d["action"]) for d in decisions] == [("a", "remove"), ("b", "limit_reach")]
    assert "line 2: not valid JSON" in result.output

    shown = CliRunner().invoke(app, ["decisions", "show", decisions[0]["decision_id"]])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["action"] == "remove"
    listed = CliRunner().invoke(app, ["decisions", "list", "--since", "1h"])
    assert len(listed.stdout.splitlines()) == 2
    assert CliRunner().invoke(app, ["decisions", "list", "--since", "yesterday"]).exit_code == 2


def test_moderate_reads_stdin(cli_env: Path):
    result = CliRunner().invoke(app, ["moderate", "-", "--no-store"], input='{"id": "s", "text": "buy buy"}\n')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["action"] == "limit_reach"


def test_policy_test_command(cli_env: Path, tmp_path: Path):
    ok = CliRunner().invoke(app, ["policy", "test", str(cli_env)])
    assert ok.exit_code == 0, ok.output
    assert "2 passed, 0 failed" in ok.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(cli_env.read_text().replace("expect: allow", "expect: remove"), encoding="utf-8")
    bad = CliRunner().invoke(app, ["policy", "test", str(broken)])
    assert bad.exit_code == 1 and "expected remove, got allow" in bad.output
