"""Re-scan a dataset under a new policy or model on Apache Spark, and say what would change.

The job, driver side (``run_rescan``):

1. reads the source as ``(where, raw item JSON)`` rows: a JSONL file or folder
   (read by Spark in splits, lines numbered exactly as ``referee moderate``
   numbers them), a Parquet dataset of items, or ``db:<url>``, the store's
   catalogue: every item whose head's content is still held (staged to Parquet
   on the driver, since executors never query the store);
2. ships ``EngineConfig.model_dump_json()`` to the executors and decides each
   Arrow batch with ``mapInPandas``. An executor's Python process builds its
   engine once, on its first batch, and keeps it in a module-level cache keyed by
   that JSON (``engine_for``): building per batch would load the policy, the
   lexicon and any model again for every 10,000 rows;
3. writes the decisions as Parquet (``decisions.parquet``), the rows that could
   not be read as JSON lines (``rejected.jsonl``, each naming its line or item
   and field), and the diff against the baseline (``diff.json``): how many items
   would change action, old action to new, by category and by surface.

Dry run by default: executors build their engines without a store, so nothing is
written anywhere but ``--out``. ``enforce=True`` builds them with the store, so
each decision goes through the engine's normal path (a head that stands is
kept, anything else is decided and supersedes the head) and is appended to the
log; the baseline is read from the store before, so the diff still compares
with what was there. Safe to retry: a re-run (or a retried Spark task) finds the
heads it wrote and adds nothing.

The baseline is each item's head in the store (``db:`` sources, or
``store_url``), or a file of earlier decisions (``baseline``: Parquet from an
earlier re-scan, or the JSONL ``referee moderate`` writes). A head a person
decided stands under a ``keep_human`` policy, so the diff counts it as kept
(``human_stands``), as ``enforce`` would.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, TypeAdapter

from referee.batch.export import write_heads, write_held_items
from referee.build import EngineConfig, build_engine
from referee.engine import Engine
from referee.errors import ConfigError, InputError
from referee.ingest import parse_line
from referee.model import Action, ContentItem, Decision, Reason
from referee.policy import Policy
from referee.store import Store

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

SourceKind = Literal["jsonl", "parquet", "db"]
_SUFFIXES: dict[str, SourceKind] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
#: Fields an item may have (``ingest.parse_item``'s): a Parquet source's columns must be among them.
ITEM_COLUMNS = frozenset(ContentItem.model_fields) | {"text", "media"}
#: Timestamps of a Parquet source as JSON: ISO 8601 with the offset, microseconds kept.
_ISO = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"


@dataclass(frozen=True)
class Source:
    """Where the items come from: ``kind`` and a path (or, for ``db``, a store URL)."""

    kind: SourceKind
    location: str

    @classmethod
    def parse(cls, text: str) -> Source:
        """``db:<url>``, a ``.jsonl``/``.parquet`` file, a folder of them, or a URI (``s3a://...``)."""
        if text.startswith("db:"):
            url = text[3:]
            if not url:
                raise ConfigError("--source db: needs the store's URL, e.g. db:sqlite:///referee.db")
            return cls("db", url)
        if "://" in text:  # a cluster's file system: nothing to look at from here
            kind = _SUFFIXES.get(Path(text.rstrip("/")).suffix.lower())
            if kind is None:
                raise ConfigError(f"--source {text!r}: cannot tell JSONL from Parquet; end the name with "
                                  ".jsonl or .parquet")
            return cls(kind, text)
        path = Path(text)
        if path.is_dir():
            suffixes = {p.suffix.lower() for p in path.rglob("*") if p.is_file() and not p.name.startswith(("_", "."))}
            kinds = {_SUFFIXES[s] for s in suffixes if s in _SUFFIXES}
            if len(kinds) != 1:
                found = ", ".join(sorted(suffixes)) or "no files"
                raise ConfigError(f"--source {text}: a folder needs .jsonl or .parquet files (one kind), found {found}")
            return cls(kinds.pop(), str(path.resolve()))
        if not path.is_file():
            raise ConfigError(f"--source {text}: no such file or folder")
        kind = _SUFFIXES.get(path.suffix.lower())
        if kind is None:
            hint = "; convert CSV with `referee moderate`'s reader or write JSONL" if path.suffix == ".csv" else ""
            raise ConfigError(f"--source {text}: expected a .jsonl or .parquet file, or db:<url>{hint}")
        return cls(kind, str(path.resolve()))


# -- executors -------------------------------------------------------------------------
#: The engine of each config this Python process has built: executors' workers are reused
#: from batch to batch and task to task, so each builds its engine once.
_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()
#: How many engines this process has built (the cache's test).
builds = 0


def engine_for(config_json: str) -> Engine:
    """This process's engine for ``config_json``, built on first use and kept."""
    global builds
    with _ENGINES_LOCK:
        engine = _ENGINES.get(config_json)
        if engine is None:
            engine = build_engine(EngineConfig.model_validate_json(config_json))
            if not _ENGINES:
                atexit.register(close_engines)
            _ENGINES[config_json] = engine
            builds += 1
        return engine


def close_engines() -> None:
    """Close every cached engine (its detectors, its store); at exit, and in tests."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.close()
        _ENGINES.clear()


def parse_raw(raw: bytes | None, where: str, text_fields: tuple[str, ...] = ()) -> ContentItem | InputError | None:
    """One item from the bytes of a JSON object, read as ``referee moderate`` reads a line
    (``ingest.parse_line``): None for a blank line, else the item or an InputError naming
    ``where`` and the field. ``text_fields`` (Parquet) may hold nested values as JSON text."""
    if raw is None:
        return None
    return parse_line(raw, where, functools.partial(_unnest, fields=text_fields, where=where) if text_fields else None)


def _unnest(data: Any, fields: tuple[str, ...], where: str) -> Any:
    """A Parquet row's ``parts``/``context`` given as JSON text, decoded in place."""
    if isinstance(data, dict):
        for name in fields:
            if isinstance(data.get(name), str):
                try:
                    data[name] = json.loads(data[name])
                except json.JSONDecodeError as exc:
                    raise InputError(f"a text column must hold JSON ({exc.msg} at column {exc.colno})",
                                     f"{where}: {name}") from exc
    return data


#: The rows ``decide_frames`` yields: a decision's columns, or ``error``/``where`` for a rejected row.
OUTPUT_SCHEMA = (
    "item_id string, surface string, country string, action string, strike boolean, categories array<string>, "
    "reasons string, decision string, decision_id string, supersedes string, source string, content_hash string, "
    "policy_id string, policy_version string, provisional boolean, created_at timestamp, "
    "error string, where string"
)
_COLUMNS = [c.split()[0] for c in OUTPUT_SCHEMA.split(",")]
_REASONS: TypeAdapter[tuple[Reason, ...]] = TypeAdapter(tuple[Reason, ...])


def decision_row(d: Decision) -> dict[str, Any]:
    return {
        "item_id": d.item_id, "surface": d.surface, "country": d.country, "action": d.action.value,
        "strike": d.strike, "categories": list(d.categories), "reasons": _REASONS.dump_json(d.reasons).decode(),
        "decision": d.json_bytes.decode(), "decision_id": d.decision_id, "supersedes": d.supersedes,
        "source": d.source, "content_hash": d.content_hash, "policy_id": d.policy_id,
        "policy_version": d.policy_version, "provisional": d.provisional, "created_at": d.created_at,
        "error": None, "where": None,
    }


def decide_rows(engine: Engine, wheres: list[str], raws: list[bytes | None], text_fields: tuple[str, ...] = (),
                wait_async: bool = False) -> list[dict[str, Any]]:
    """Decide one batch of source rows: a row per decision and per rejected row, in order."""
    rows: list[dict[str, Any] | None] = []
    items: list[ContentItem] = []
    slots: list[int] = []
    for where, raw in zip(wheres, raws):
        got = parse_raw(raw, where, text_fields)
        if got is None:
            continue
        if isinstance(got, InputError):
            rows.append({**dict.fromkeys(_COLUMNS), "error": got.reason, "where": got.where})
        else:
            slots.append(len(rows))
            rows.append(None)
            items.append(got)
    for slot, decision in zip(slots, engine.moderate_many(items)):
        rows[slot] = decision_row(decision)
    if wait_async:
        engine.wait_async()  # enforced: async stages write their decisions before the task ends
    return [r for r in rows if r is not None]


def decide_frames(config_json: str, frames: Iterator[pd.DataFrame], text_fields: tuple[str, ...] = (),
                  wait_async: bool = False) -> Iterator[pd.DataFrame]:
    """``mapInPandas``'s function: ``(where, raw)`` frames in, ``OUTPUT_SCHEMA`` frames out."""
    import pandas as pd

    engine = engine_for(config_json)
    for frame in frames:
        rows = decide_rows(engine, frame["where"].tolist(), frame["raw"].tolist(), text_fields, wait_async)
        out = pd.DataFrame({c: [r[c] for r in rows] for c in _COLUMNS})
        out["created_at"] = pd.to_datetime(out["created_at"], utc=True)
        yield out


# -- the driver ------------------------------------------------------------------------
class Transition(BaseModel):
    old: str  # "(none)": the item had no decision
    new: str
    items: int


class Breakdown(BaseModel):
    key: str
    items: int
    changed: int
    escalated: int
    relaxed: int


class Diff(BaseModel):
    """What the new decisions change against the baseline."""

    baseline: str  # where the baseline came from: "store", a file, or "none"
    items: int  # decided in this run
    with_baseline: int
    new_items: int  # no earlier decision
    changed: int
    unchanged: int
    escalated: int  # to a more severe action
    relaxed: int
    human_stands: int  # a person's head that stands under the policy, whatever the new decision
    transitions: list[Transition]
    by_category: list[Breakdown]
    by_surface: list[Breakdown]


@dataclass(frozen=True)
class RescanJob:
    source: Source
    config: EngineConfig  # policy, detectors, batch size; its store_url is set by the job
    out: Path
    enforce: bool = False
    store_url: str | None = None  # the baseline's heads, and the log ``enforce`` appends to
    baseline: str | Path | None = None  # a path or a URI (``s3a://...``; a Path would fold its //)
    partitions: int | None = None


@dataclass
class RescanResult:
    decided: int
    rejected: int
    diff: Diff
    files: list[Path]
    rejected_sample: list[dict[str, str]] = field(default_factory=list)
    erased: int = 0  # db sources: items left out because their content was erased
    enforced: bool = False


#: Rejected rows printed and kept in the result (all of them are in rejected.jsonl).
REJECTED_SAMPLE = 20


def executor_config(job: RescanJob) -> EngineConfig:
    """The config executors build from: the policy's absolute path, and the store only when enforcing."""
    return job.config.model_copy(update={
        "policy": job.config.policy.resolve(),
        "store_url": _absolute_sqlite(job.store_url) if job.enforce else None,
    })


def _absolute_sqlite(url: str | None) -> str | None:
    """A relative SQLite path means the driver's working directory, wherever executors run."""
    if url is None or not url.startswith("sqlite:///") or url.startswith("sqlite:////") or ":memory:" in url:
        return url
    return "sqlite:///" + str(Path(url[len("sqlite:///"):]).resolve())


def check_job(job: RescanJob, master: str) -> RescanJob:
    """The job as it will run, or ConfigError naming the option to fix."""
    store_url = job.store_url
    if job.source.kind == "db":
        if store_url is not None and store_url != job.source.location:
            raise ConfigError("--db-url and --source db:<url> name different stores; give one")
        store_url = job.source.location
    if job.enforce and store_url is None:
        raise ConfigError("--enforce needs the store to append to: --source db:<url> or --db-url URL")
    if job.enforce and job.baseline is not None:
        raise ConfigError("--enforce compares with the store's heads; drop --baseline")
    if job.enforce and not master.startswith("local") and (store_url or "").startswith("sqlite"):
        raise ConfigError("--enforce on a cluster needs a PostgreSQL store: a SQLite file is one machine's")
    baseline = None if job.baseline is None else str(job.baseline)
    if baseline is not None and "://" not in baseline and not Path(baseline).exists():
        raise ConfigError(f"--baseline {baseline}: no such file or folder")
    if job.partitions is not None and job.partitions < 1:
        raise ConfigError(f"--partitions must be at least 1, got {job.partitions}")
    Policy.from_file(job.config.policy)  # a policy that does not load fails here, not on every executor
    return RescanJob(job.source, job.config, job.out, job.enforce, _absolute_sqlite(store_url), baseline,
                     job.partitions)


def run_rescan(spark: SparkSession, job: RescanJob, master: str = "local") -> RescanResult:
    """Run ``job`` on ``spark``; see the module docstring for what it reads and writes.

    Three Spark jobs: the decisions (kept on the executors' disks, ``DISK_ONLY``, so
    nothing is decided twice), one aggregate for the diff and the rejected count, and the
    rejected rows when there are any."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    job = check_job(job, master)
    policy = Policy.from_file(job.config.policy)
    out = job.out
    out.mkdir(parents=True, exist_ok=True)
    staging = out / "_staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    rows: DataFrame | None = None
    try:
        erased = 0
        baseline_name = "none"
        baseline: DataFrame | None = None
        if job.baseline is not None:
            baseline, baseline_name = read_baseline(spark, str(job.baseline)), str(job.baseline)
        elif job.store_url is not None:
            store = Store(job.store_url)
            try:
                write_heads(store, staging / "heads.parquet")  # before any decision is enforced
                if job.source.kind == "db":
                    erased = write_held_items(store, staging / "items.parquet").erased
            finally:
                store.close()
            baseline, baseline_name = spark.read.parquet(str(staging / "heads.parquet")), "store"
        source, text_fields = read_source(spark, job.source, staging)
        if job.partitions is not None:
            source = source.repartition(job.partitions)
        config_json = executor_config(job).model_dump_json()
        fn = functools.partial(decide_frames, config_json, text_fields=text_fields, wait_async=job.enforce)
        rows = source.mapInPandas(fn, OUTPUT_SCHEMA).persist(StorageLevel.DISK_ONLY)
        decided_path = out / "decisions.parquet"
        rows.where(F.col("error").isNull()).drop("error", "where").write.mode("overwrite").parquet(str(decided_path))
        groups = diff_groups(rows, baseline, keep_human=policy.document.reautomation == "keep_human")
        diff, n_rejected = summarize(groups, baseline_name)
        rejected_path = out / "rejected.jsonl"
        sample: list[dict[str, str]] = []
        with rejected_path.open("w", encoding="utf-8") as f:
            if n_rejected:
                for r in rows.where(F.col("error").isNotNull()).select("where", "error").toLocalIterator():
                    entry = {"where": r["where"], "error": r["error"]}
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    if len(sample) < REJECTED_SAMPLE:
                        sample.append(entry)
        diff_path = out / "diff.json"
        diff_path.write_text(diff.model_dump_json(indent=2) + "\n", encoding="utf-8")
    finally:
        if rows is not None:
            rows.unpersist()
        shutil.rmtree(staging, ignore_errors=True)
    return RescanResult(decided=diff.items, rejected=n_rejected, diff=diff,
                        files=[decided_path, rejected_path, diff_path], rejected_sample=sample, erased=erased,
                        enforced=job.enforce)


def read_source(spark: SparkSession, source: Source, staging: Path) -> tuple[DataFrame, tuple[str, ...]]:
    """The source as ``(where, raw)`` rows, and the columns that hold nested values as JSON text."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    if source.kind == "jsonl":
        return _jsonl_lines(spark, source.location), ()
    if source.kind == "db":
        return spark.read.parquet(str(staging / "items.parquet")), ()
    frame = spark.read.parquet(source.location)
    unknown = sorted(set(frame.columns) - ITEM_COLUMNS)
    if unknown:
        raise InputError(f"unknown column(s) {', '.join(unknown)}; an item's columns are "
                         f"{', '.join(sorted(ITEM_COLUMNS))}: rename, drop, or nest them under 'context'",
                         f"--source {source.location}")
    if "id" not in frame.columns:
        raise InputError("the items need an 'id' column", f"--source {source.location}")
    text_fields = tuple(f.name for f in frame.schema.fields
                        if f.name in ("parts", "context") and isinstance(f.dataType, StringType))
    raw = F.to_json(F.struct(*[F.col(c) for c in frame.columns]),
                    {"timestampFormat": _ISO, "ignoreNullFields": "true"})
    file = F.regexp_extract(F.col("_metadata.file_path"), r"([^/]+)$", 1)
    where = F.concat(file, F.lit(": item "), F.coalesce(F.col("id").cast("string"), F.lit("(no id)")))
    return frame.select(where.alias("where"), raw.cast("binary").alias("raw")), text_fields


def _jsonl_lines(spark: SparkSession, location: str) -> DataFrame:
    """JSONL lines with their line numbers, computed without a pass through Python.

    Spark reads a file in splits, in file order within each file, and numbers rows
    ``monotonically_increasing_id()`` = partition << 33 | row within the partition. One small
    aggregate counts each (file, partition)'s rows; a line's number is the lines of its
    file in earlier partitions plus its row within its own."""
    from pyspark.sql import functions as F

    lines = spark.read.text(location).select(
        F.col("_metadata.file_path").alias("file"),
        F.monotonically_increasing_id().alias("mid"),
        F.col("value").cast("binary").alias("raw"),
    ).withColumn("pid", F.shiftright(F.col("mid"), 33))
    counts = sorted((r["file"], r["pid"], r["first"], r["n"]) for r in
                    lines.groupBy("file", "pid").agg(F.min("mid").alias("first"), F.count("*").alias("n")).collect())
    offsets = []
    seen: dict[str, int] = {}
    for file, pid, first, n in counts:
        offsets.append((file, pid, first, seen.get(file, 0) + 1))
        seen[file] = seen.get(file, 0) + n
    many = len(seen) > 1
    table = spark.createDataFrame(offsets, "o_file string, o_pid long, o_first long, o_line long")
    joined = lines.join(F.broadcast(table), (lines["file"] == table["o_file"]) & (lines["pid"] == table["o_pid"]))
    number = (F.col("o_line") + F.col("mid") - F.col("o_first")).cast("string")
    prefix = F.concat(F.regexp_extract(F.col("file"), r"([^/]+)$", 1), F.lit(" ")) if many else F.lit("")
    return joined.select(F.concat(prefix, F.lit("line "), number).alias("where"), "raw")


def read_baseline(spark: SparkSession, location: str) -> DataFrame:
    """Earlier decisions, one per item: Parquet (a re-scan's ``decisions.parquet``) or JSONL
    (what ``referee moderate`` writes). An item with several keeps its latest."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if location.rstrip("/").lower().endswith((".jsonl", ".ndjson", ".json")) or (
            Path(location).is_dir() and any(Path(location).glob("*.jsonl"))):
        frame = spark.read.schema("item_id string, action string, categories array<string>, source string, "
                                  "content_hash string, created_at timestamp").json(location)
    else:
        frame = spark.read.parquet(location)
        if "item_id" not in frame.columns or "action" not in frame.columns:
            raise InputError("a baseline needs item_id and action columns (a re-scan's decisions.parquet has them)",
                             f"--baseline {location}")
        for name, kind in (("categories", "array<string>"), ("source", "string"), ("content_hash", "string"),
                           ("created_at", "timestamp")):
            if name not in frame.columns:
                frame = frame.withColumn(name, F.lit(None).cast(kind))
    actions = [a.value for a in Action]
    bad = frame.where(F.col("item_id").isNull() | ~F.col("action").isin(actions) | F.col("action").isNull())
    first_bad = bad.select("item_id", "action").first()
    if first_bad is not None:
        raise InputError(f"{bad.count()} row(s) without an item_id or with an unknown action "
                         f"(first: item {first_bad['item_id']!r}, action {first_bad['action']!r}); actions are "
                         f"{', '.join(actions)}", f"--baseline {location}")
    latest = Window.partitionBy("item_id").orderBy(F.col("created_at").desc_nulls_last())
    return (frame.withColumn("_n", F.row_number().over(latest)).where(F.col("_n") == 1)
            .select("item_id", "action", F.coalesce("categories", F.array().cast("array<string>")).alias("categories"),
                    F.coalesce("source", F.lit("automated")).alias("source"), "content_hash"))


#: ``diff_groups``' columns: one row per combination, with its item count ``n``.
GROUP_COLUMNS = ("rejected", "old", "new", "stands", "surface", "cats")


def diff_groups(rows: DataFrame, baseline: DataFrame | None, keep_human: bool) -> list[dict[str, Any]]:
    """The decided rows beside the baseline, counted per (rejected, old action, new action,
    human head stands, surface, category set): one Spark aggregate, a few hundred rows back.
    ``new`` is the action enforcing would leave: a person's head that stands keeps its own."""
    from pyspark.sql import functions as F

    spark = rows.sparkSession
    if baseline is None:
        baseline = spark.createDataFrame([], "item_id string, action string, categories array<string>, "
                                             "source string, content_hash string")
    b = baseline.select(F.col("item_id").alias("b_item"), F.col("action").alias("old"),
                        F.col("categories").alias("old_categories"), F.col("source").alias("old_source"),
                        F.col("content_hash").alias("old_hash"))
    joined = rows.join(b, rows["item_id"] == b["b_item"], "left")
    stands = (F.col("b_item").isNotNull() & F.lit(keep_human) & (F.col("old_source") != "automated")
              & (F.col("old_hash").isNull() | (F.col("old_hash") == F.col("content_hash"))))
    empty = F.array().cast("array<string>")
    found = joined.select(
        F.col("error").isNotNull().alias("rejected"),
        "old",
        F.when(stands, F.col("old")).otherwise(F.col("action")).alias("new"),
        F.coalesce(stands, F.lit(False)).alias("stands"),
        "surface",
        F.array_sort(F.array_distinct(F.concat(F.coalesce("categories", empty),
                                               F.coalesce("old_categories", empty)))).alias("cats"),
    ).groupBy(*GROUP_COLUMNS).agg(F.count("*").alias("n")).collect()
    return [r.asDict() for r in found]


@dataclass
class _Tally:
    items: int = 0
    changed: int = 0
    escalated: int = 0
    relaxed: int = 0

    def add(self, n: int, old: str | None, new: str) -> None:
        self.items += n
        if old is not None:
            self.changed += n * (old != new)
            self.escalated += n * (Action(new).severity > Action(old).severity)
            self.relaxed += n * (Action(new).severity < Action(old).severity)

    def row(self, key: str) -> Breakdown:
        return Breakdown(key=key, items=self.items, changed=self.changed, escalated=self.escalated,
                         relaxed=self.relaxed)


def summarize(groups: list[dict[str, Any]], baseline: str) -> tuple[Diff, int]:
    """The diff (and the rejected count) from ``diff_groups``' counts."""
    rejected = sum(g["n"] for g in groups if g["rejected"])
    total = _Tally()
    with_baseline = stands = 0
    moves: dict[tuple[str, str], int] = {}
    by: dict[str, dict[str, _Tally]] = {"category": {}, "surface": {}}
    for g in groups:
        if g["rejected"]:
            continue
        n, old, new = g["n"], g["old"], g["new"]
        total.add(n, old, new)
        with_baseline += n * (old is not None)
        stands += n * bool(g["stands"])
        moves[(old or "(none)", new)] = moves.get((old or "(none)", new), 0) + n
        for kind, keys in (("category", g["cats"] or ["(none)"]), ("surface", [g["surface"]])):
            for key in keys:
                by[kind].setdefault(key, _Tally()).add(n, old, new)

    def table(kind: str) -> list[Breakdown]:
        return sorted((t.row(k) for k, t in by[kind].items()), key=lambda x: (-x.changed, -x.items, x.key))

    transitions = sorted((Transition(old=o, new=n, items=c) for (o, n), c in moves.items()),
                         key=lambda t: (-t.items, t.old, t.new))
    diff = Diff(baseline=baseline, items=total.items, with_baseline=with_baseline,
                new_items=total.items - with_baseline, changed=total.changed,
                unchanged=with_baseline - total.changed, escalated=total.escalated, relaxed=total.relaxed,
                human_stands=stands, transitions=transitions, by_category=table("category"),
                by_surface=table("surface"))
    return diff, rejected


__all__ = [
    "ITEM_COLUMNS",
    "OUTPUT_SCHEMA",
    "Breakdown",
    "Diff",
    "RescanJob",
    "RescanResult",
    "Source",
    "Transition",
    "check_job",
    "close_engines",
    "decide_frames",
    "decide_rows",
    "decision_row",
    "diff_groups",
    "engine_for",
    "executor_config",
    "parse_raw",
    "read_baseline",
    "read_source",
    "run_rescan",
    "summarize",
]
