"""The PDQ index at scale: random 256-bit codes plus planted near-duplicates.

Builds a ``HashIndex`` (numpy multi-index hashing) over ``--n`` random codes, plants
``--queries`` near-duplicates (a random code with 0-31 of its bits flipped, uniform),
and measures batched lookups (batches of ``--batch``) on 1 and 2 threads (``--threads``)
and single lookups at radius 31. Recall is measured against the brute-force path on
``--exact`` of the queries (brute force over 10M codes runs at a few lookups a second)
and, separately, on the planted targets for every query. Prints ``index_build_s=``,
``lookups_per_s_t<k>=`` (batched, k threads), ``single_lookups_per_s=``,
``recall_at_31=`` (vs brute force), ``planted_recall=``, ``index_mb=``, ``rss_mb=``
(resident after the build), ``peak_rss_mb=`` and ``thp_mb=`` (how much of it sits on
transparent huge pages: random probes into 1 GB miss the TLB without them); then
``merge_s=`` (adding ``--add`` codes to the built tables, the incremental path a bank
change takes) and ``verify_ceiling_per_s=``: the rate if a lookup cost nothing but
fetching and popcounting its candidates (what no probing scheme with these tables can beat).

Every rate is given per wall-clock second and per CPU second of this process (``_cpu``).
On a shared machine the wall rate falls with the load; the CPU rate is what the cores
did. For each thread count the bench also reads the working threads' scheduler counters
(``/proc/self/task/<tid>/schedstat``) and splits their wall time into ``run`` (on a
core), ``runq`` (runnable, waiting for a core: the host's load) and ``blocked`` (asleep:
waiting for the GIL or for work). A GIL-bound search shows as ``blocked``; a loaded host
as ``runq``.

``--baseline FILE`` loads another index module (say a copy of an older ``index.py``) and
measures it in the same run on the same codes and queries, alternating rounds (new, old,
new, old, ...), and prints the new/old ratio of each round's pair and their median: the
only fair comparison on a machine whose load changes. A baseline whose ``search`` takes
no ``executor`` is threaded by the caller: the batch cut into one part a thread.

    .venv/bin/python benchmarks/bench_hashes.py [--n 10000000] [--queries 10000] [--tables 11] [--flips 1]
        [--bucket-bits B] [--threads 1,2] [--baseline /tmp/old_index.py] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


def joined(values: Any) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def thp_mb() -> float:
    """Anonymous memory on transparent huge pages (Linux; numpy asks for them on big arrays)."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def schedstat(tids: list[int]) -> tuple[float, float]:
    """(seconds on a core, seconds runnable but waiting for one), summed over threads."""
    run = wait = 0
    for tid in tids:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            a, b, _ = f.read().split()
        run, wait = run + int(a), wait + int(b)
    return run / 1e9, wait / 1e9


def pool_tids(pool: ThreadPoolExecutor, k: int) -> list[int]:
    """The native ids of the pool's k threads (a barrier makes k tasks land on k threads)."""
    gate = threading.Barrier(k)

    def tid() -> int:
        gate.wait()
        return threading.get_native_id()

    return [f.result() for f in [pool.submit(tid) for _ in range(k)]]


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


