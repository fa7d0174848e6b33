"""A realistic mix of HTTP API calls for a fixed time: throughput and latency per kind of call.

Starts the real server (as ``bench_http.py`` does: ``referee serve``, lexicon-only
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

Two load generators (``--client``):

  wrk (default when installed; Debian package ``wrk``, ``make bench`` installs it)
      C, a few % of a core. ``benchmarks/wrk/moderate_mix.lua`` sends only
      POST /v1/moderate, in its own mix: comments 55 %, direct messages 15 %,
      playlists 15 % (two text parts, title and description), bios and podcast
      episodes 5 %, batches of 2-20 of those 10 %; the same texts as the httpx
      client. wrk measures one latency distribution over all of them, so the
      figures are ``overall_*`` only (``overall_p50_ms``/``p95``/``p99``,
      ``overall_rps``, ``items_per_s``) with ``sent_<kind>`` counts. wrk corrects
      its latencies for coordinated omission (a connection stalled behind a slow
      batch is charged the requests it could not send), so its tail reads as an
      open-loop client's at that rate would; ``closed_loop_mean_ms``
      (connections / throughput) is the uncorrected mean beside it. ``lost`` and
      ``server_ok_requests`` as above (each thread writes the decision ids it was
      answered; ``--check`` of them are read back).
  httpx (the fallback, or ``--client httpx``)  the mix above, per kind, reads
      and the OpenAI endpoint included. One Python process, ``--concurrency``
      connections; on a 2-core machine it takes CPU from the server it measures,
      as bench_http.py's python client does, so read its figures as a mix's
      relative costs, not the server's ceiling. When wrk is absent it says so
      (``client_fallback=...``).

Loopback only: the server listens on 127.0.0.1 and both clients connect there.

    .venv/bin/python benchmarks/bench_load.py --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from unittest import mock

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_http import percentile, server_cpu_s, serving

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
WRK_SCRIPT = REPO / "benchmarks" / "wrk" / "moderate_mix.lua"
#: What wrk_mix prints of the script's counters, in order.
WRK_KINDS = ("comment", "message", "playlist", "other", "batch")


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
    return load, lost, server_ok(metrics) - (len(sample) - lost)


def server_ok(metrics: str) -> int:
    """Requests to /v1/ routes the server answered 200, by its own ``/metrics``."""
    return int(sum(float(v) for route, v in re.findall(
        r'^referee_http_requests_total\{method="\w+",route="([^"]+)",status="200"\} (\S+)$', metrics, re.MULTILINE)
        if route.startswith("/v1/")))


def read_back(port: int, key: str, decision_ids: list[str], n: int) -> tuple[int, int, int]:
    """``n`` of the answered decisions fetched again: (fetched, not found, the server's 200s
    on /v1/ before these reads)."""
    sample = random.Random(0).sample(decision_ids, min(len(decision_ids), n))
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
                      timeout=30) as http:
        ok_before = server_ok(http.get("/metrics").text)
        lost = sum(http.get(f"/v1/decisions/{d}").status_code != 200 for d in sample)
    return len(sample), lost, ok_before


def wrk_mix(args: argparse.Namespace, port: int, key: str, tmp: str, server_pid: int) -> dict[str, float]:
    """``--warmup`` seconds, then ``--seconds`` measured, of the Lua mix (closed loop, wrk)."""
    ids = Path(tmp) / "ids"
    ids.mkdir()
    url = f"http://127.0.0.1:{port}"
    out: dict[str, float] = {}
    ok_all = 0.0  # both phases, to set beside the server's count
    for phase, seconds in (("warm", args.warmup), ("main", args.seconds)):
        if seconds <= 0:
            continue
        env = {**os.environ, "REFEREE_BENCH_KEY": key, "REFEREE_BENCH_RUN": f"{phase}{random.randrange(10**9)}",
               "REFEREE_BENCH_BENIGN": "\n".join(BENIGN), "REFEREE_BENCH_TOXIC": "\n".join(TOXIC),
               "REFEREE_BENCH_IDS": str(ids)}
        cmd = ["wrk", f"-t{min(2, args.concurrency)}", f"-c{args.concurrency}", f"-d{seconds:g}s",
               "--timeout", "10s", "-s", str(WRK_SCRIPT), url]
        cpu_before = server_cpu_s(server_pid)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
        if done.returncode != 0:
            raise SystemExit(f"wrk exited with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        out = {m[0]: float(m[1]) for m in re.findall(r"^(wrk_\w+)=(\d+)$", done.stdout, re.M)}
        if "wrk_requests" not in out:
            raise SystemExit(f"wrk printed no figures (is {WRK_SCRIPT} intact?):\n{done.stdout[-2000:]}")
        out["server_cpu_s"] = server_cpu_s(server_pid)["total"] - cpu_before["total"]
        ok_all += out["wrk_sent_ok"]
    out["ok_all"] = ok_all
    decision_ids = [line for f in sorted(ids.iterdir()) for line in f.read_text().split()]
    out["answered_ids"] = len(decision_ids)
    out["checked"], out["lost"], out["server_ok"] = read_back(port, key, decision_ids, args.check)
    return out


def report_wrk(w: dict[str, float], seconds: float, concurrency: int) -> None:
    errors = w["wrk_non2xx"] + w["wrk_socket_errors"]
    print(f"overall_requests={w['wrk_requests']:.0f}")
    print(f"overall_rps={w['wrk_requests'] / seconds:.1f}")
    for q in (50, 95, 99):
        print(f"overall_p{q}_ms={w[f'wrk_p{q}_us'] / 1000:.2f}")
    print(f"overall_mean_ms={w['wrk_mean_us'] / 1000:.2f}")
    print(f"overall_max_ms={w['wrk_max_us'] / 1000:.2f}")
    # wrk corrects its latencies for coordinated omission (it adds the samples a stalled connection
    # could not send), so its mean is above the closed loop's own: connections / throughput.
    print(f"closed_loop_mean_ms={concurrency / max(w['wrk_requests'] / seconds, 1e-9) * 1000:.2f}")
    print(f"overall_errors={errors:.0f}")
    # The script's counters include requests still in flight when wrk stopped (not in wrk_requests).
    for kind in WRK_KINDS:
        print(f"sent_{kind}={w[f'wrk_sent_{kind}']:.0f}")
    print(f"items_answered={w['wrk_sent_ok_items']:.0f}")
    print(f"items_per_s={w['wrk_sent_ok_items'] / seconds:.1f}")
    print(f"server_cpu_us_per_request={w['server_cpu_s'] / max(w['wrk_requests'], 1) * 1e6:.0f}")
    print(f"server_cpu_us_per_item={w['server_cpu_s'] / max(w['wrk_sent_ok_items'], 1) * 1e6:.0f}")
    print(f"checked={w['checked']:.0f}")
    print(f"lost={w['lost']:.0f}")
    # Both phases; the server's count also has what wrk left in flight at each phase's end
    # (at most --concurrency a phase: answered after wrk stopped reading).
    print(f"client_ok_requests={w['ok_all']:.0f}")
    print(f"server_ok_requests={w['server_ok']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration (after warm-up)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load not counted")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="uvicorn worker processes")
    parser.add_argument("--server", choices=("serve", "uvicorn"), default="serve",
                        help="as bench_http.py: `referee serve` (workers + the log follower process) or uvicorn")
    parser.add_argument("--detectors", default="lexicon", help="comma-separated detectors of the policy to build")
    parser.add_argument("--policy", type=Path, default=REPO / "policies" / "default.yaml")
    parser.add_argument("--check", type=int, default=500, help="answered decisions fetched again at the end")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto",
                        help="load generator; auto = wrk when installed, else httpx")
    args = parser.parse_args()
    if args.seconds <= 0 or args.concurrency < 1:
        raise SystemExit("--seconds must be > 0 and --concurrency >= 1")
    args.floor = False
    has_wrk = shutil.which("wrk") is not None
    if args.client == "wrk" and not has_wrk:
        raise SystemExit("--client wrk needs the wrk binary on PATH (apt-get install wrk, or make bench)")
    client_kind = "wrk" if args.client == "wrk" or (args.client == "auto" and has_wrk) else "httpx"
    print(f"client={client_kind}")
    if args.client == "auto" and not has_wrk:
        print("client_fallback=wrk not found on PATH (apt-get install wrk): the httpx client shares the CPU "
              "with the server, so the figures are lower than the server's own")
    print(f"workers={args.workers}")
    print(f"concurrency={args.concurrency}")
    print(f"seconds={args.seconds:g}")
    # Several workers: the figures GET /metrics answers are the sum over them (as `referee serve` does).
    with tempfile.TemporaryDirectory(prefix="referee-load-metrics-") as metrics, \
            mock.patch.dict(os.environ, {"PROMETHEUS_MULTIPROC_DIR": metrics}), \
            serving(args, ["moderate", "read", "metrics"]) as server:
        if client_kind == "wrk":
            figures = wrk_mix(args, server.port, server.key, server.tmp, server.pid)
        else:
            cpu_before = server_cpu_s(server.pid)
            load, lost, server_ok_requests = asyncio.run(run(args, server.port, server.key))
            cpu_s = server_cpu_s(server.pid)["total"] - cpu_before["total"]
    if client_kind == "wrk":
        report_wrk(figures, args.seconds, args.concurrency)
        return
    every: list[float] = []
    for kind, _ in MIX:
        values = sorted(load.latencies[kind])
        every += values
        report(kind, values, load.errors[kind], args.seconds)
    report("overall", sorted(every), sum(load.errors.values()), args.seconds)
    print(f"server_cpu_us_per_request={cpu_s / max(load.sent, 1) * 1e6:.0f}")
    print(f"lost={lost}")
    print(f"client_ok_requests={load.sent - sum(load.errors.values())}")
    print(f"server_ok_requests={server_ok_requests}")
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
