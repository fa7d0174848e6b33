from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import referee
from referee.cli import app
from referee.detectors.base import detector_registry
from referee.errors import InputError
from referee.ingest import read_items
from referee.model import MAX_TEXT_CHARS, ContentItem
from tests.conftest import SMALL_POLICY, KeywordDetector


def test_public_surface_is_pinned():
    assert sorted(referee.__all__) == [
        "Action", "AudioPart", "AuthError", "ConfigError", "ContentItem", "Decision", "DecisionStore",
        "DetectorError", "DetectorFailure", "DetectorTimeout", "Engine", "EngineConfig", "Evidence", "ImagePart",
        "InputError", "ModelError", "Policy", "PolicyError", "Reason", "Record", "RefereeError", "Registry",
        "Signal", "StageRun", "StoreError", "TextPart", "build_engine", "decide",
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
        b'{"id": "old", "text": "t", "created_at": "0001-01-01T00:30:00+01:00"}',  # found by schemathesis: a 500
    ]
    results = list(read_items(io.BytesIO(b"\n".join(lines))))
    good = [r for r in results if isinstance(r, ContentItem)]
    bad = [str(r) for r in results if isinstance(r, InputError)]
    assert [g.id for g in good] == ["ok1", "ok2"] and good[1].country == "DE"
    assert bad[0].startswith("line 2: not valid JSON")
    assert bad[1].startswith("line 3: surface:") and "lower_snake_case" in bad[1]
    assert bad[2].startswith("line 4: invalid UTF-8")
    assert bad[3].startswith("line 5: txt: unknown field; did you mean 'text'?")
    assert bad[4].startswith("line 6: text:") and "MAX_TEXT_CHARS" in bad[4]
    assert bad[5].startswith("line 9: created_at:") and "outside the years 1 to 9999" in bad[5]


def _csv(text: str) -> tuple[list[ContentItem], list[str]]:
    results = list(read_items(io.BytesIO(text.encode("utf-8")), "csv"))
    return [r for r in results if isinstance(r, ContentItem)], [str(r) for r in results if isinstance(r, InputError)]


def test_csv_context_columns_go_to_context(tmp_path: Path):
    path = tmp_path / "items.csv"
    path.write_text("\ufeffid,text,surface,context.thread\n1,hello,message,t-9\n2,hi,,\n", encoding="utf-8")
    results = list(read_items(path))
    assert results[0].context == {"thread": "t-9"} and results[0].surface == "message"
    assert results[1].surface == "comment" and results[1].context == {}  # an empty cell is an absent field


def test_csv_text_role_columns_are_text_parts():
    items, errors = _csv("id,text.title,text.description,surface\n1,My mix,songs for #hate,playlist_title\n"
                         "2,,,comment\n")
    assert [(p.id, p.role, p.text) for p in items[0].parts] == [("title", "title", "My mix"),
                                                                 ("description", "description", "songs for #hate")]
    assert errors == [("line 3, column 2 (text.title): Value error, the item has nothing to inspect: give a "
                      "non-empty 'text' or at least one part")]
    assert _csv("id,text.Title\n1,x\n")[1][0].startswith("line 1, column 2: column 'text.Title': the role after")


def test_csv_unknown_column_is_an_error_like_a_jsonl_unknown_field():
    items, errors = _csv("id,text,thread\n1,hello,t-9\n")
    assert items == []
    assert errors == [
        ("line 1, column 3: unknown column 'thread'; known columns: id, text, surface, author_id, language, country, "
        "created_at, plus text.<role> for a text part and context.<name> for a context key (rename it to "
        "context.thread to keep it as context); no row was read")
    ]
    assert _csv("id,text,media\n1,a,b\n")[1][0].startswith("line 1, column 3: 'media' needs JSONL")
    assert _csv("id,text,parts\n1,a,b\n")[1][0].startswith("line 1, column 3: 'parts' needs JSONL")
    assert _csv("id,text,id\n1,a,b\n")[1][0].startswith("line 1, column 3: column 'id' appears twice")
    assert _csv("id,surface\n1,comment\n")[1][0].startswith("line 1: the header lacks text")
    assert _csv("text\nhello\n")[1][0].startswith("line 1: the header lacks id;")


def test_csv_unterminated_quote_costs_one_row_not_the_next():
    # Measured: 4 rows, 3 moderated, 0 rejected: row 2's stray quote swallowed row 3.
    items, errors = _csv('id,text\n1,hello\n2,"oops\n3,"world"\n4,bye\n')
    assert [i.id for i in items] == ["1", "3", "4"] and items[1].text == "world"
    assert errors == [
        ("line 3, column 2 (text): the quoted field opened at character 3 (it closes on line 4) is followed by "
        "'world\"' instead of a comma; double a quote (\"\") inside a quoted field, or quote the whole field")
    ]
    items, errors = _csv('id,text\n1,"never closed\n2,fine\n')
    assert [i.id for i in items] == ["2"]
    assert errors == [('line 2, column 2 (text): the quote at character 3 is never closed, so the field would '
                      'swallow every line after it; close the quote, or double it ("") to put a quote inside a '
                      'quoted field')]


