"""Latency and throughput of POST /v1/moderate over loopback.

Starts the real server (uvicorn in a subprocess, lexicon-only engine, default
policy, a temp SQLite store, auth on with a freshly created key), then runs
``--concurrency`` keep-alive clients posting single items for ``--seconds``
and prints name=value lines (p50_ms, p99_ms, rps, errors, ...).

Every request carries a new item id and text: the engine is idempotent, so a
repeated item would be answered from the store and measure only a lookup.

Two load shapes:
  closed loop (default)  each client sends its next request when the last one
                         answers; measures the most the server can do, and by
                         Little's law latency ~ concurrency / rps.
  --rate R               open loop: R requests/s in total, on a fixed
                         schedule; latency counts from the scheduled send
                         time, so a stalled server is not hidden by clients
                         that politely wait (no coordinated omission).

Two load generators (``--client``):
  wrk (default when installed; Debian package ``wrk``)  C, a few % of a core
      for 50 connections; a Lua script gives every request a new item.
  python  a minimal asyncio HTTP/1.1 client. On a 2-core machine it takes
      most of a core from the server it measures: the figures it prints are
      the server's plus the client's CPU starvation (kept as the fallback,
      and for the open-loop mode, which wrk does not do).

``--workers`` defaults to one uvicorn process per core: Python runs one
thread at a time per process, so one process cannot use the second core.

    .venv/bin/python benchmarks/bench_http.py --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from fastapi import FastAPI, Request

from referee.store import DecisionStore

REPO = Path(__file__).resolve().parents[1]

PHRASES = [
    "this track is on repeat all week",
    "the bridge at 2:10 gives me chills",
    "WIN a free iPhone click here now",
    "you are a worthless idiot",
    "selling coke and molly dm for prices",
    "can't wait for the tour dates",
    "I'm going to find you and stab you",
    "podcast episode about the history of jazz",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def floor_app():  # type: ignore[no-untyped-def]
    """FastAPI answering a constant: the framework's own latency floor on this machine
    (``--floor``), so the referee figures can be read against it."""
    app = FastAPI()

    @app.post("/v1/moderate")
    async def moderate(request: Request) -> dict[str, bool]:
        await request.body()
        return {"ok": True}

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


def start_server(args: argparse.Namespace, db_url: str, port: int) -> subprocess.Popen[bytes]:
    """The server as it is deployed: ``referee serve --workers N`` (``--server serve``, the
    default: uvicorn's workers plus the one ``referee follow`` process beside them), or uvicorn
    on the app factory directly (``--server uvicorn``: each worker builds ``create_app``, and the
    log follower runs as a lease-guarded thread in one of them). ``--floor`` is always uvicorn."""
    if args.floor or getattr(args, "server", "serve") == "uvicorn":
        factory = "benchmarks.bench_http:floor_app" if args.floor else "referee.serve.app:app_from_env"
        cmd = [
            sys.executable, "-m", "uvicorn", "--factory", factory,
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
            "--no-access-log", "--log-level", "info",  # info: "Application startup complete." per worker
        ]
        if has("uvloop"):
            cmd += ["--loop", "uvloop"]
        if has("httptools"):
            cmd += ["--http", "httptools"]
    else:  # uvicorn's loop and parser are "auto" there: uvloop and httptools where installed, as above
        cmd = [sys.executable, "-c", "from referee.cli import app; app()", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(args.workers), "--no-access-log"]
    env = {
        **os.environ,
        "REFEREE_DB_URL": db_url,
        "REFEREE_POLICY": str(args.policy),
        "REFEREE_DETECTORS": json.dumps(args.detectors.split(",")),
        "REFEREE_AUTH": "true",
    }
    # stderr to a file, not a pipe: a pipe nobody reads fills up and stalls the server's logging.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                ready = r.status == 200
        except OSError:
            ready = False
        # One worker answering is not the server started: the others would still be importing and
        # building their engine under the warm-up's load, their start-up counted as serving CPU.
        log.seek(0)
        if ready and log.read().count(b"Application startup complete.") >= args.workers:
            print(f"server={' '.join(cmd[2:] if cmd[1] == '-m' else cmd[3:])}", flush=True)
            return proc
        time.sleep(0.1)
    stop_server(proc)
    raise SystemExit("server did not become ready within 60 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Connection:
    """One keep-alive HTTP/1.1 connection; enough of the protocol for uvicorn's answers."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.head = (
            "POST /v1/moderate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def client(
    n: int, port: int, key: str, stop_at: float, record_from: float, interval: float | None,
    latencies: list[float], errors: list[str],
) -> None:
    conn = Connection(port, key)
    rng = random.Random(n)
    seq = 0
    next_send = time.perf_counter() + (rng.random() * interval if interval else 0.0)
    try:
        while True:
            if interval:
                delay = next_send - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                start = next_send  # open loop: latency from the scheduled time
                next_send += interval
            else:
                start = time.perf_counter()
            if start >= stop_at:
                break
            seq += 1
            text = f"{rng.choice(PHRASES)} (client {n}, #{seq}, {rng.random():.6f})"
            body = json.dumps({"id": f"bench-{n}-{seq}", "surface": "comment", "text": text}).encode()
            try:
                status, payload = await conn.post(body)
                if status != 200:
                    errors.append(f"{status}: {payload[:200]!r}")
            except (OSError, asyncio.IncompleteReadError, ConnectionError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                await conn.close()
                conn = Connection(port, key)
                continue
            if start >= record_from:
                latencies.append(time.perf_counter() - start)
    finally:
        await conn.close()


async def load(args: argparse.Namespace, port: int, key: str) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    begin = time.perf_counter()
    record_from = begin + args.warmup
    stop_at = record_from + args.seconds
    interval = args.concurrency / args.rate if args.rate else None
    await asyncio.gather(*(
        client(n, port, key, stop_at, record_from, interval, latencies, errors) for n in range(args.concurrency)
    ))
    return latencies, errors, args.seconds


_WRK_SCRIPT = """
-- Every request a new item: the engine is idempotent, a repeat would measure a store lookup.
local phrases = {PHRASES}
local run = os.getenv("REFEREE_BENCH_RUN")
-- tid is a global: setup (in wrk's main Lua state) numbers the threads and sets each thread's own
-- global. (A local here would be the 0 every thread's functions see, and two threads would send
-- the same ids and texts: half the requests repeats, answered from the store.)
local counter = 0
tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function init(args) math.randomseed(tid * 7919) end
function request()
  counter = counter + 1
  local text = phrases[math.random(#phrases)] .. " (" .. tid .. " #" .. counter .. " " .. math.random() .. ")"
  local body = '{"id":"bench-' .. run .. '-' .. tid .. '-' .. counter .. '","surface":"comment","text":"' .. text .. '"}'
  return wrk.format("POST", "/v1/moderate",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("REFEREE_BENCH_KEY")}, body)
end
function done(summary, latency, requests)
  for _, q in ipairs({50, 90, 99}) do io.write(string.format("wrk_p%d_us=%d\\n", q, latency:percentile(q))) end
  io.write(string.format("wrk_max_us=%d\\nwrk_requests=%d\\nwrk_non2xx=%d\\n", latency.max, summary.requests,
                         summary.errors.status))
  io.write(string.format("wrk_socket_errors=%d\\n", summary.errors.connect + summary.errors.read
                         + summary.errors.write + summary.errors.timeout))
end
"""


def server_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the server and every process below it, as
    ``total`` and, of that, the log follower's (a process with ``follow`` in its command line).

    Latency under a closed loop is mostly queueing, and it moves with the host's
    speed from minute to minute; CPU per request is the server's own cost, the
    figure to compare when changing the code (Linux /proc; NaN elsewhere).
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        entries = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return {"total": float("nan"), "follower": float("nan")}
    parent, cpu = {}, {}
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended between listdir and open
        # after the command name: state, ppid, ... utime is field 14 of stat, stime 15
        parent[entry], cpu[entry] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in tree}
        tree |= frontier
    follower = 0.0
    for p in tree - {pid}:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if b"follow" in f.read().split(b"\0"):
                    follower += cpu.get(p, 0.0)
        except OSError:
            continue
    return {"total": sum(cpu.get(p, 0.0) for p in tree), "follower": follower}


