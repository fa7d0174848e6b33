"""Time to seal and verify the audit chain and to export statements of reasons for N decisions.

    .venv/bin/python benchmarks/bench_compliance.py --n 100000 [--db /tmp/bench.db]

Builds a SQLite store of N restricting decisions on EU items (batches of 500, new content
each), then times: ``seal`` (chaining every record), ``verify`` (recomputing every link),
``verify --from-checkpoint`` (the incremental case) and ``export`` (build, validate, write
the statements in batches of 100). Prints per-record costs and the linear extrapolation to
1M decisions; the issue's figure is 1M, measured only when ``--n 1000000`` is run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from referee.model import Action, ContentItem, Decision, Reason, SignalRef  # noqa: E402
from referee.policy import load_policy  # noqa: E402
from referee.records.chain import AuditChain  # noqa: E402
from referee.records.reasons import Statements, export  # noqa: E402
from referee.store import Store  # noqa: E402

T0 = datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)
CATS = ("hate", "harassment", "violence", "spam")


def _pair(i: int) -> tuple[ContentItem, Decision]:
    it = ContentItem(id=f"bench-{i}", text=f"bench item number {i} with a few words", author_id=f"a{i % 997}",
                     country="DE", language="en", created_at=T0)
    key = hashlib.sha256(f"{i}".encode()).hexdigest()
    cat = CATS[i % len(CATS)]
    reason = Reason(rule_id=f"{cat}.remove", kind="threshold", category=cat, action=Action.remove, threshold=0.8,
                    signals=(SignalRef(detector="classifier", category=cat, score=0.93),), message=f"{cat} >= 0.8")
    d = Decision(decision_id=key, input_key=key, item_id=it.id, content_hash=it.content_hash, surface="comment",
                 country="DE", action=Action.remove, categories=(cat,), reasons=(reason,), policy_id="default",
                 policy_version="1", policy_sha256="p" * 64, created_at=T0)
    return it, d


def _timed(label: str, n: int, fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    took = time.perf_counter() - start
    per = took / n * 1e6 if n else 0.0
    print(f"{label:<28} {took:9.2f} s  {per:8.1f} us/record  -> 1M: {per:8.1f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--db", type=str, default=None)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_compliance_")
    db = args.db or os.path.join(folder, "bench.db")
    store = Store(f"sqlite:///{db}")
    have = store.log.last_seq()
    start = time.perf_counter()
    for lo in range(have, args.n, 500):
        store.log.append([_pair(i) for i in range(lo, min(args.n, lo + 500))])
    n = store.log.last_seq()
    print(f"N = {n} decisions (built in {time.perf_counter() - start:.1f} s; SQLite {db}; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    chain = AuditChain(store.db)
    sealed = _timed("seal (chain every record)", n, chain.seal)
    assert sealed.head_seq == n
    result = _timed("verify (whole chain)", n, chain.verify)
    assert result.ok and result.checked == n, result
    _timed("verify --from-checkpoint", n, lambda: chain.verify(from_checkpoint=True))
    policy = load_policy("policies/default.yaml")
    out = Path(folder) / "sor.jsonl"
    exported = _timed("export statements", n, lambda: export(Statements(store.db, store.log, policy), out))
    assert exported.written == n and not exported.invalid
    print(f"export: {exported.written} statements in {exported.batches} batches, {out.stat().st_size / 1e6:.1f} MB")
    store.close()


if __name__ == "__main__":
    main()