def test_csv_quoted_fields_may_hold_commas_quotes_and_line_breaks():
    items, errors = _csv('id,text\r\n1,"a, ""quoted""\r\nline"\r\n\r\n2,plain "inner" quotes\r\n')
    assert errors == []
    assert [i.text for i in items] == ['a, "quoted"\nline', 'plain "inner" quotes']


def test_csv_short_and_long_rows_are_errors_naming_the_row():
    items, errors = _csv("id,text,surface\n1,hello\n2,hi,comment,extra\n3,ok,message\n")
    assert [i.id for i in items] == ["3"]
    assert errors == [
        ("line 2, column 3 (surface): the row has 2 field(s), the header 3: surface missing; add the empty field(s) "
        "(a trailing comma each) or quote a field that holds a line break"),
        ("line 3, column 4: the row has 4 fields, the header 3; quote a field that holds a comma, or add a header "
        "for the extra column"),
    ]
    assert _csv("id,text\n1\n")[1][0].startswith("line 2, column 2 (text): the row has 1 field(s)")


def test_csv_field_errors_name_line_and_column():
    items, errors = _csv("id,surface,text,country\n1,Bad Surface,x,DE\n,comment,y,DE\n3,comment,z,Germany\n"
                         "4,comment,\xff,de\n")
    assert [(i.id, i.country) for i in items] == [("4", "DE")]
    assert errors[0].startswith("line 2, column 2 (surface): ") and "lower_snake_case" in errors[0]
    assert errors[1].startswith("line 3, column 1 (id): ")
    assert errors[2].startswith("line 4, column 4 (country): ") and "'Germany'" in errors[2]


def test_csv_bad_utf8_costs_its_line_only():
    results = list(read_items(io.BytesIO(b"id,text\n1,\xff\xfe\n2,fine\n"), "csv"))
    assert str(results[0]).startswith("line 2: invalid UTF-8")
    assert isinstance(results[1], ContentItem) and results[1].id == "2"
    assert [str(r) for r in read_items(io.BytesIO(b""), "csv")] == [
        "line 1: the file is empty; expected a header line id,text[,surface,country,...]"]


#: The installed detectors and the tests' keyword counter, handed to the commands as their context object.
REGISTRY = detector_registry({"keyword": KeywordDetector})


def invoke(args: list[str], **kwargs):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, args, obj=REGISTRY, **kwargs)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch) -> Path:
    policy = tmp_path / "small.yaml"
    policy.write_text(SMALL_POLICY + "tests:\n  - {text: 'vile vile vile vile', surface: comment, expect: remove}\n"
                      "  - {text: 'hello', surface: comment, expect: allow}\n", encoding="utf-8")
    monkeypatch.setenv("REFEREE_POLICY", str(policy))
    monkeypatch.setenv("REFEREE_DB_URL", f"sqlite:///{tmp_path}/cli.db")
    return policy


def test_moderate_writes_jsonl_and_reports_bad_lines(cli_env: Path, tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "vile vile vile vile"}\nnot json\n{"id": "b", "text": "buy"}\n', encoding="utf-8")
    result = invoke(["moderate", str(src)])
    assert result.exit_code == 1  # one bad line: reported, not dropped silently
    decisions = [json.loads(l) for l in result.stdout.splitlines() if l.startswith("{")]
    assert [(d["item_id"], d["action"]) for d in decisions] == [("a", "remove"), ("b", "limit_reach")]
    assert "line 2: not valid JSON" in result.output

    shown = invoke(["decisions", "show", decisions[0]["decision_id"]])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["action"] == "remove"
    listed = invoke(["decisions", "list", "--since", "1h"])
    assert len(listed.stdout.splitlines()) == 2
    assert invoke(["decisions", "list", "--since", "yesterday"]).exit_code == 2


def test_moderate_reads_stdin(cli_env: Path):
    result = invoke(["moderate", "-", "--no-store", "--batch-size", "4096"],
                                input='{"id": "s", "text": "buy buy"}\n')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["action"] == "limit_reach"


def test_policy_test_command(cli_env: Path, tmp_path: Path):
    ok = invoke(["policy", "test", str(cli_env)])
    assert ok.exit_code == 0, ok.output
    assert "2 passed, 0 failed" in ok.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(cli_env.read_text().replace("expect: allow", "expect: remove"), encoding="utf-8")
    bad = invoke(["policy", "test", str(broken)])
    assert bad.exit_code == 1 and "expected remove, got allow" in bad.output


