"""The re-scan job on the shared local[2] session: sources, line numbers, the diff, dry run and --enforce.

Every test decides with the lexicon only, on a few dozen items.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from referee.batch.rescan import RescanJob, Source, run_rescan
from referee.build import EngineConfig, build_engine
from referee.errors import ConfigError, InputError
from referee.model import Action
from referee.store import Store
from tests.batch.conftest import POLICY, items, write_jsonl

pytestmark = pytest.mark.spark


def lexicon(policy: Path = POLICY) -> EngineConfig:
    return EngineConfig(policy=policy, detectors=("lexicon",))


def decisions(out: Path) -> dict[str, dict[str, Any]]:
    import pyarrow.parquet as pq

    return {r["item_id"]: r for r in pq.read_table(out / "decisions.parquet").to_pylist()}


def test_a_jsonl_file_is_decided_as_in_process_with_every_bad_line_numbered(spark, tmp_path):
    batch = items(40)
    rows: list[Any] = list(batch)
    rows[6:6] = ['{"id": "typo", "txt": "hello"}']  # line 7
    rows[20:20] = [""]  # line 21: blank, skipped like referee moderate skips it
    rows[30:30] = ["not json"]  # line 31
    path = write_jsonl(tmp_path / "items.jsonl", rows)
    spark.conf.set("spark.sql.files.maxPartitionBytes", "2048")  # several splits: line numbers across them
    try:
        result = run_rescan(spark, RescanJob(Source.parse(str(path)), lexicon(), tmp_path / "out"))
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert (result.decided, result.rejected) == (40, 2)
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["where"] for r in rejected) == ["line 31", "line 7: txt"]
    with build_engine(lexicon()) as engine:
        expected = {d.item_id: d for d in engine.moderate_many(batch)}
    got = decisions(tmp_path / "out")
    assert {k: (v["action"], v["categories"]) for k, v in got.items()} == \
           {k: (d.action.value, list(d.categories)) for k, d in expected.items()}
    one = got["i2"]
    assert json.loads(one["decision"])["input_key"] == expected["i2"].input_key  # same identity as in-process
    assert json.loads(one["reasons"])[0]["rule_id"] == expected["i2"].reasons[0].rule_id
    diff = json.loads((tmp_path / "out" / "diff.json").read_text())
    assert diff["baseline"] == "none" and diff["new_items"] == 40 and diff["changed"] == 0


def test_line_numbers_in_a_folder_of_jsonl_files_name_the_file(spark, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [*items(5, "a"), "{broken"])
    write_jsonl(folder / "b.jsonl", ["{broken", *items(5, "b")])
    result = run_rescan(spark, RescanJob(Source.parse(str(folder)), lexicon(), tmp_path / "out"))
    assert result.decided == 10
    assert sorted(r["where"] for r in result.rejected_sample) == ["a.jsonl line 6", "b.jsonl line 1"]


def test_a_parquet_dataset_with_nested_parts_and_times(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    batch = items(12)
    table = pa.Table.from_pylist([
        {"id": i.id, "surface": i.surface, "country": i.country,
         "parts": [{"kind": "text", "id": "body", "role": "body", "text": i.parts[0].text}],  # type: ignore[union-attr]
         "created_at": "2026-03-01T10:00:00+00:00"} for i in batch])
    table = table.set_column(4, "created_at", pa.array([None] * 11 + [1772359200_000_000], pa.timestamp("us", "UTC")))
    pq.write_table(table, tmp_path / "items.parquet")
    result = run_rescan(spark, RescanJob(Source.parse(str(tmp_path / "items.parquet")), lexicon(), tmp_path / "out"))
    assert (result.decided, result.rejected) == (12, 0)
    with build_engine(lexicon()) as engine:
        expected = {d.item_id: d.action.value for d in engine.moderate_many(
            [i.model_copy(update={"parts": (i.parts[0].model_copy(update={"id": "body"}),)}) for i in batch])}
    assert {k: v["action"] for k, v in decisions(tmp_path / "out").items()} == expected


def test_a_parquet_column_that_is_no_item_field_is_refused(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["x"], "text": ["hi"], "score": [1.0]}), tmp_path / "items.parquet")
    with pytest.raises(InputError, match="unknown column.*score"):
        run_rescan(spark, RescanJob(Source.parse(str(tmp_path / "items.parquet")), lexicon(), tmp_path / "out"))


@pytest.fixture
def catalogue(tmp_path) -> Iterator[tuple[str, Store]]:
    """A store whose items were decided under the default policy (lexicon)."""
    url = f"sqlite:///{tmp_path}/catalogue.db"
    with build_engine(lexicon().model_copy(update={"store_url": url})) as engine:
        engine.moderate_many(items(28))
    store = Store(url)
    yield url, store
    store.close()


def test_a_dry_run_over_the_store_diffs_against_the_heads_and_writes_nothing(spark, catalogue, new_policy, tmp_path):
    url, store = catalogue
    before = store.log.last_seq()
    harassing = {d.item_id for d in store.log.heads([f"i{n}" for n in range(28)]).values()
                 if d.action is Action.limit_reach and d.surface == "comment"}
    assert harassing, "the fixture needs items the changed rule decides"
    result = run_rescan(spark, RescanJob(Source.parse(f"db:{url}"), lexicon(new_policy), tmp_path / "out"))
    assert store.log.last_seq() == before  # dry run: the executors had no store
    diff = result.diff
    assert (diff.baseline, diff.items, diff.with_baseline, diff.new_items) == ("store", 28, 28, 0)
    assert diff.changed == diff.escalated == len(harassing)
    assert [(t.old, t.new, t.items) for t in diff.transitions if t.old != t.new] == \
           [("limit_reach", "remove", len(harassing))]
    assert next(b for b in diff.by_surface if b.key == "comment").changed == len(harassing)
    assert next(b for b in diff.by_category if b.key == "harassment").changed == len(harassing)
    new = decisions(tmp_path / "out")
    assert {k for k, v in new.items() if v["action"] == "remove"} >= harassing
    assert all(v["supersedes"] is None for v in new.values())  # decided without the store's heads


def test_enforce_supersedes_the_heads_through_the_engine_and_is_idempotent(spark, catalogue, new_policy, tmp_path):
    url, store = catalogue
    before = {d.item_id: d for d in store.log.heads([f"i{n}" for n in range(28)]).values()}
    job = RescanJob(Source.parse(f"db:{url}"), lexicon(new_policy), tmp_path / "out", enforce=True)
    first = run_rescan(spark, job)
    assert first.enforced and first.diff.changed > 0
    after = store.log.heads(list(before))
    assert all(after[k].supersedes == before[k].decision_id for k in before)  # every head superseded (new policy)
    assert {k for k in before if after[k].action != before[k].action} == \
           {k for k in before if before[k].action is Action.limit_reach and before[k].surface == "comment"}
    seq = store.log.last_seq()
    again = run_rescan(spark, job)
    assert store.log.last_seq() == seq  # the heads stand: nothing added
    assert (again.diff.changed, again.diff.unchanged) == (0, 28)


def test_a_persons_head_stands_and_erased_content_is_left_out(spark, catalogue, new_policy, tmp_path):
    url, store = catalogue
    heads = store.log.heads([f"i{n}" for n in range(28)])
    target = next(d for d in heads.values() if d.action is Action.limit_reach and d.surface == "comment")
    store.supersede(target.decision_id, target.model_copy(update={
        "decision_id": "r" * 64, "supersedes": target.decision_id, "source": "review", "action": Action.allow,
        "categories": (), "reasons": ()}))
    store.content.erase(heads["i0"].content_hash)
    result = run_rescan(spark, RescanJob(Source.parse(f"db:{url}"), lexicon(new_policy), tmp_path / "out"))
    erased_items = sum(1 for d in heads.values() if d.content_hash == heads["i0"].content_hash)
    assert result.erased == erased_items and result.decided == 28 - erased_items
    assert result.diff.human_stands == 1
    assert ("allow", "allow") in {(t.old, t.new) for t in result.diff.transitions}


def test_a_baseline_file_from_referee_moderate_or_an_earlier_rescan(spark, new_policy, tmp_path):
    batch = items(21)
    path = write_jsonl(tmp_path / "items.jsonl", list(batch))
    with build_engine(lexicon()) as engine:
        earlier = engine.moderate_many(batch)
    moderated = tmp_path / "moderated.jsonl"
    moderated.write_text("".join(d.model_dump_json() + "\n" for d in earlier))
    limited = sum(d.action is Action.limit_reach and d.surface == "comment" for d in earlier)
    from_jsonl = run_rescan(spark, RescanJob(Source.parse(str(path)), lexicon(new_policy), tmp_path / "a",
                                             baseline=moderated))
    assert (from_jsonl.diff.with_baseline, from_jsonl.diff.changed) == (21, limited)
    from_parquet = run_rescan(spark, RescanJob(Source.parse(str(path)), lexicon(new_policy), tmp_path / "b",
                                               baseline=tmp_path / "a" / "decisions.parquet"))
    assert (from_parquet.diff.with_baseline, from_parquet.diff.changed) == (21, 0)  # same policy as that run
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item_id": "i1", "action": "delete"}\n')
    with pytest.raises(InputError, match="unknown action.*'delete'"):
        run_rescan(spark, RescanJob(Source.parse(str(path)), lexicon(), tmp_path / "c", baseline=bad))


def test_enforce_without_a_store_is_refused_before_spark_runs(spark, tmp_path):
    path = write_jsonl(tmp_path / "items.jsonl", list(items(3)))
    with pytest.raises(ConfigError, match="--enforce needs the store"):
        run_rescan(spark, RescanJob(Source.parse(str(path)), lexicon(), tmp_path / "out", enforce=True))


def test_a_running_session_is_reused_on_its_master_and_refused_on_another(spark):
    from referee.batch import spark_session

    again = spark_session("local[2]", conf={"spark.sql.shuffle.partitions": "1"})
    assert again.sparkContext.applicationId == spark.sparkContext.applicationId
    assert again.conf.get("spark.sql.session.timeZone") == "UTC"
    with pytest.raises(ConfigError, match=r"--master local\[1\]: this process already runs a Spark session on "
                                          r"local\[2\]"):
        spark_session("local[1]")
    with pytest.raises(ConfigError, match=r"--conf spark.driver.memory=2g: the running Spark session cannot change"):
        spark_session("local[2]", conf={"spark.driver.memory": "2g"})
