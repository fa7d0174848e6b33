"""The PDQ index at scale: random 256-bit codes plus planted near-duplicates.

Builds a ``HashIndex`` (numpy multi-index hashing) over ``--n`` random codes, plants
``--queries`` near-duplicates (a random code with 0-31 of its bits flipped, uniform),
and measures batched lookups (batches of ``--batch``) and single lookups at radius 31.
Recall is measured against the brute-force path on ``--exact`` of the queries (brute
force over 10M codes runs at a few lookups a second) and, separately, on the planted
targets for every query. Prints ``index_build_s=``, ``lookups_per_s=``,
``single_lookups_per_s=``, ``recall_at_31=`` (vs brute force), ``planted_recall=``,
``index_mb=``, ``rss_mb=`` (resident after the build) and ``peak_rss_mb=``; then
``merge_s=`` (adding ``--add`` codes to the built tables, the incremental path a bank
change takes) and ``verify_ceiling_per_s=``: the rate if a lookup cost nothing but
fetching and popcounting its candidates (what no probing scheme with these tables can beat).

Every rate is given twice: per wall-clock second and per CPU second of this process
(``_cpu``). On a shared machine the wall rate falls with the load; the CPU rate is what one
core does.

``--baseline FILE`` loads another index module (say a copy of an older ``index.py``) and
measures it in the same run on the same codes and queries, alternating rounds, and prints
the new/old ratios: the only fair comparison on a machine whose load changes.

    .venv/bin/python benchmarks/bench_hashes.py [--n 10000000] [--queries 10000] [--tables 11] [--flips 1]
        [--bucket-bits B] [--baseline /tmp/old_index.py] [--rounds 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from referee.plugins.image_hash import HashIndex
from referee.plugins.image_hash.index import as_words, hamming_words


def planted(codes: np.ndarray, q: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    targets = rng.integers(0, len(codes), q)
    bits = np.unpackbits(codes[targets], axis=1)
    flips = rng.integers(0, 32, q)
    for i, d in enumerate(flips):
        bits[i, rng.choice(256, d, replace=False)] ^= 1
    return np.packbits(bits, axis=1), targets


def rss_now_mb() -> float:
    """Resident memory now (Linux), without the build's temporaries that the peak includes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall s, CPU s, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def load_module(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("baseline_index", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--baseline {path!r}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_index"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def lookups(index: Any, queries: np.ndarray, batch: int, single: int) -> dict[str, Any]:
    def batched() -> list[list[tuple[int, int]]]:
        found: list[list[tuple[int, int]]] = []
        for lo in range(0, len(queries), batch):
            found.extend(index.search(queries[lo:lo + batch], 31))
        return found

    def singles() -> None:
        for i in range(single):
            index.search(queries[i:i + 1], 31)

    bw, bc, found = timed(batched)
    sw, sc, _ = timed(singles)
    return {"batched": len(queries) / bw, "batched_cpu": len(queries) / bc,
            "single": single / sw, "single_cpu": single / sc, "found": found}


