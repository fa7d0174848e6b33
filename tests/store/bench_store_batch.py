"""The store's share of moderating a batch: this tree's ``heads`` + ``append`` against the
release before the split (0c50325), whose engine called ``get_decisions`` + ``save_decisions``.

Not a test (pytest does not collect it). Run both in the same session, alternating:

    git worktree add /tmp/referee-old 0c50325
    PYTHONPATH=/tmp/referee-old/src .venv/bin/python tests/store/bench_store_batch.py --old
    .venv/bin/python tests/store/bench_store_batch.py
    # --batch 256, --url postgresql+psycopg://... (an empty, upgraded schema for this tree)

Items have random (uuid) ids and ~30-word texts; decisions carry a few signals each. Prints
medians over the batches after the first 100, in thread CPU time (less sensitive to other
processes on a shared machine than wall time) and wall time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid

from referee.engine import decide
from referee.model import ContentItem, Signal
from referee.policy import Policy

POLICY = """
id: bench
version: "1"
categories:
  hate: {description: Attacks on protected groups., severity: high}
  spam: {description: Unsolicited commercial messages., severity: low}
detectors:
  words: {}
surfaces:
  default:
    rules:
      - {id: default.any, categories: "*", threshold: 0.5, action: hold_for_review}
"""
WORDS = "this track album song beat drop chorus verse bass drums love hate great replay playlist".split()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", action="store_true", help="the 0c50325 store API (get_decisions + save_decisions)")
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--batches", type=int, default=600)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    from referee.store import DecisionStore

    policy = Policy.from_yaml(POLICY, source="bench.yaml")
    rng = random.Random(7)
    batches = []
    for _ in range(args.batches):
        batch = []
        for _ in range(args.batch):
            item = ContentItem(id=str(uuid.UUID(int=rng.getrandbits(128))),
                               text=" ".join(rng.choice(WORDS) for _ in range(30)))
            signals = [Signal(detector="words", detector_version="1", category=c, score=rng.random() * 0.4)
                       for c in ("hate", "spam")]
            batch.append((item, decide(policy, item, signals, (), {"words": "1"})))
        batches.append(batch)
    with tempfile.TemporaryDirectory() as tmp:
        store = DecisionStore(args.url or f"sqlite:///{tmp}/bench.db")
        cpu: dict[str, list[float]] = {"lookup": [], "write": []}
        wall: dict[str, list[float]] = {"lookup": [], "write": []}
        for batch in batches:
            c0, w0 = time.thread_time(), time.perf_counter()
            if args.old:
                store.get_decisions([d.decision_id for _, d in batch])
            else:
                store.heads([item.id for item, _ in batch])
            c1, w1 = time.thread_time(), time.perf_counter()
            if args.old:
                store.save_decisions(batch)
            else:
                store.append(batch)
            c2, w2 = time.thread_time(), time.perf_counter()
            cpu["lookup"].append(c1 - c0)
            cpu["write"].append(c2 - c1)
            wall["lookup"].append(w1 - w0)
            wall["write"].append(w2 - w1)
        store.close()

    def med(xs: list[float]) -> float:
        return statistics.median(xs[100:]) * 1e6

    name = "old (get_decisions + save_decisions)" if args.old else "new (heads + append)"
    print(f"{name}, batch {args.batch}: cpu lookup_us={med(cpu['lookup']):.0f} write_us={med(cpu['write']):.0f} "
          f"total_us={med(cpu['lookup']) + med(cpu['write']):.0f}; wall lookup_us={med(wall['lookup']):.0f} "
          f"write_us={med(wall['write']):.0f}")


if __name__ == "__main__":
    main()
