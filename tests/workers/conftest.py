"""Fixtures for stream workers: the machine's Redis under a fresh key prefix per test,
engines on the default policy's lexicon, and helpers to run and watch workers.

Tests never restart the shared Redis on 6379: the restart test starts its own
``redis-server`` on a free port (``own_redis``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from referee.build import EngineConfig, build_engine
from referee.engine import Engine
from referee.workers import ItemStream, StreamConfig, Worker, connect
from tests.store.conftest import pg_url  # noqa: F401  (PostgreSQL in a schema of its own)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"
EXAMPLES = REPO / "examples" / "comments.jsonl"
REDIS_URL = os.environ.get("REFEREE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available(url: str = REDIS_URL) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@dataclass
class Keys:
    """The stream names of one test, all under its own prefix."""

    url: str
    prefix: str

    @property
    def items(self) -> str:
        return f"{self.prefix}:items"

    @property
    def out(self) -> str:
        return f"{self.prefix}:decisions"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:items:dead"

    group = "moderators"

    def config(self, consumer: str = "w1", **overrides: object) -> StreamConfig:
        values: dict[str, object] = {"stream": self.items, "group": self.group, "consumer": consumer,
                                     "out_stream": self.out, "dead_stream": self.dead, "block_ms": 50,
                                     "claim_idle_ms": 60_000, "retry_max_s": 0.5}
        values.update(overrides)
        return StreamConfig.model_validate(values)

    def cli_args(self) -> list[str]:
        return ["--stream", self.items, "--group", self.group, "--out-stream", self.out,
                "--dead-stream", self.dead, "--redis-url", self.url]


@pytest.fixture
def keys() -> Iterator[Keys]:
    """Stream names under a fresh prefix on the machine's Redis; removed afterwards."""
    if not redis_available():
        pytest.skip(f"Redis not reachable at {REDIS_URL} (start it: redis-server --bind 127.0.0.1 --port 6379)")
    k = Keys(REDIS_URL, f"t:{uuid.uuid4().hex[:10]}")
    yield k
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{k.prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def client(keys: Keys) -> Iterator[redis.Redis]:
    c = connect(keys.url, 50)
    yield c
    c.close()


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Engines on the default policy's lexicon (``store_url`` defaults to a temp SQLite file)."""
    built: list[Engine] = []

    def make(store_url: str | None = None, policy: Path = DEFAULT_POLICY, detectors: tuple[str, ...] = ("lexicon",),
             **kwargs: object) -> Engine:
        config = EngineConfig(policy=policy, detectors=detectors,
                              store_url=store_url or f"sqlite:///{tmp_path / 'worker.db'}")
        engine = build_engine(config, **kwargs)  # type: ignore[arg-type]
        built.append(engine)
        return engine

    yield make
    for engine in built:
        engine.close()


def worker_for(engine: Engine, client: redis.Redis, keys: Keys, consumer: str = "w1", **overrides: object) -> Worker:
    stream = ItemStream(client, keys.config(consumer, **overrides))
    stream.ensure_group()
    return Worker(engine, stream)


def drain(worker: Worker, until: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Run ``worker.step()`` until ``until()`` holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > deadline:
            pytest.fail(f"worker did not get there within {timeout_s} s")
        worker.step()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def referee_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from referee.cli import app; app()", *args]


def worker_process(keys: Keys, db_url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``referee worker`` on the default policy's lexicon, as its own process group."""
    env = {**os.environ, "REFEREE_POLICY": str(DEFAULT_POLICY), "REFEREE_DB_URL": db_url}
    return subprocess.Popen(
        referee_cmd("worker", *keys.cli_args(), "--detectors", "lexicon", "--block-ms", "100", *extra),
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
    )


class OwnRedis:
    """A ``redis-server`` of the test's own on a free loopback port, appendonly (fsync
    always), so it can be killed and restarted with its streams intact."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=(self.dir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not redis_available(self.url):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail(f"own redis-server did not start: {(self.dir / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()