class Server(NamedTuple):
    port: int
    key: str
    tmp: str
    pid: int


@contextlib.contextmanager
def serving(args: argparse.Namespace, scopes: list[str]) -> Iterator[Server]:
    """A fresh SQLite store with one API key of ``scopes`` and the server over it on a free
    port; the server stopped and the store removed on exit."""
    with tempfile.TemporaryDirectory(prefix="referee-bench-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = DecisionStore(db_url)
        key = store.create_key("bench", scopes)
        store.close()
        port = free_port()
        proc = start_server(args, db_url, port)
        try:
            yield Server(port, key, tmp, proc.pid)
        finally:
            stop_server(proc)


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {f"{name}_cpu_s": after[name] - before[name] for name in after}


def run_wrk(args: argparse.Namespace, port: int, key: str, tmp: str, server_pid: int) -> dict[str, float]:
    """Closed loop with wrk: ``--warmup`` seconds not counted, then ``--seconds`` measured."""
    script = Path(tmp) / "moderate.lua"
    phrases = "{" + ", ".join(json.dumps(p) for p in PHRASES) + "}"
    script.write_text(_WRK_SCRIPT.replace("{PHRASES}", phrases), encoding="utf-8")
    url = f"http://127.0.0.1:{port}"
    out: dict[str, float] = {}
    for phase, seconds in (("warm", args.warmup), ("main", args.seconds)):
        if seconds <= 0:
            continue
        env = {**os.environ, "REFEREE_BENCH_KEY": key, "REFEREE_BENCH_RUN": f"{phase}{random.randrange(10**9)}"}
        threads = min(2, args.concurrency)
        cmd = ["wrk", f"-t{threads}", f"-c{args.concurrency}", f"-d{seconds:g}s", "--timeout", "10s",
               "-s", str(script), url]
        cpu_before = server_cpu_s(server_pid)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True)
        out = {m[0]: float(m[1]) for m in re.findall(r"^(wrk_\w+)=(\d+)$", done.stdout, re.M)}
        out |= cpu_delta(cpu_before, server_cpu_s(server_pid))
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured duration (after warm-up)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load not counted")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent keep-alive clients")
    parser.add_argument("--rate", type=float, default=None, help="open loop: total requests/s (default: closed loop)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="uvicorn worker processes (default: one per core)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator; auto = wrk when installed (closed loop), else python")
    parser.add_argument("--server", choices=("serve", "uvicorn"), default="serve",
                        help="serve = `referee serve --workers N` (workers + one log follower process, as "
                             "deployed); uvicorn = uvicorn on the app factory (the follower a thread in a worker)")
    parser.add_argument("--detectors", default="lexicon", help="comma-separated detectors of the policy to build")
    parser.add_argument("--policy", type=Path, default=REPO / "policies" / "default.yaml")
    parser.add_argument("--floor", action="store_true", help="serve a constant-answer FastAPI app instead (baseline)")
    parser.add_argument("--floor-seconds", type=float, default=10.0,
                        help="after the referee run, this long against the constant-answer app under the same "
                             "load, printed as floor_*: this host's framework floor, measured in the same run "
                             "(0 = skip)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat referee + floor this many times, alternating, and print the median of each "
                             "figure (errors and requests summed) plus every round's p99 as p99_ms_each: one "
                             "20 s run on a host that drifts by tens of percent is one sample")
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")

    client_kind = args.client
    if client_kind == "auto":
        client_kind = "wrk" if shutil.which("wrk") and not args.rate else "python"
    if client_kind == "wrk" and (args.rate or not shutil.which("wrk")):
        raise SystemExit("--client wrk needs the wrk binary (apt-get install wrk) and closed loop (no --rate)")

    print(f"app={'fastapi-constant (floor)' if args.floor else 'referee'}")
    print(f"client={client_kind}")
    print(f"workers={args.workers}")
    print(f"server_kind={'uvicorn (floor)' if args.floor else args.server}")
    print(f"mode={'open' if args.rate else 'closed'}")
    print(f"concurrency={args.concurrency}")
    if args.rate:
        print(f"target_rps={args.rate:g}")
    print(f"seconds={args.seconds:g}")
    if args.rounds > 1:
        print(f"rounds={args.rounds}")
    with_floor = not args.floor and args.floor_seconds > 0
    # The same load against FastAPI answering a constant, right after each run: the host's
    # speed drifts by tens of percent between minutes, so a floor from another run misleads.
    floor_args = argparse.Namespace(**{**vars(args), "floor": True, "seconds": args.floor_seconds})
    runs, floors, samples = [], [], []
    for _ in range(args.rounds):
        figures, errors = measure(args, client_kind)
        runs.append(figures)
        samples += errors
        if with_floor:
            floors.append(measure(floor_args, client_kind)[0])
    figures = combine(runs)
    for name, value in figures.items():
        print(f"{name}={value:.2f}" if name.endswith("_ms") or name == "rps" else f"{name}={value:.0f}")
    if args.rounds > 1:
        print("p99_ms_each=" + ",".join(f"{r['p99_ms']:.2f}" for r in runs))
    for sample in sorted(set(samples))[:5]:
        print(f"error_sample={sample}")
    if not with_floor:
        return
    floor = combine(floors)
    for name in ("p50_ms", "p99_ms", "rps", "server_cpu_us_per_request"):
        print(f"floor_{name}={floor[name]:.2f}")
    print(f"p99_over_floor={statistics.median(r['p99_ms'] / f['p99_ms'] for r, f in zip(runs, floors)):.2f}")


def combine(runs: list[dict[str, float]]) -> dict[str, float]:
    """One figure per name: the median over rounds, but counts (requests, errors) summed."""
    return {name: (sum(r[name] for r in runs) if name in ("requests", "errors")
                   else statistics.median(r[name] for r in runs)) for name in runs[0]}


def measure(args: argparse.Namespace, client_kind: str) -> tuple[dict[str, float], list[str]]:
    """Start the server, load it, stop it: the figures and a few error samples."""
    with serving(args, ["moderate"]) as server:
        if client_kind == "wrk":
            wrk = run_wrk(args, server.port, server.key, server.tmp, server.pid)
        else:
            cpu_before = server_cpu_s(server.pid)
            latencies, errors, seconds = asyncio.run(load(args, server.port, server.key))
            cpu = cpu_delta(cpu_before, server_cpu_s(server.pid))

    if client_kind == "wrk":
        return {
            "requests": wrk["wrk_requests"],
            **{f"p{q}_ms": wrk[f"wrk_p{q}_us"] / 1000 for q in (50, 90, 99)},
            "max_ms": wrk["wrk_max_us"] / 1000,
            "rps": wrk["wrk_requests"] / args.seconds,
            "errors": wrk["wrk_non2xx"] + wrk["wrk_socket_errors"],
            "server_cpu_us_per_request": wrk["total_cpu_s"] / max(wrk["wrk_requests"], 1) * 1e6,
            "follower_cpu_us_per_request": wrk["follower_cpu_s"] / max(wrk["wrk_requests"], 1) * 1e6,
        }, []
    latencies.sort()
    # The CPU covers warm-up and measured seconds alike (the python client has no separate
    # phases) but only measured requests are counted: scale them up to the whole run.
    run_requests = len(latencies) * (args.seconds + args.warmup) / args.seconds
    return {
        "requests": len(latencies),
        **{f"p{q}_ms": percentile(latencies, q / 100) * 1000 for q in (50, 90, 99)},
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "rps": len(latencies) / seconds,
        "errors": len(errors),
        "server_cpu_us_per_request": cpu["total_cpu_s"] / max(run_requests, 1) * 1e6,
        "follower_cpu_us_per_request": cpu["follower_cpu_s"] / max(run_requests, 1) * 1e6,
    }, sorted(set(errors))[:5]


if __name__ == "__main__":
    main()
