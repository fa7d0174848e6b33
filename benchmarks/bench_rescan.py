"""Re-scan throughput: the engine in-process against the Spark job on local[1] and local[2].

Prints a table and name=value lines:
  engine_items_per_s        Engine.moderate_many over parsed items (no I/O, no store)
  inprocess_items_per_s     read the JSONL, decide, write JSON decisions: `referee moderate --no-store`'s work
  spark_local_1_items_per_s run_rescan on local[1]: read, decide on executors, decisions.parquet, diff
  spark_local_2_items_per_s the same on local[2]
  spark_session_s           starting a session (a JVM), not in the job times
  spark_local_N_warm_items_per_s  (--rounds 2) the job again on the same session: workers and engines built

Items are bench_engine's synthetic comments (a 5 % share with a list term, some obfuscated),
decided with the lexicon by default (--detectors to change), dry run, no baseline.
The host's cores are shared: compare the columns of one run, not runs of different days.
Run: .venv/bin/python benchmarks/bench_rescan.py [--items 200000] [--detectors lexicon] [--rounds 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import comments  # the same synthetic comments as bench_engine.py

from referee.batch import RescanJob, Source, run_rescan, spark_session
from referee.build import EngineConfig, build_engine
from referee.ingest import read_items
from referee.model import ContentItem

REPO = Path(__file__).resolve().parents[1]
CHUNK = 10_000  # items per moderate_many call in-process, as an Arrow batch is on an executor


def in_process(config: EngineConfig, path: Path, out: Path) -> tuple[float, float, float]:
    """(engine build s, engine-only items/s, end-to-end items/s)."""
    t0 = time.perf_counter()
    engine = build_engine(config)
    built = time.perf_counter() - t0
    try:
        items = [r for r in read_items(path) if isinstance(r, ContentItem)]
        t0 = time.perf_counter()
        for i in range(0, len(items), CHUNK):
            engine.moderate_many(items[i:i + CHUNK])
        engine_rate = len(items) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        n = 0
        with out.open("w", encoding="utf-8") as f:
            batch: list[ContentItem] = []
            for r in read_items(path):
                if isinstance(r, ContentItem):
                    batch.append(r)
                if len(batch) == CHUNK:
                    n += sum(f.write(d.model_dump_json() + "\n") > 0 for d in engine.moderate_many(batch))
                    batch = []
            n += sum(f.write(d.model_dump_json() + "\n") > 0 for d in engine.moderate_many(batch))
        end_to_end = n / (time.perf_counter() - t0)
    finally:
        engine.close()
    return built, engine_rate, end_to_end


def on_spark(master: str, config: EngineConfig, path: Path, out: Path, rounds: int) -> tuple[float, list[float]]:
    """(session start s, items/s of each round)."""
    t0 = time.perf_counter()
    spark = spark_session(master, "bench-rescan", driver_memory="1g")
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter() - t0
    assert spark.sparkContext.master == master, spark.sparkContext.master
    rates = []
    try:
        for r in range(rounds):
            t0 = time.perf_counter()
            result = run_rescan(spark, RescanJob(Source.parse(str(path)), config, out / f"{master}-{r}"), master)
            rates.append(result.decided / (time.perf_counter() - t0))
    finally:
        spark.stop()
    return started, rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--detectors", default="lexicon", help="comma-separated detectors of the default policy")
    parser.add_argument("--rounds", type=int, default=1, help="jobs per session (2: also the warm figure)")
    parser.add_argument("--masters", default="local[1],local[2]")
    args = parser.parse_args()
    config = EngineConfig(policy=REPO / "policies" / "default.yaml", detectors=args.detectors)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "items.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for item in comments(args.items):
                f.write(item.model_dump_json() + "\n")
        built, engine_rate, end_to_end = in_process(config, path, folder / "decisions.jsonl")
        results = [("engine (in-process, parsed items)", engine_rate, None),
                   ("in-process: JSONL -> decisions JSONL", end_to_end, None)]
        print(f"items={args.items} detectors={args.detectors} engine_build_s={built:.2f}")
        print(f"engine_items_per_s={engine_rate:.0f}")
        print(f"inprocess_items_per_s={end_to_end:.0f}")
        for master in args.masters.split(","):
            started, rates = on_spark(master, config, path, folder, args.rounds)
            name = master.replace("[", "_").replace("]", "").replace("*", "all")
            print(f"spark_session_s={started:.1f} master={master}")
            print(f"spark_{name}_items_per_s={rates[0]:.0f}")
            if len(rates) > 1:
                print(f"spark_{name}_warm_items_per_s={max(rates[1:]):.0f}")
            results.append((f"Spark {master}: JSONL -> decisions.parquet + diff", rates[0],
                            max(rates[1:]) if len(rates) > 1 else None))
    print()
    print(f"{'run':<52} {'items/s':>10} {'warm':>10} {'vs in-process':>14}")
    for name, rate, warm in results:
        print(f"{name:<52} {rate:>10.0f} {'' if warm is None else f'{warm:.0f}':>10} {rate / end_to_end:>13.2f}x")


if __name__ == "__main__":
    main()