def verify_ceiling(words: np.ndarray, queries: np.ndarray, per_query: int, rng: np.random.Generator) -> float:
    """Lookups per CPU second if a lookup only fetched and popcounted ``per_query`` random codes."""
    q = as_words(queries[:1000])
    cid = rng.integers(0, len(words), len(q) * per_query)
    qid = np.repeat(np.arange(len(q)), per_query)
    _, cpu, _ = timed(lambda: hamming_words(np.take(q, qid, axis=0), np.take(words, cid, axis=0)) <= 31)
    return len(q) / cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--single", type=int, default=1000)
    ap.add_argument("--exact", type=int, default=40, help="queries checked against brute force")
    ap.add_argument("--tables", type=int, default=11)
    ap.add_argument("--flips", type=int, default=1)
    ap.add_argument("--bucket-bits", type=int, default=None, help="direct-address bits per table (default: the index's)")
    ap.add_argument("--add", type=int, default=10_000, help="codes added after the build (merge_s=)")
    ap.add_argument("--baseline", default=None, help="another index module to measure in the same run")
    ap.add_argument("--rounds", type=int, default=2, help="measurement rounds (alternating with the baseline)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    def random_codes() -> np.ndarray:
        return np.random.default_rng(args.seed).integers(0, 256, (args.n, 32), dtype=np.uint8)

    rng = np.random.default_rng(args.seed + 2)
    queries, targets = planted(random_codes(), args.queries, rng)
    extra = {} if args.bucket_bits is None else {"bucket_bits": args.bucket_bits}

    def build(cls: Any, **kw: Any) -> Any:
        return cls(random_codes(), tables=args.tables, flips=args.flips, brute_below=0, **kw)

    # The codes are made again for each build, so the resident memory below is this index's alone.
    build_s, build_cpu, index = timed(lambda: build(HashIndex, **extra))
    rss_built = rss_now_mb()
    peak_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    baseline, base_s = None, 0.0
    if args.baseline:
        base_s, _, baseline = timed(lambda: build(load_module(args.baseline).HashIndex))

    runs: dict[str, list[dict[str, Any]]] = {"new": [], "old": []}
    for _ in range(args.rounds):
        runs["new"].append(lookups(index, queries, args.batch, args.single))
        if baseline is not None:
            runs["old"].append(lookups(baseline, queries, args.batch, args.single))
    found = runs["new"][0]["found"]

    planted_recall = sum(any(c == t for c, _ in hits) for hits, t in zip(found, targets)) / len(targets)
    sample = rng.choice(len(queries), min(args.exact, len(queries)), replace=False)
    brute_wall, _, exact = timed(lambda: index.search_exact(queries[sample], 31))
    want = sum(len(e) for e in exact)
    got = sum(len(set(found[i]) & set(e)) for i, e in zip(sample, exact))
    wrong = sum(len(set(found[i]) - set(e)) for i, e in zip(sample, exact))

    def best(name: str, key: str) -> float:
        return max(r[key] for r in runs[name])

    print(f"n={args.n} tables={args.tables} flips={args.flips} bucket_bits={index.bucket_bits} "
          f"exact_radius={index.exact_radius} rounds={args.rounds} (rates: the best round)")
    print(f"index_build_s={build_s:.1f}  # cpu {build_cpu:.1f} s")
    for key in ("batched", "single"):
        label = "lookups_per_s" if key == "batched" else "single_lookups_per_s"
        rounds = ", ".join(f"{r[key]:.0f}" for r in runs["new"])
        print(f"{label}={best('new', key):.0f}  # rounds: {rounds}")
        print(f"{label}_cpu={best('new', key + '_cpu'):.0f}")
    print(f"brute_force_lookups_per_s={len(sample) / brute_wall:.1f}")
    print(f"recall_at_31={got / max(want, 1):.4f}  # {got}/{want} brute-force matches on {len(sample)} queries; "
          f"{wrong} returned beyond them")
    print(f"planted_recall={planted_recall:.4f}")
    print(f"index_mb={index.nbytes / 2**20:.0f}")
    print(f"rss_mb={rss_built:.0f}  # resident after the build (index, queries, interpreter and numpy)")
    print(f"peak_rss_mb={peak_built:.0f}  # the build's temporaries included")

    if baseline is not None:
        same = runs["old"][0]["found"] == found
        print(f"baseline={args.baseline} baseline_build_s={base_s:.1f} baseline_index_mb={baseline.nbytes / 2**20:.0f} "
              f"same_results={same}")
        for key in ("batched", "batched_cpu", "single", "single_cpu"):
            old, new = best("old", key), best("new", key)
            print(f"baseline_{key}_per_s={old:.0f}  new/old={new / old:.2f}  "
                  f"# rounds old: {', '.join(f'{r[key]:.0f}' for r in runs['old'])}")

    if hasattr(index, "merge") and args.add:
        more = np.random.default_rng(args.seed + 1).integers(0, 256, (args.add, 32), dtype=np.uint8)
        index.merge_at = 10**12  # into the side buffer first, then one timed merge
        index.add(more)
        merge_s, merge_cpu, _ = timed(index.merge)
        print(f"merge_s={merge_s:.2f}  # {args.add} codes into the built tables (cpu {merge_cpu:.2f} s; "
              f"a full build took {build_s:.1f} s)")
        hits = index.search(more[:100], 0)
        print(f"merged_found={sum(any(c == len(index) - args.add + i for c, _ in h) for i, h in enumerate(hits))}/100")

    tables = getattr(index, "_tables", None)
    per_query = round(sum((c.width + 1) * len(index) / 2 ** c.width for c in tables.chunks)) if tables else 0
    if per_query:
        ceiling = verify_ceiling(index._words, queries, per_query, rng)
        print(f"verify_ceiling_per_s={ceiling:.0f}  # cpu: fetching and popcounting {per_query} random "
              f"candidates a query, nothing else")


if __name__ == "__main__":
    main()
