"""The re-scan's parts that need no Spark session: sources, row parsing, the engine cache,
the executors' config (no store in a dry run), the job's checks and the diff's arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="pyarrow is missing: pip install -e '.[spark]'")

from typer.testing import CliRunner

from referee.batch import rescan
from referee.batch.rescan import (
    RescanJob,
    Source,
    check_job,
    decide_rows,
    executor_config,
    parse_raw,
    summarize,
)
from referee.build import EngineConfig, build_engine
from referee.cli import app
from referee.errors import ConfigError, InputError
from tests.batch.conftest import POLICY, items

LEXICON = EngineConfig(policy=POLICY, detectors=("lexicon",))


def test_sources_by_suffix_folder_and_store(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "p-0.parquet").write_bytes(b"")
    (tmp_path / "parts" / "_SUCCESS").write_bytes(b"")
    assert Source.parse(str(tmp_path / "a.jsonl")) == Source("jsonl", str((tmp_path / "a.jsonl").resolve()))
    assert Source.parse(str(tmp_path / "parts")).kind == "parquet"  # Spark's _SUCCESS marker is not data
    assert Source.parse("db:sqlite:///x.db") == Source("db", "sqlite:///x.db")
    assert Source.parse("s3a://bucket/items.parquet").kind == "parquet"


@pytest.mark.parametrize("text, message", [
    ("db:", "needs the store's URL"),
    ("missing.jsonl", "no such file or folder"),
    ("s3a://bucket/items", "cannot tell JSONL from Parquet"),
])
def test_sources_that_are_refused_say_why(text, message):
    with pytest.raises(ConfigError, match=message):
        Source.parse(text)


def test_a_csv_or_a_mixed_folder_is_refused(tmp_path):
    (tmp_path / "a.csv").write_text("id,text\n")
    with pytest.raises(ConfigError, match="expected a .jsonl or .parquet file"):
        Source.parse(str(tmp_path / "a.csv"))
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.jsonl").write_text("")
    (tmp_path / "mixed" / "b.parquet").write_text("")
    with pytest.raises(ConfigError, match="one kind"):
        Source.parse(str(tmp_path / "mixed"))


def test_rows_are_read_as_referee_moderate_reads_lines():
    assert parse_raw(b"  \n", "line 1") is None
    bad_utf8 = parse_raw(b'{"id": "\xff"}', "line 2")
    assert isinstance(bad_utf8, InputError) and str(bad_utf8) == "line 2: invalid UTF-8 at byte 8; re-encode the file as UTF-8"
    assert str(parse_raw(b"{nope", "line 3")).startswith("line 3: not valid JSON")
    typo = parse_raw(b'{"id": "a", "txt": "hi"}', "line 4")
    assert isinstance(typo, InputError) and typo.where == "line 4: txt" and "did you mean 'text'?" in typo.reason
    item = parse_raw(b'{"id": "a", "text": "hi", "surface": "comment"}', "line 5")
    assert item is not None and not isinstance(item, InputError) and item.id == "a"


def test_parquet_columns_may_hold_parts_and_context_as_json_text():
    raw = b'{"id": "p", "parts": "[{\\"kind\\": \\"text\\", \\"id\\": \\"t\\", \\"text\\": \\"hi\\"}]", "context": "{}"}'
    item = parse_raw(raw, "item p", text_fields=("parts", "context"))
    assert item is not None and not isinstance(item, InputError) and item.parts[0].id == "t"
    broken = parse_raw(b'{"id": "p", "text": "x", "context": "{oops"}', "item p", text_fields=("context",))
    assert isinstance(broken, InputError) and broken.where == "item p: context"


def test_each_process_builds_its_engine_once_per_config(tmp_path):
    rescan.close_engines()
    before = rescan.builds
    first = rescan.engine_for(LEXICON.model_dump_json())
    for _ in range(3):
        assert rescan.engine_for(LEXICON.model_dump_json()) is first
    other = LEXICON.model_copy(update={"batch_size": 32})
    assert rescan.engine_for(other.model_dump_json()) is not first
    assert rescan.builds == before + 2
    rescan.close_engines()


def test_a_batch_decides_like_the_engine_and_keeps_rejected_rows_in_place():
    batch = items(9)
    raws: list[bytes | None] = [i.model_dump_json().encode() for i in batch]
    raws.insert(3, b'{"id": "bad"}')
    raws.insert(5, b"")
    wheres = [f"line {n}" for n in range(1, len(raws) + 1)]
    with build_engine(LEXICON) as engine:
        rows = decide_rows(engine, wheres, raws)
        expected = engine.moderate_many(batch)
    assert [r["where"] for r in rows if r["error"]] == ["line 4: item"]
    decided = [r for r in rows if not r["error"]]
    assert [(r["item_id"], r["action"], r["categories"]) for r in decided] == \
           [(d.item_id, d.action.value, list(d.categories)) for d in expected]
    assert rows[3]["item_id"] is None and "nothing to inspect" in rows[3]["error"]


def test_dry_run_executors_get_no_store_and_enforcing_ones_get_it(tmp_path):
    job = RescanJob(Source("db", "sqlite:///rel.db"), LEXICON.model_copy(update={"store_url": "sqlite:///x.db"}),
                    tmp_path)
    checked = check_job(job, "local[2]")
    assert checked.store_url == f"sqlite:///{Path('rel.db').resolve()}"  # relative to the driver, made absolute
    dry = executor_config(checked)
    assert dry.store_url is None and dry.policy.is_absolute()
    enforcing = executor_config(check_job(RescanJob(job.source, LEXICON, tmp_path, enforce=True), "local[2]"))
    assert enforcing.store_url == checked.store_url


@pytest.mark.parametrize("changes, master, message", [
    ({"enforce": True, "source": Source("jsonl", "x.jsonl")}, "local[2]", "--enforce needs the store"),
    ({"store_url": "sqlite:///b.db"}, "local[2]", "name different stores"),
    ({"enforce": True, "baseline": Path("b.parquet")}, "local[2]", "drop --baseline"),
    ({"enforce": True}, "spark://10.0.0.1:7077", "needs a PostgreSQL store"),
    ({"baseline": Path("missing.parquet")}, "local[2]", "--baseline missing.parquet: no such file"),
])
def test_jobs_that_cannot_run_as_asked_are_refused(tmp_path, changes, master, message):
    base = {"source": Source("db", "sqlite:///a.db"), "config": LEXICON, "out": tmp_path}
    with pytest.raises(ConfigError, match=message):
        check_job(RescanJob(**{**base, **changes}), master)


def test_the_diff_counts_moves_and_breaks_them_down():
    groups = [
        {"rejected": False, "old": "limit_reach", "new": "remove", "stands": False, "surface": "comment",
         "cats": ["harassment"], "n": 4},
        {"rejected": False, "old": "allow", "new": "allow", "stands": False, "surface": "comment", "cats": [], "n": 10},
        {"rejected": False, "old": "remove", "new": "remove", "stands": True, "surface": "message",
         "cats": ["spam"], "n": 1},
        {"rejected": False, "old": "remove", "new": "label", "stands": False, "surface": "message",
         "cats": ["spam", "harassment"], "n": 2},
        {"rejected": False, "old": None, "new": "hold_for_review", "stands": False, "surface": "comment",
         "cats": ["violence"], "n": 3},
        {"rejected": True, "old": None, "new": None, "stands": False, "surface": None, "cats": [], "n": 5},
    ]
    diff, rejected = summarize(groups, "store")
    assert rejected == 5
    assert (diff.items, diff.with_baseline, diff.new_items, diff.changed, diff.unchanged) == (20, 17, 3, 6, 11)
    assert (diff.escalated, diff.relaxed, diff.human_stands) == (4, 2, 1)
    assert [(t.old, t.new, t.items) for t in diff.transitions][:2] == [("allow", "allow", 10),
                                                                      ("limit_reach", "remove", 4)]
    cats = {b.key: (b.items, b.changed, b.escalated, b.relaxed) for b in diff.by_category}
    assert cats == {"harassment": (6, 6, 4, 2), "(none)": (10, 0, 0, 0), "spam": (3, 2, 0, 2),
                    "violence": (3, 0, 0, 0)}
    assert diff.by_category[0].key == "harassment"  # the most changed first
    assert {b.key: b.changed for b in diff.by_surface} == {"comment": 4, "message": 2}


def test_the_cli_needs_a_source_and_a_policy():
    result = CliRunner().invoke(app, ["rescan", "--policy", str(POLICY)])
    assert result.exit_code == 2 and "rescan needs --source and --policy" in result.output
    assert "rescan" in CliRunner().invoke(app, ["--help"]).output


def test_a_missing_source_is_a_usage_error_before_spark_starts(tmp_path):
    result = CliRunner().invoke(app, ["rescan", "--source", str(tmp_path / "none.jsonl"), "--policy", str(POLICY)])
    assert result.exit_code == 2 and "no such file or folder" in " ".join(result.output.split())


def test_the_public_surface():
    import referee.batch

    assert sorted(referee.batch.__all__) == [
        "Diff", "Exported", "RescanJob", "RescanResult", "Source", "SparkTransparencyReport", "check_spark",
        "export_log", "parse_conf", "run_rescan", "spark_session", "tables_equal", "write_heads",
        "write_held_items"]
    from referee.batch.session import parse_conf

    assert parse_conf(["spark.executor.memory=4g", "a.b=x=y"]) == {"spark.executor.memory": "4g", "a.b": "x=y"}
    with pytest.raises(ConfigError, match="write KEY=VALUE"):
        parse_conf(["spark.executor.memory"])