def test_moderate_csv_reports_every_bad_row_and_moderates_the_rest(cli_env: Path, tmp_path: Path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\n1,vile vile vile vile\n2,"oops\n3,"buy"\n4,hello\n5\n', encoding="utf-8")
    result = invoke(["moderate", str(src), "--no-store"])
    assert result.exit_code == 1
    decisions = [json.loads(l) for l in result.stdout.splitlines() if l.startswith("{")]
    assert [(d["item_id"], d["action"]) for d in decisions] == [("1", "remove"), ("3", "limit_reach"), ("4", "allow")]
    assert "line 3, column 2 (text): the quoted field opened at character 3" in result.output
    assert "line 6, column 2 (text): the row has 1 field(s)" in result.output
    assert "3 items moderated, 2 rejected" in result.output


def test_cli_messages_show_user_text_verbatim_not_as_markup(cli_env: Path, tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "t", "surface": "[red]x"}\n', encoding="utf-8")
    result = invoke(["moderate", str(src), "--no-store"])
    assert result.exit_code == 1
    assert "got '[red]x'" in result.output  # Rich would have eaten "[red]" as a colour tag

    missing = invoke(["moderate", str(tmp_path / "[bold]nope.jsonl")])
    assert missing.exit_code == 2 and "[bold]nope.jsonl" in missing.output

    shown = invoke(["decisions", "show", "[blink]d1"])
    assert shown.exit_code == 1 and "no decision '[blink]d1'" in shown.output

    bad_since = invoke(["decisions", "list", "--since", "[i]soon"])
    assert bad_since.exit_code == 2 and "got '[i]soon'" in bad_since.output


def test_policy_commands_show_user_text_verbatim(cli_env: Path, tmp_path: Path):
    marked = tmp_path / "[red]p.yaml"
    marked.write_text(cli_env.read_text().replace("expect: allow", "expect: remove")
                      .replace("text: 'hello'", "text: '[b]hello'"), encoding="utf-8")
    tested = invoke(["policy", "test", str(marked)])
    assert tested.exit_code == 1 and "'[b]hello'" in tested.output
    linted = invoke(["policy", "lint", str(marked)])
    assert "[red]p.yaml" in linted.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["decisions", "list", "--since", "99999999999h"], "reaches back before the year 1"),
        (["decisions", "list", "--since", "99999999999999999999d"], "reaches back before the year 1"),
        (["decisions", "list", "--limit", "1e20"], "'--limit': Input should be a valid integer"),
        (["decisions", "list", "--limit", "100000000000000000000"], "'--limit': Input should be less than or equal to 10000"),
        (["decisions", "list", "--limit", "-1"], "'--limit': Input should be greater than or equal to 1"),
        (["decisions", "list", "--limit", "0"], "'--limit': Input should be greater than or equal to 1"),
        (["decisions", "list", "--action", "delete"], "unknown action 'delete'; choose one of allow, label"),
        (["moderate", "-", "--batch-size", "0"], "'--batch-size': Input should be greater than or equal to 1"),
        (["moderate", "-", "--batch-size", "4097"], "'--batch-size': Input should be less than or equal to 4096"),
        (["moderate", "-", "--format", "xml"], "--format: unknown format 'xml'; choose one of jsonl, csv"),
    ],
)
def test_numeric_options_are_range_checked(cli_env: Path, args: list[str], message: str):
    result = invoke(args, input="")
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert message in " ".join(result.output.split()), result.output


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["eval", "report", "[red]missing.json", "--html", "out.html"], "[red]missing.json: cannot read"),
        (["eval", "summary", "[red]r.json"], "[red]r.json: cannot read"),
        (["model", "card", "[bold]nope", "--models", "no-such-registry"], "model '[bold]nope' not found"),
        (["data", "card", "[i]x.jsonl"], "[i]x.jsonl: cannot read dataset"),
    ],
)
def test_eval_model_data_errors_show_user_text_verbatim(tmp_path: Path, monkeypatch, args: list[str], shown: str):
    monkeypatch.chdir(tmp_path)
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert shown in " ".join(result.output.split())


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "run", "--data", "d", "--out", "o", "--bootstrap", "-1"],
        ["eval", "run", "--data", "d", "--out", "o", "--threshold", "1.5"],
        ["eval", "gate", "--baseline", "a", "--candidate", "b", "--max-drop", "2"],
        ["eval", "compare", "a", "b", "--seed", "99999999999"],
        ["train", "--data", "a", "--dev", "b", "--out", "c", "--max-tokens", "4"],
        ["train", "--data", "a", "--dev", "b", "--out", "c", "--lr", "0"],
        ["data", "split", "x", "--seed", "-1"],
    ],
)
def test_eval_model_data_numbers_are_range_checked(args: list[str]):
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert "Invalid value for" in result.output
