"""The PDQ index at scale: random 256-bit codes plus planted near-duplicates.

Builds a ``HashIndex`` (numpy multi-index hashing) over ``--n`` random codes, plants
``--queries`` near-duplicates (a random code with 0-31 of its bits flipped, uniform),
and measures batched lookups (batches of ``--batch``) and single lookups at radius 31.
Recall is measured against the brute-force path on ``--exact`` of the queries (brute
force over 10M codes runs at a few lookups a second) and, separately, on the planted
targets for every query. Prints ``index_build_s=``, ``lookups_per_s=``,
``single_lookups_per_s=``, ``recall_at_31=`` (vs brute force), ``planted_recall=``,
``index_mb=``, ``rss_mb=`` (resident after the build) and ``peak_rss_mb=``.

    .venv/bin/python benchmarks/bench_hashes.py [--n 10000000] [--queries 10000] [--tables 11] [--flips 1]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from referee.plugins.image_hash import HashIndex


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
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    codes = rng.integers(0, 256, (args.n, 32), dtype=np.uint8)
    queries, targets = planted(codes, args.queries, rng)

    began = time.perf_counter()
    extra = {} if args.bucket_bits is None else {"bucket_bits": args.bucket_bits}
    index = HashIndex(codes, tables=args.tables, flips=args.flips, brute_below=0, **extra)
    build_s = time.perf_counter() - began
    del codes  # the index keeps its own copy (as words)
    rss_built = rss_now_mb()

    began = time.perf_counter()
    found: list[list[tuple[int, int]]] = []
    for lo in range(0, len(queries), args.batch):
        found.extend(index.search(queries[lo:lo + args.batch], 31))
    batched = len(queries) / (time.perf_counter() - began)

    began = time.perf_counter()
    for i in range(args.single):
        index.search(queries[i:i + 1], 31)
    single = args.single / (time.perf_counter() - began)

    planted_recall = sum(any(c == t for c, _ in hits) for hits, t in zip(found, targets)) / len(targets)
    sample = rng.choice(len(queries), min(args.exact, len(queries)), replace=False)
    began = time.perf_counter()
    exact = index.search_exact(queries[sample], 31)
    brute = len(sample) / (time.perf_counter() - began)
    want = sum(len(e) for e in exact)
    got = sum(len(set(found[i]) & set(e)) for i, e in zip(sample, exact))
    wrong = sum(len(set(found[i]) - set(e)) for i, e in zip(sample, exact))

    print(f"n={args.n} tables={args.tables} flips={args.flips} bucket_bits={index.bucket_bits} "
          f"exact_radius={index.exact_radius}")
    print(f"index_build_s={build_s:.1f}")
    print(f"lookups_per_s={batched:.0f}")
    print(f"single_lookups_per_s={single:.0f}")
    print(f"brute_force_lookups_per_s={brute:.1f}")
    print(f"recall_at_31={got / max(want, 1):.4f}  # {got}/{want} brute-force matches on {len(sample)} queries; "
          f"{wrong} returned beyond them")
    print(f"planted_recall={planted_recall:.4f}")
    print(f"index_mb={index.nbytes / 2**20:.0f}")
    print(f"rss_mb={rss_built:.0f}  # resident after the build (index, queries, interpreter and numpy)")
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}  # includes the build's temporaries")


if __name__ == "__main__":
    main()
