"""Faults, on loopback only: a worker killed with -9, Redis killed and restarted, the
database refusing connections, a detector that hangs; and a graceful stop."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy

from referee.detectors.base import Detector, detector_registry
from referee.model import ContentItem, Signal
from referee.store import upgrade
from referee.workers import ItemStream, PrometheusMetrics, Worker, connect, produce
from tests.workers.conftest import Keys, OwnRedis, free_port, worker_for, worker_process

pytestmark = pytest.mark.redis


def _items(n: int, prefix: str = "i") -> list[ContentItem]:
    texts = ["great track, on repeat", "free followers, click here", "you are a worthless idiot",
             "see you at the show tonight", "buy cheap pills online now"]
    return [ContentItem(id=f"{prefix}-{i}", surface="comment", text=f"{texts[i % len(texts)]} #{i}")
            for i in range(n)]


def _wait(cond: Callable[[], bool], timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}\n{tail}")
        time.sleep(0.05)


def _decisions_per_item(db_url: str) -> Counter[str]:
    engine = sqlalchemy.create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("SELECT item_id FROM decisions")).all()
    engine.dispose()
    return Counter(r.item_id for r in rows)


def _published(client: Any, keys: Keys) -> Counter[str]:
    return Counter(f[b"item_id"].decode() for _, f in client.xrange(keys.out))


def _pending_of(client: Any, keys: Keys, consumer: str) -> int:
    try:
        consumers = client.xinfo_consumers(keys.items, keys.group)
    except redis.ResponseError:  # the worker has not created the group yet
        return 0
    return sum(int(c["pending"]) for c in consumers if c["name"].decode() == consumer)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(20)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        _stop(p)


# -- (1) kill -9 mid-batch ------------------------------------------------------------
@pytest.mark.slow
def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_no_decision(keys, client, tmp_path, procs):
    db_url = f"sqlite:///{tmp_path / 'kill.db'}"
    log = tmp_path / "workers.log"
    n = 3000
    produce(client, keys.items, _items(n))
    for attempt in range(3):  # kill it while it holds entries it read but did not acknowledge
        first = worker_process(keys, db_url, log, "--consumer", f"first{attempt}", "--batch", "256")
        procs.append(first)
        name, floor = f"first{attempt}", 100 * (attempt + 1)
        _wait(lambda name=name, floor=floor: client.xlen(keys.out) > floor and _pending_of(client, keys, name) > 0,
              120, "the first worker to publish", log)
        _stop(first)
        if _pending_of(client, keys, f"first{attempt}") > 0:
            break
    in_hand = _pending_of(client, keys, f"first{attempt}")
    assert in_hand > 0, "never caught the worker with a batch in hand"

    second = worker_process(keys, db_url, log, "--consumer", "second", "--claim-idle-ms", "500")
    procs.append(second)
    _wait(lambda: sum(_published(client, keys).values()) >= n and int(
        client.xpending(keys.items, keys.group)["pending"]) == 0, 180, "every entry published and acked", log)
    _stop(second, signal.SIGTERM)
    assert second.returncode == 0

    decisions = _decisions_per_item(db_url)
    assert len(decisions) == n and set(decisions.values()) == {1}  # exactly one decision per item
    published = _published(client, keys)
    assert len(published) == n and set(published.values()) == {1}  # and one output entry per decision
    assert "claimed" in log.read_text()


# -- (2) Redis killed and restarted ------------------------------------------------------
@pytest.mark.slow
def test_a_worker_waits_out_a_redis_restart_and_resumes(own_redis: OwnRedis, tmp_path, procs):
    keys = Keys(own_redis.url, "r")
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)
    db_url = f"sqlite:///{tmp_path / 'restart.db'}"
    log = tmp_path / "worker.log"
    n = 2000
    produce(client, keys.items, _items(n))
    proc = worker_process(keys, db_url, log, "--consumer", "w", "--batch", "32")
    procs.append(proc)
    _wait(lambda: client.xlen(keys.out) > 200, 120, "the worker to publish", log)

    own_redis.kill()
    time.sleep(2.0)  # the worker retries (bounded backoff, logged) meanwhile
    assert proc.poll() is None, "the worker must outlive Redis"
    own_redis.start()
    client = redis.Redis.from_url(own_redis.url, socket_timeout=5)
    _wait(lambda: client.xlen(keys.out) >= n and int(client.xpending(keys.items, keys.group)["pending"]) == 0,
          120, "the worker to finish after the restart", log)
    _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0

    decisions = _decisions_per_item(db_url)
    assert len(decisions) == n and set(decisions.values()) == {1}
    published = _published(client, keys)
    assert len(published) == n and set(published.values()) == {1}
    assert "retrying in" in log.read_text()


# -- (3) the database refuses connections ------------------------------------------------
class Proxy:
    """A TCP proxy on 127.0.0.1 to ``target``; ``refuse()`` closes every connection and
    turns new ones away until ``forward()``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refusing = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._done.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.refusing.is_set():
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._open.update((conn, upstream))
            threading.Thread(target=self._pump, args=(conn, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self.refusing.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with self._lock:
                    self._open.discard(s)
                s.close()

    def refuse(self) -> None:
        self.refusing.set()
        with self._lock:
            for s in list(self._open):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def forward(self) -> None:
        self.refusing.clear()

    def close(self) -> None:
        self._done.set()
        self.refuse()
        self.listener.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_database_that_refuses_connections_loses_and_duplicates_nothing(keys, client, pg_url, make_engine):
    upgrade(pg_url)
    proxy = Proxy(("127.0.0.1", 5432))
    try:
        engine = make_engine(pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
        n = 400
        produce(client, keys.items, _items(n))
        worker = worker_for(engine, client, keys, batch=20)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        _wait(lambda: client.xlen(keys.out) >= 60, 60, "the first decisions")

        proxy.refuse()
        time.sleep(1.0)
        stalled = client.xlen(keys.out)
        time.sleep(2.0)
        assert client.xlen(keys.out) == stalled < n  # nothing is published while nothing can be stored
        assert int(client.xpending(keys.items, keys.group)["pending"]) > 0  # the batch in hand is not acked
        assert thread.is_alive()

        proxy.forward()
        _wait(lambda: client.xlen(keys.out) >= n and int(client.xpending(keys.items, keys.group)["pending"]) == 0,
              60, "the worker to finish once the database is back")
        worker.stop()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        proxy.close()

    decisions = _decisions_per_item(pg_url)
    assert len(decisions) == n and set(decisions.values()) == {1}
    published = _published(client, keys)
    assert len(published) == n and set(published.values()) == {1}


# -- (4) a detector that hangs -----------------------------------------------------------
HANG_POLICY = """
id: hang
version: "1"
categories:
  spam: {description: Unsolicited commercial messages., severity: low}
detectors:
  hang: {timeout_s: 0.5}
surfaces:
  default:
    rules:
      - {id: default.spam, categories: spam, threshold: 0.5, action: limit_reach, on_error: hold_for_review}
"""

RELEASE = threading.Event()


class HangingDetector(Detector):
    """Scores spam on 'buy'; blocks (until released, at most 30 s) on a batch holding 'hang'."""

    name = "hang"
    version = "h1"

    @property
    def categories(self) -> tuple[str, ...]:
        return ("spam",)

    def detect(self, item: ContentItem) -> list[Signal]:
        return [Signal(detector=self.name, detector_version=self.version, category="spam",
                       score=0.9 if "buy" in item.text else 0.0)]

    def detect_many(self, items: Sequence[ContentItem], prior: object = None) -> list[list[Signal]]:
        if any("hang" in i.text for i in items):
            RELEASE.wait(30)
        return [self.detect(i) for i in items]

    @classmethod
    def from_policy(cls, policy: object, config: dict[str, object]) -> HangingDetector:
        return cls()


def test_a_hanging_detector_holds_its_batch_and_the_worker_goes_on(keys, client, make_engine, tmp_path, request):
    RELEASE.clear()
    request.addfinalizer(RELEASE.set)
    policy = tmp_path / "hang.yaml"
    policy.write_text(HANG_POLICY, encoding="utf-8")
    engine = make_engine(policy=policy, detectors=("hang",), registry=detector_registry({"hang": HangingDetector}))
    worker = worker_for(engine, client, keys, batch=3)
    produce(client, keys.items, [ContentItem(id="a", text="hello"), ContentItem(id="b", text="please hang"),
                                 ContentItem(id="c", text="buy now")])
    began = time.monotonic()
    assert worker.step() == 3
    assert time.monotonic() - began < 3.0  # the detector's timeout, not the hang
    produce(client, keys.items, [ContentItem(id="d", text="buy now"), ContentItem(id="e", text="hello")])
    assert worker.step() == 2

    out = {f[b"item_id"].decode(): json.loads(f[b"decision"]) for _, f in client.xrange(keys.out)}
    for held in "abc":  # the hung batch: each item held for review, provisional, the timeout recorded
        assert out[held]["action"] == "hold_for_review" and out[held]["provisional"] is True
        assert out[held]["failures"][0]["kind"] == "timeout"
    assert out["d"]["action"] == "limit_reach" and out["e"]["action"] == "allow"
    assert not out["d"]["provisional"] and int(client.xpending(keys.items, keys.group)["pending"]) == 0


# -- graceful stop and metrics ---------------------------------------------------------------
@pytest.mark.slow
def test_sigterm_finishes_the_batch_in_hand_acks_and_exits_0(keys, client, tmp_path, procs):
    log = tmp_path / "worker.log"
    port = free_port()
    produce(client, keys.items, _items(10_000))
    proc = worker_process(keys, f"sqlite:///{tmp_path / 'term.db'}", log, "--consumer", "t", "--batch", "256",
                          "--metrics-port", str(port))
    procs.append(proc)
    _wait(lambda: client.xlen(keys.out) > 256 and _pending_of(client, keys, "t") > 0, 120, "a batch in hand", log)
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "referee_worker_items_total" in metrics and "referee_worker_batch_seconds_bucket" in metrics
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(30) == 0
    assert _pending_of(client, keys, "t") == 0  # the batch in hand was finished and acknowledged
    published = client.xlen(keys.out)
    assert published < 10_000 and published % 256 == 0  # it stopped after whole batches, took no more
    text = log.read_text()
    assert "SIGTERM: finishing the batch in hand" in text and f"{published} entries finished" in text


def test_metrics_count_items_dead_letters_and_lag(keys, client, make_engine):
    engine = make_engine()
    metrics = PrometheusMetrics(keys.items, keys.group)
    produce(client, keys.items, _items(10))
    client.xadd(keys.items, {"item": b"[]"})
    stream = ItemStream(client, keys.config(batch=4))
    stream.ensure_group()
    worker = Worker(engine, stream, metrics)
    worker.step()  # reads 4, and the lag: 7 not yet delivered
    labels = {"stream": keys.items, "group": keys.group}
    assert metrics.registry.get_sample_value("referee_worker_consumer_lag", labels) == 7
    while worker.finished + worker.dead < 11:
        worker.step()
    total = sum(metrics.registry.get_sample_value("referee_worker_items_total", {**labels, "action": a}) or 0
                for a in ("allow", "label", "age_restrict", "limit_reach", "hold_for_review", "remove"))
    assert total == 10
    assert metrics.registry.get_sample_value("referee_worker_dead_lettered_total", {**labels, "reason": "invalid"}) == 1
    assert metrics.registry.get_sample_value("referee_worker_batch_seconds_count", labels) == 3
    # The process's shared series: how old the oldest entry of the last batch was when it was answered.
    lag = metrics.registry.get_sample_value("referee_queue_lag_seconds", {"stream": keys.items})
    assert lag is not None and 0 <= lag < 60


def test_produce_command_reports_bad_lines_and_appends_the_rest(keys, client, tmp_path):
    from typer.testing import CliRunner

    from referee.cli import app

    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "hi"}\nnot json\n{"id": "b", "text": "there"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["produce", str(src), "--stream", keys.items, "--redis-url", keys.url])
    assert result.exit_code == 1
    assert "line 2: not valid JSON" in result.output and "2 items appended" in result.output
    assert [ContentItem.model_validate_json(f[b"item"]).id for _, f in client.xrange(keys.items)] == ["a", "b"]
    down = CliRunner().invoke(app, ["produce", str(src), "--redis-url", f"redis://127.0.0.1:{free_port()}/0"])
    assert down.exit_code == 2 and "XADD" in down.output


def test_worker_command_refuses_bad_options_before_connecting(keys):
    from typer.testing import CliRunner

    from referee.cli import app

    result = CliRunner().invoke(app, ["worker", "--batch", "0"])
    assert result.exit_code == 2 and "--batch" in result.output
    result = CliRunner().invoke(app, ["worker", *keys.cli_args(), "--no-such"])
    assert result.exit_code == 2
    assert connect(keys.url).ping()
