"""A realistic mix of HTTP API calls for a fixed time: throughput and latency per kind of call.

Starts the real server (as ``bench_http.py`` does: uvicorn, lexicon-only
engine, default policy, a temp SQLite store, auth on), then runs
``--concurrency`` clients for ``--seconds`` (after ``--warmup``), each picking
its next call from this mix:

  moderate     45 %  POST /v1/moderate, one item
  batch        10 %  POST /v1/moderate, {"items": [...]} of 2-20 items
  moderations  15 %  POST /v1/moderations (OpenAI-compatible), one input
  decision     20 %  GET /v1/decisions/{id} of a decision answered earlier
  history      10 %  GET /v1/items/{id}/history of an item moderated earlier

Texts are mostly benign music comments, about one in ten toxic (threats,
insults, spam, drug sales; some obfuscated). Every item is new (the engine is
idempotent: a repeated item would measure a store lookup).

Prints name=value lines: per kind ``<kind>_requests``, ``<kind>_rps``,
``<kind>_p50_ms``/``p95``/``p99``, ``<kind>_errors``; the same ``overall_*``;
``lost`` (decisions answered 200 whose GET afterwards is not 200: must be 0);
and ``server_requests`` from the service's own ``GET /metrics``, which must
match what the clients sent.

The load generator is an httpx async client (one process, ``--concurrency``
connections). On a 2-core machine it takes CPU from the server it measures,
as bench_http.py's python client does, so read the figures as a mix's
relative costs, not the server's ceiling (bench_http.py with wrk is that).

    .venv/bin/python benchmarks/bench_load.py --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_http import (
    free_port,
    percentile,
    server_cpu_s,
    start_server,
    stop_server,
)
from referee.store import DecisionStore

MIX = (("moderate", 45), ("batch", 10), ("moderations", 15), ("decision", 20), ("history", 10))
BENIGN = [
    "this track is on repeat all week", "the bridge at 2:10 gives me chills", "can't wait for the tour dates",
    "podcast episode about the history of jazz", "that bass line is unreal", "saw them live in Berlin, amazing",
    "who produced this? the mix is so clean", "summer playlist for the road", "my dad loves this album",
    "the remix is better than the original", "late night drive vibes", "this song kills, what a banger",
]
TOXIC = [
    "you are a worthless idiot", "I'm going to find you and stab you", "WIN a free iPhone click here now",
    "selling coke and molly dm for prices", "k1ll yourself loser", "free followers, click here",
]
SURFACES = ["comment"] * 6 + ["message", "playlist_title", "profile_bio", "podcast_episode"]


def text(rng: random.Random, n: int) -> str:
    base = rng.choice(TOXIC) if rng.random() < 0.1 else rng.choice(BENIGN)
    return f"{base} ({n} {rng.random():.6f})"


class Load:
    """What every client shares: the latencies per kind, errors, and what was answered."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.decisions: list[str] = []
        self.items: list[str] = []
        self.sent = 0
        self.sent_measured = 0


async def client(n: int, port: int, key: str, load: Load, stop_at: float, record_from: float) -> None:
    rng = random.Random(n)
    kinds, weights = zip(*MIX)
    seq = 0
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
        while (start := time.perf_counter()) < stop_at:
            kind = rng.choices(kinds, weights)[0]
            if kind in ("decision", "history") and not load.decisions:
                kind = "moderate"
            seq += 1
            uid = f"load-{n}-{seq}"
            try:
                if kind == "moderate":
                    r = await http.post("/v1/moderate", json={"id": uid, "surface": rng.choice(SURFACES),
                                                              "text": text(rng, seq)})
                elif kind == "batch":
                    items = [{"id": f"{uid}-{k}", "surface": rng.choice(SURFACES), "text": text(rng, seq)}
                             for k in range(rng.randint(2, 20))]
                    r = await http.post("/v1/moderate", json={"items": items})
                elif kind == "moderations":
                    r = await http.post("/v1/moderations", json={"input": text(rng, seq)})
                elif kind == "decision":
                    r = await http.get(f"/v1/decisions/{rng.choice(load.decisions)}")
                else:
                    r = await http.get(f"/v1/items/{rng.choice(load.items)}/history")
            except httpx.HTTPError as exc:
                load.errors[kind] += 1
                load.error_samples.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - start
            load.sent += 1
            if r.status_code != 200:
                load.errors[kind] += 1
                load.error_samples.append(f"{kind}: {r.status_code} {r.text[:160]}")
                continue
            if kind == "moderate":
                load.decisions.append(r.json()["decision_id"])
                load.items.append(uid)
            elif kind == "batch":
                load.decisions.extend(d["decision_id"] for d in r.json()["decisions"])
            elif kind == "moderations":
                load.decisions.extend(x["referee"]["decision_id"] for x in r.json()["results"])
            if start >= record_from:
                load.sent_measured += 1
                load.latencies[kind].append(elapsed)


