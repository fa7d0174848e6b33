"""Dead consumers are removed from the group once idle with nothing pending (XGROUP DELCONSUMER),
against the real Redis: never one holding entries, never the worker itself, a bounded number a pass."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from referee.ingest import read_items
from referee.model import ContentItem
from referee.workers import ItemStream, PrometheusMetrics, StreamConfig, Worker, produce
from tests.workers.conftest import EXAMPLES, Keys, drain

pytestmark = pytest.mark.redis


def _examples(n: int) -> list[ContentItem]:
    return [r for r in read_items(EXAMPLES) if isinstance(r, ContentItem)][:n]


def _consumers(client: Any, keys: Keys) -> dict[str, int]:
    """Name -> pending entries, as XINFO CONSUMERS lists them."""
    return {c["name"].decode(): int(c["pending"]) for c in client.xinfo_consumers(keys.items, keys.group)}


def _idle_past(client: Any, keys: Keys, names: set[str], idle_ms: int) -> None:
    """Wait until Redis reports every one of ``names`` idle for at least ``idle_ms``."""
    deadline = time.monotonic() + 10
    while True:
        idle = {c["name"].decode(): int(c["idle"]) for c in client.xinfo_consumers(keys.items, keys.group)}
        if all(idle.get(n, 0) >= idle_ms for n in names):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"consumers {sorted(names)} never got {idle_ms} ms idle: {idle}")
        time.sleep(0.05)


def test_a_dead_workers_name_is_removed_after_its_entries_are_claimed(keys, client, make_engine, caplog):
    engine = make_engine()
    produce(client, keys.items, _examples(5))
    dead = ItemStream(client, keys.config("dead", batch=5))
    dead.ensure_group()
    assert len(dead.read(5, None)) == 5  # read, never acknowledged: the process "died"
    metrics = PrometheusMetrics(keys.items, keys.group)
    survivor_stream = ItemStream(client, keys.config("survivor", batch=5, claim_idle_ms=100, forget_idle_ms=300))
    survivor_stream.ensure_group()
    survivor = Worker(engine, survivor_stream, metrics)
    caplog.set_level(logging.INFO, logger="referee.workers.worker")

    drain(survivor, lambda: survivor.finished == 5)
    assert _consumers(client, keys)["dead"] == 0  # its entries were claimed, its name is still there
    drain(survivor, lambda: "dead" not in _consumers(client, keys))

    assert _consumers(client, keys) == {"survivor": 0}
    assert survivor.forgotten == 1
    labels = {"stream": keys.items, "group": keys.group}
    assert metrics.registry.get_sample_value("referee_worker_consumers_removed_total", labels) == 1
    assert any("removed 1 consumer(s)" in r.getMessage() and "dead" in r.getMessage() for r in caplog.records)
    assert client.xlen(keys.out) == 5 and int(client.xpending(keys.items, keys.group)["pending"]) == 0


def test_only_idle_consumers_with_nothing_pending_go_never_the_caller_and_at_most_the_limit(keys, client):
    produce(client, keys.items, _examples(3))
    holder = ItemStream(client, keys.config("holder"))
    holder.ensure_group()
    assert len(holder.read(3, None)) == 3  # idle, but holding entries: DELCONSUMER would lose them
    me = ItemStream(client, keys.config("me"))
    me.ensure_group()
    for name in ("empty1", "empty2", "empty3"):
        client.xgroup_createconsumer(keys.items, keys.group, name)
    _idle_past(client, keys, {"holder", "me", "empty1", "empty2", "empty3"}, 300)
    client.xgroup_createconsumer(keys.items, keys.group, "fresh")  # not idle long enough

    first = me.forget_idle_consumers(300, limit=2)
    assert len(first) == 2 and set(first) < {"empty1", "empty2", "empty3"}
    second = me.forget_idle_consumers(300, limit=2)
    assert set(first) | set(second) == {"empty1", "empty2", "empty3"}
    assert _consumers(client, keys) == {"holder": 3, "me": 0, "fresh": 0}
    assert me.forget_idle_consumers(300) == []
    assert int(client.xpending(keys.items, keys.group)["pending"]) == 3  # nothing was lost


def test_forgetting_can_be_turned_off(keys, client, make_engine):
    client.xgroup_create(keys.items, keys.group, id="0", mkstream=True)
    client.xgroup_createconsumer(keys.items, keys.group, "gone")
    stream = ItemStream(client, keys.config("w1", claim_idle_ms=100, forget_idle_ms=0))
    stream.ensure_group()
    worker = Worker(make_engine(), stream)
    _idle_past(client, keys, {"gone"}, 300)
    for _ in range(5):
        worker.step()
        time.sleep(0.1)
    assert "gone" in _consumers(client, keys) and worker.forgotten == 0


def test_the_threshold_defaults_to_ten_claim_timeouts_and_may_not_be_below_one():
    assert StreamConfig(consumer="w", claim_idle_ms=60_000).forget_after_ms == 600_000
    assert StreamConfig(consumer="w", forget_idle_ms=0).forget_after_ms == 0
    assert StreamConfig(consumer="w", claim_idle_ms=1000, forget_idle_ms=1000).forget_after_ms == 1000
    with pytest.raises(ValidationError, match=r"forget_idle_ms must be 0 \(never\) or at least claim_idle_ms "
                                              r"\(1000\), got 500"):
        StreamConfig(consumer="w", claim_idle_ms=1000, forget_idle_ms=500)


def test_the_cli_refuses_a_threshold_below_the_claim_timeout():
    from referee.cli import app

    done = CliRunner().invoke(app, ["worker", "--claim-idle-ms", "1000", "--forget-idle-ms", "500"])
    assert done.exit_code == 2
    assert "--forget-idle-ms 500 is below --claim-idle-ms 1000" in " ".join(done.output.split())


def test_a_clean_up_that_fails_does_not_stop_the_moderation(keys, client, make_engine, monkeypatch, caplog):
    from referee.workers import StreamError

    produce(client, keys.items, _examples(3))
    stream = ItemStream(client, keys.config("w1", claim_idle_ms=100))
    stream.ensure_group()
    worker = Worker(make_engine(), stream)

    def refused(idle_ms: int, limit: int = 100) -> list[str]:
        raise StreamError("redis: XGROUP DELCONSUMER: NOPERM this user has no permissions to run 'xgroup'")

    monkeypatch.setattr(stream, "forget_idle_consumers", refused)
    drain(worker, lambda: worker.finished == 3)
    assert client.xlen(keys.out) == 3
    assert any("could not remove idle consumers" in r.getMessage() for r in caplog.records)
