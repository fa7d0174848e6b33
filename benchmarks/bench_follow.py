"""The log follower's pass over a backlog: CPU and the longest hold of the SQLite write lock,
this tree's ``ReviewDesk.sync`` and ``AuditChain.seal`` against an older commit's (by default
the parent of the session-9 commits), in one process, alternating old and new.

Run:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_follow.py --old-ref 2f44876 --decisions 20000

A SQLite log of ``--decisions`` decisions (the default policy; 5 % held for review, 10 %
spam, the rest allowed; eight signals each, as the hashtag detector of the serve tests
gives) is written once; each round copies it and runs follower passes (review sync, notice
routing and outcomes, account actions, audit seal, as ``LogFollower.once``) until the log is
caught up. The old modules are read from ``git show REF:path`` and loaded beside the new
ones. The write lock's hold is timed where ``SQLiteFile`` takes it (``_write_lock``), commit
included; CPU is the process's (one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import MetaData, Table, select

from referee.engine import Engine
from referee.model import ContentItem
from referee.policy import Policy
from referee.records import notices
from referee.records import chain as new_chain
from referee.records import review as new_review
from referee.records.accounts import AccountBook
from referee.store import Store
from referee.store.sql.review_tables import review_state, review_tasks

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.serve.conftest import DEFAULT_POLICY, HashtagDetector  # noqa: E402


def old_module(ref: str, path: str, name: str) -> ModuleType:
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:{path}"], check=True, capture_output=True,
                            text=True).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module


def build_log(path: Path, n: int, policy: Policy) -> None:
    store = Store(f"sqlite:///{path}")
    with Engine(policy, [HashtagDetector()], sink=store) as engine:
        for start in range(0, n, 250):
            items = []
            for i in range(start, min(n, start + 250)):
                tag = "#self_harm" if i % 20 == 0 else "#spam" if i % 10 == 1 else "fine"
                items.append(ContentItem(id=f"it-{i}", surface="comment", author_id=f"a{i % 500}",
                                         text=f"a few words about item {i} {tag}"))
            engine.moderate_many(items)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextlib.contextmanager
def timed_lock(store: Store, holds: list[float]) -> Iterator[None]:
    sqlite = store.db.sqlite
    assert sqlite is not None
    take = sqlite._write_lock

    @contextlib.contextmanager
    def timed() -> Iterator[None]:
        with take():
            t0 = time.perf_counter()
            try:
                yield
            finally:
                holds.append(time.perf_counter() - t0)

    sqlite._write_lock = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        del sqlite._write_lock


def one_round(template: Path, policy: Policy, desk_cls: Any, chain_cls: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "r.db"
        shutil.copy(template, db)
        store = Store(f"sqlite:///{db}")
        desk, chain, accounts = desk_cls(store, policy), chain_cls(store.db), AccountBook(store, policy)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("review sync", desk.sync), ("notice routing", lambda: notices.route_pending(desk)),
            ("notice outcomes", lambda: notices.settle(desk)), ("account actions", accounts.sync),
            ("audit seal", chain.seal)]
        cpu = dict.fromkeys([s for s, _ in steps], 0.0)
        holds: list[float] = []
        longest = dict.fromkeys(cpu, 0.0)
        passes = 0
        tasks = 0
        with timed_lock(store, holds):
            t0, w0 = time.process_time(), time.perf_counter()
            while True:
                passes += 1
                for name, run in steps:
                    c, before = time.process_time(), len(holds)
                    out = run()
                    cpu[name] += time.process_time() - c
                    longest[name] = max([longest[name], *holds[before:]])
                    if name == "review sync":
                        tasks += len(out)  # type: ignore[arg-type]
                with store.db.read() as conn:
                    synced = conn.execute(select(review_state.c.last_seq)).scalar() or 0
                if min(chain.head()[0], synced) >= store.log.last_seq():
                    break
            total_cpu, wall = time.process_time() - t0, time.perf_counter() - w0
        with store.db.read() as conn:  # what was queued, to compare old and new
            t = review_tasks.c
            queued = sorted(tuple(r) for r in conn.execute(
                select(t.decision_id, t.kind, t.slot, t.queue, t.category, t.severity, t.priority, t.status)))
        store.close()
    return {"cpu": total_cpu, "wall": wall, "steps": cpu, "max_hold": max(holds), "sum_hold": sum(holds),
            "writes": len(holds), "passes": passes, "tasks": tasks, "queued": queued, "longest": longest}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old-ref", default="2f44876")
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    old_review = old_module(args.old_ref, "src/referee/records/review.py", "old_review")
    old_chain = old_module(args.old_ref, "src/referee/records/chain.py", "old_chain")
    if not hasattr(old_chain, "FORMAT"):  # before migration 0008: its links name no format (the column's default, 1)
        old_chain._c = Table(new_chain.audit_chain.name, MetaData(),
                             *[c._copy() for c in new_chain.audit_chain.c if c.name != "format"])
    policy = Policy.from_file(DEFAULT_POLICY)
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "log.db"
        t = time.perf_counter()
        build_log(template, args.decisions, policy)
        print(f"log of {args.decisions} decisions written in {time.perf_counter() - t:.1f} s", flush=True)
        results: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for _ in range(args.rounds):
            for label, desk_cls, chain_cls in (("old", old_review.ReviewDesk, old_chain.AuditChain),
                                               ("new", new_review.ReviewDesk, new_chain.AuditChain)):
                r = one_round(template, policy, desk_cls, chain_cls)
                results[label].append(r)
                print(f"{label}: cpu {r['cpu']:.2f} s (" + ", ".join(f"{k} {v:.2f}" for k, v in r["steps"].items())
                      + f"), longest write-lock hold {r['max_hold'] * 1000:.1f} ms ("
                      + ", ".join(f"{k} {v * 1000:.1f}" for k, v in r["longest"].items()) + "), lock held "
                        f"{r['sum_hold']:.2f} s in {r['writes']} writes, {r['passes']} passes, "
                        f"{r['tasks']} tasks", flush=True)
    same = all(r["queued"] == results["old"][0]["queued"] for v in results.values() for r in v)
    print(f"the same tasks queued (decision, kind, slot, queue, category, severity, priority) in every round: {same}")
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("cpu", "max_hold", "sum_hold")}
           for k, v in results.items()}
    steps = {k: {s: statistics.median(r["steps"][s] for r in v) for s in v[0]["steps"]} for k, v in results.items()}
    print("\nmedians over", args.rounds, "rounds (old / new / new÷old):")
    for m, unit, scale in (("cpu", "s", 1), ("max_hold", "ms", 1000), ("sum_hold", "s", 1)):
        print(f"  {m:9s} {med['old'][m] * scale:9.2f} {med['new'][m] * scale:9.2f} {unit:3s} "
              f"×{med['new'][m] / med['old'][m]:.3f}")
    for s in steps["old"]:
        print(f"  cpu {s:16s} {steps['old'][s]:7.2f} {steps['new'][s]:7.2f} s  ×{steps['new'][s] / steps['old'][s]:.3f}")


if __name__ == "__main__":
    main()
