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

The client is a minimal asyncio HTTP/1.1 client rather than httpx: on a small
machine client and server share the CPUs, and a heavy client would be
measured as server latency.

    .venv/bin/python benchmarks/bench_http.py --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fastapi import FastAPI, Request

from referee.store.repo import DecisionStore

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
    factory = "benchmarks.bench_http:floor_app" if args.floor else "referee.serve.app:app_from_env"
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
        "--no-access-log", "--log-level", "warning",
    ]
    if has("uvloop"):
        cmd += ["--loop", "uvloop"]
    if has("httptools"):
        cmd += ["--http", "httptools"]
    env = {
        **os.environ,
        "REFEREE_DB_URL": db_url,
        "REFEREE_POLICY": str(args.policy),
        "REFEREE_DETECTORS": json.dumps(args.detectors.split(",")),
        "REFEREE_AUTH": "true",
    }
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"server exited with {proc.returncode}:\n{err}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    print(f"server={' '.join(cmd[2:])}", flush=True)
                    return proc
        except OSError:
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
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--detectors", default="lexicon", help="comma-separated detectors of the policy to build")
    parser.add_argument("--policy", type=Path, default=REPO / "policies" / "default.yaml")
    parser.add_argument("--floor", action="store_true", help="serve a constant-answer FastAPI app instead (baseline)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="referee-bench-") as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = DecisionStore(db_url)
        key = store.create_key("bench", ["moderate"])
        store.close()
        port = free_port()
        proc = start_server(args, db_url, port)
        try:
            latencies, errors, seconds = asyncio.run(load(args, port, key))
        finally:
            stop_server(proc)

    latencies.sort()
    print(f"app={'fastapi-constant (floor)' if args.floor else 'referee'}")
    print(f"mode={'open' if args.rate else 'closed'}")
    print(f"concurrency={args.concurrency}")
    if args.rate:
        print(f"target_rps={args.rate:g}")
    print(f"seconds={seconds:g}")
    print(f"requests={len(latencies)}")
    print(f"p50_ms={percentile(latencies, 0.50) * 1000:.2f}")
    print(f"p90_ms={percentile(latencies, 0.90) * 1000:.2f}")
    print(f"p99_ms={percentile(latencies, 0.99) * 1000:.2f}")
    print(f"max_ms={(latencies[-1] if latencies else float('nan')) * 1000:.2f}")
    print(f"rps={len(latencies) / seconds:.1f}")
    print(f"errors={len(errors)}")
    for sample in sorted(set(errors))[:5]:
        print(f"error_sample={sample}")


if __name__ == "__main__":
    main()