def batched(index: Any, queries: np.ndarray, batch: int, pool: ThreadPoolExecutor | None, k: int,
            tids: list[int]) -> dict[str, Any]:
    """Batched lookups on k threads: through ``search(executor=)``, or cut by the caller for an old index."""
    native = "executor" in inspect.signature(index.search).parameters

    def one(part: np.ndarray) -> list[list[tuple[int, int]]]:
        if pool is None:
            return list(index.search(part, 31))
        if native:
            return list(index.search(part, 31, executor=pool))
        step = -(-len(part) // k)
        jobs = [pool.submit(index.search, part[lo:lo + step], 31) for lo in range(0, len(part), step)]
        return [hits for job in jobs for hits in job.result()]

    def run() -> list[list[tuple[int, int]]]:
        found: list[list[tuple[int, int]]] = []
        for lo in range(0, len(queries), batch):
            found.extend(one(queries[lo:lo + batch]))
        return found

    before = schedstat(tids)
    wall, cpu, found = timed(run)
    after = schedstat(tids)
    on, waiting = after[0] - before[0], after[1] - before[1]
    span = wall * len(tids)
    return {"wall": len(queries) / wall, "cpu": len(queries) / cpu, "found": found, "run": on / span,
            "runq": waiting / span, "blocked": max(0.0, 1 - (on + waiting) / span)}


def singles(index: Any, queries: np.ndarray, single: int, tids: list[int]) -> dict[str, Any]:
    def run() -> None:
        for i in range(single):
            index.search(queries[i:i + 1], 31)

    before = schedstat(tids)
    wall, cpu, _ = timed(run)
    after = schedstat(tids)
    return {"wall": single / wall, "cpu": single / cpu, "run": (after[0] - before[0]) / wall,
            "runq": (after[1] - before[1]) / wall, "blocked": 0.0}


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
    ap.add_argument("--rounds", type=int, default=3, help="measurement rounds (alternating with the baseline)")
    ap.add_argument("--threads", default="1,2", help="thread counts for batched lookups (1: no pool)")
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
    thp_built = thp_mb()
    baseline, base_s = None, 0.0
    if args.baseline:
        base_s, _, baseline = timed(lambda: build(load_module(args.baseline).HashIndex))

    counts = [int(k) for k in args.threads.split(",")]
    pools = {k: ThreadPoolExecutor(k, thread_name_prefix=f"bench{k}") for k in counts if k > 1}
    tids = {k: pool_tids(pools[k], k) if k > 1 else [threading.get_native_id()] for k in counts}
    impls = {"new": index} if baseline is None else {"new": index, "old": baseline}
    load0 = os.getloadavg()
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for name, impl in impls.items():  # new, old, new, old, ...: each round's pair shares the load
            for k in counts:
                runs.setdefault((name, f"t{k}"), []).append(
                    batched(impl, queries, args.batch, pools.get(k), k, tids[k]))
            runs.setdefault((name, "single"), []).append(
                singles(impl, queries, args.single, [threading.get_native_id()]))
    load1 = os.getloadavg()
    for pool in pools.values():
        pool.shutdown()
    found = runs[("new", f"t{counts[0]}")][0]["found"]

    planted_recall = sum(any(c == t for c, _ in hits) for hits, t in zip(found, targets)) / len(targets)
    sample = rng.choice(len(queries), min(args.exact, len(queries)), replace=False)
    brute_wall, _, exact = timed(lambda: index.search_exact(queries[sample], 31))
    want = sum(len(e) for e in exact)
    got = sum(len(set(found[i]) & set(e)) for i, e in zip(sample, exact))
    wrong = sum(len(set(found[i]) - set(e)) for i, e in zip(sample, exact))

    def med(name: str, mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[(name, mode)])

    print(f"n={args.n} tables={args.tables} flips={args.flips} bucket_bits={index.bucket_bits} "
          f"exact_radius={index.exact_radius} rounds={args.rounds} (rates: median of the rounds, then each round)")
    print(f"host: nproc={os.cpu_count()} loadavg_start={load0[0]:.1f},{load0[1]:.1f} "
          f"loadavg_end={load1[0]:.1f},{load1[1]:.1f}")
    print(f"index_build_s={build_s:.1f}  # cpu {build_cpu:.1f} s")
    for mode in [f"t{k}" for k in counts] + ["single"]:
        label = "single_lookups_per_s" if mode == "single" else f"lookups_per_s_{mode}"
        rs = runs[("new", mode)]
        print(f"{label}={med('new', mode, 'wall'):.0f}  {label}_cpu={med('new', mode, 'cpu'):.0f}  "
              f"# rounds wall: {joined(r['wall'] for r in rs)}; cpu: {joined(r['cpu'] for r in rs)}; "
              f"working threads run/runq/blocked "
              f"{med('new', mode, 'run'):.2f}/{med('new', mode, 'runq'):.2f}/{med('new', mode, 'blocked'):.2f}")
    top = f"t{max(counts)}"
    cpu_rate = med("new", top, "cpu")
    share = med("new", top, "run") * max(counts)
    print(f"ceiling_wall_per_s={cpu_rate * min(max(counts), os.cpu_count() or 1):.0f}  # the {top} cpu rate x "
          f"{min(max(counts), os.cpu_count() or 1)} free cores; this run got {share:.2f} cores "
          f"({max(counts)} threads on a core {med('new', top, 'run'):.0%} of the time)")
    print(f"brute_force_lookups_per_s={len(sample) / brute_wall:.1f}")
    print(f"recall_at_31={got / max(want, 1):.4f}  # {got}/{want} brute-force matches on {len(sample)} queries; "
          f"{wrong} returned beyond them")
    print(f"planted_recall={planted_recall:.4f}")
    print(f"index_mb={index.nbytes / 2**20:.0f}")
    print(f"rss_mb={rss_built:.0f}  # resident after the build (index, queries, interpreter and numpy)")
    print(f"peak_rss_mb={peak_built:.0f}  # the build's temporaries included")
    print(f"thp_mb={thp_built:.0f}  # of the resident memory after the build, on transparent huge pages")

    if baseline is not None:
        same = all(runs[("old", mode)][0]["found"] == runs[("new", mode)][0]["found"]
                   for mode in [f"t{k}" for k in counts])
        print(f"baseline={args.baseline} baseline_build_s={base_s:.1f} baseline_index_mb={baseline.nbytes / 2**20:.0f} "
              f"same_results={same}")
        for mode in [f"t{k}" for k in counts] + ["single"]:
            for key in ("wall", "cpu"):
                new_r = [r[key] for r in runs[("new", mode)]]
                old_r = [r[key] for r in runs[("old", mode)]]
                ratios = [a / b for a, b in zip(new_r, old_r)]
                print(f"baseline_{mode}_{key}_per_s={statistics.median(old_r):.0f}  "
                      f"new/old={statistics.median(ratios):.2f}  # pairs: "
                      f"{', '.join(f'{a:.0f}/{b:.0f}' for a, b in zip(new_r, old_r))}")
        old_t1 = [r["wall"] for r in runs[("old", f"t{counts[0]}")]]
        new_top = [r["wall"] for r in runs[("new", top)]]
        print(f"new_{top}/old_t{counts[0]}_wall={statistics.median(a / b for a, b in zip(new_top, old_t1)):.2f}  "
              f"# the new index on {max(counts)} threads against the old one as it was called")

    baseline = None  # the rest measures the new index alone (and frees the old one)
    runs.clear()
    if hasattr(index, "merge") and args.add:
        more = np.random.default_rng(args.seed + 1).integers(0, 256, (args.add, 32), dtype=np.uint8)
        n0 = len(index)
        # A bank change: the first --add codes leave the file and --add new ones come. The old
        # index stays as it is (searches may still run on it); the update shares its tables.
        every = random_codes()
        listed, removed = np.concatenate([every[args.add:], more]), every[:100].copy()
        del every
        update_s, update_cpu, (updated, ids) = timed(lambda: index.updated(listed))
        del listed
        print(f"update_s={update_s:.2f}  # a bank change: {args.add} codes out, {args.add} in, on {n0} "
              f"(cpu {update_cpu:.2f} s; a full build took {build_s:.1f} s); rebuilt="
              f"{updated._built_n != index._built_n}; rss_mb={rss_now_mb():.0f} with both indexes held")
        near, near_targets = planted(more, min(1000, args.add), rng)
        found_new = updated.search(near, 31)
        gone = sum(len(h) for h in updated.search(removed, 0))
        print(f"updated_planted_recall={sum(any(c == ids[n0 - args.add + t] for c, _ in h) for h, t in zip(found_new, near_targets)) / len(near):.4f}"
              f"  # near-duplicates (0-31 bits) of the added codes; "
              f"exact copies of 100 removed codes returned: {gone}")
        del updated, ids
        index.merge_at = 10**12  # into the side buffer first, then one timed merge
        index.add(more)
        merge_s, merge_cpu, _ = timed(index.merge)
        print(f"merge_s={merge_s:.2f}  # {args.add} codes into the built tables (cpu {merge_cpu:.2f} s; "
              f"a full build took {build_s:.1f} s)")
        found_merged = index.search(near, 31)
        print(f"merged_planted_recall={sum(any(c == n0 + t for c, _ in h) for h, t in zip(found_merged, near_targets)) / len(near):.4f}"
              f"  # the same near-duplicates after a plain add and merge")

    tables = getattr(index, "_tables", None)
    per_query = round(sum((c.width + 1) * len(index) / 2 ** c.width for c in tables.chunks)) if tables else 0
    if per_query:
        ceiling = verify_ceiling(index._words, queries, per_query, rng)
        print(f"verify_ceiling_per_s={ceiling:.0f}  # cpu: fetching and popcounting {per_query} random "
              f"candidates a query, nothing else")


if __name__ == "__main__":
    main()
