"""What a shadow candidate costs the champion: batches with and without a shadow attached.

The champion is the default policy's lexicon stage writing to a SQLite store; the candidate
is the same engine configuration under another name (the worst case: it does all the work the
champion does, on a second thread of the same process). Rounds alternate champion-only and
champion-with-shadow on fresh item ids; each round is ``--batches`` batches of ``--batch``
items built from examples/comments.jsonl. Prints, as medians over rounds:

- ``champion_ms_per_batch`` without and with the shadow, and the ratio (what the champion's
  callers feel: the GIL is shared with the shadow's thread);
- ``observe_us_per_item``: the champion's own cost of handing items to the shadow;
- ``shadow_items_per_s``: how fast the shadow decides and stores, and ``dropped`` with a
  queue of ``--queue`` items (what a shadow slower than the traffic loses).

    .venv/bin/python benchmarks/bench_shadow.py [--rounds 5] [--batches 20] [--batch 64] [--queue 10000] [--duty 0.25]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from referee.build import EngineConfig, build_engine
from referee.model import ContentItem
from referee.online.shadow import Candidate, Shadow, shadow_store

REPO = Path(__file__).resolve().parents[1]


def items(texts: list[dict], tag: str, n: int) -> list[ContentItem]:
    return [ContentItem.model_validate({**texts[k % len(texts)], "id": f"{tag}-{k}"}) for k in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--queue", type=int, default=10_000)
    parser.add_argument("--duty", type=float, default=0.25, help="Share of time the shadow may work (Shadow.duty).")
    args = parser.parse_args()
    texts = [json.loads(line) for line in (REPO / "examples" / "comments.jsonl").read_text().splitlines() if line]
    with tempfile.TemporaryDirectory() as tmp:
        config = EngineConfig(policy=REPO / "policies" / "default.yaml", detectors=("lexicon",),
                              store_url=f"sqlite:///{tmp}/bench.db")
        champion = build_engine(config)
        store = champion.sink
        shadow = Shadow([Candidate(name="twin", config=config)], shadow_store(store),  # type: ignore[arg-type]
                        queue_size=args.queue, duty=args.duty)
        plain_sink, watching = store, shadow.watching(store)
        without: list[float] = []
        with_shadow: list[float] = []
        observe: list[float] = []
        drained: list[float] = []
        for r in range(args.rounds):
            for mode in ("plain", "shadow"):
                champion.sink = watching if mode == "shadow" else plain_sink
                batch_items = items(texts, f"{mode}{r}", args.batches * args.batch)
                stored_before = shadow.stats().stored
                start = time.perf_counter()
                for b in range(args.batches):
                    champion.moderate_many(batch_items[b * args.batch:(b + 1) * args.batch])
                elapsed = time.perf_counter() - start
                (with_shadow if mode == "shadow" else without).append(1000 * elapsed / args.batches)
                if mode == "shadow":
                    t0 = time.perf_counter()
                    shadow.flush(120)
                    tail = time.perf_counter() - t0
                    done = shadow.stats().stored - stored_before
                    drained.append(done / (elapsed + tail) if done else 0.0)
        decisions = champion.moderate_many(items(texts, "probe", args.batch))
        probe = items(texts, "probe", args.batch)
        for _ in range(50):
            t0 = time.perf_counter()
            shadow.observe(probe, decisions)
            observe.append(1e6 * (time.perf_counter() - t0) / len(probe))
        shadow.flush(120)
        stats = shadow.stats()
        shadow.close()
        champion.close()
    a, b = statistics.median(without), statistics.median(with_shadow)
    print(f"items_per_batch={args.batch} batches_per_round={args.batches} rounds={args.rounds} duty={args.duty} "
          f"queue={args.queue}")
    print(f"champion_ms_per_batch_without_shadow={a:.2f}")
    print(f"champion_ms_per_batch_with_shadow={b:.2f}")
    print(f"ratio={b / a:.3f}")
    print(f"observe_us_per_item={statistics.median(observe):.2f}")
    print(f"shadow_items_per_s={statistics.median(drained):.0f}")
    print(f"observed={stats.observed} stored={stats.stored} dropped={stats.dropped} failed={stats.failed}")


if __name__ == "__main__":
    main()