async def run(args: argparse.Namespace, port: int, key: str) -> tuple[Load, int, int]:
    load = Load()
    begin = time.perf_counter()
    record_from = begin + args.warmup
    stop_at = record_from + args.seconds
    await asyncio.gather(*(client(n, port, key, load, stop_at, record_from) for n in range(args.concurrency)))
    # Nothing answered is lost: every decision id handed out is there to fetch (a sample of them).
    lost = 0
    rng = random.Random(0)
    sample = rng.sample(load.decisions, min(len(load.decisions), args.check))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for decision_id in sample:
            if (await http.get(f"/v1/decisions/{decision_id}")).status_code != 200:
                lost += 1
        metrics = (await http.get("/metrics")).text
    counted = sum(float(v) for route, v in re.findall(
        r'^referee_http_requests_total\{method="\w+",route="([^"]+)",status="200"\} (\S+)$', metrics, re.MULTILINE)
        if route.startswith("/v1/"))
    return load, lost, int(counted) - (len(sample) - lost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration (after warm-up)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load not counted")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes")
    parser.add_argument("--detectors", default="lexicon", help="comma-separated detectors of the policy to build")
    parser.add_argument("--policy", type=Path, default=REPO / "policies" / "default.yaml")
    parser.add_argument("--check", type=int, default=500, help="answered decisions fetched again at the end")
    args = parser.parse_args()
    if args.seconds <= 0 or args.concurrency < 1:
        raise SystemExit("--seconds must be > 0 and --concurrency >= 1")
    args.floor = False
    print("client=httpx")
    print(f"workers={args.workers}")
    print(f"concurrency={args.concurrency}")
    print(f"seconds={args.seconds:g}")
    with tempfile.TemporaryDirectory(prefix="referee-load-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'load.db'}"
        store = DecisionStore(db_url)
        key = store.create_key("load", ["moderate", "read", "metrics"])
        store.close()
        # Several workers: the figures GET /metrics answers are the sum over them (as `referee serve` does).
        os.makedirs(Path(tmp) / "metrics")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(tmp) / "metrics")
        port = free_port()
        proc = start_server(args, db_url, port)
        try:
            cpu_before = server_cpu_s(proc.pid)
            load, lost, server_ok = asyncio.run(run(args, port, key))
            cpu_s = server_cpu_s(proc.pid) - cpu_before
        finally:
            stop_server(proc)
    every: list[float] = []
    for kind, _ in MIX:
        values = sorted(load.latencies[kind])
        every += values
        report(kind, values, load.errors[kind], args.seconds)
    report("overall", sorted(every), sum(load.errors.values()), args.seconds)
    print(f"server_cpu_us_per_request={cpu_s / max(load.sent, 1) * 1e6:.0f}")
    print(f"lost={lost}")
    print(f"client_ok_requests={load.sent - sum(load.errors.values())}")
    print(f"server_ok_requests={server_ok}")
    for sample in sorted(set(load.error_samples))[:5]:
        print(f"error_sample={sample}")


def report(kind: str, values: list[float], errors: int, seconds: float) -> None:
    print(f"{kind}_requests={len(values)}")
    print(f"{kind}_rps={len(values) / seconds:.1f}")
    for q in (50, 95, 99):
        print(f"{kind}_p{q}_ms={percentile(values, q / 100) * 1000:.2f}")
    if values:
        print(f"{kind}_mean_ms={statistics.fmean(values) * 1000:.2f}")
    print(f"{kind}_errors={errors}")


if __name__ == "__main__":
    main()
