"""The worker against the real Redis and a real store: stored before acknowledged,
idempotent on redelivery, poison to the dead-letter stream, bounded output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from referee.ingest import read_items
from referee.model import ContentItem
from referee.store import Store
from referee.workers import ItemStream, StreamError, Worker, produce
from tests.workers.conftest import EXAMPLES, Keys, drain, worker_for

pytestmark = pytest.mark.redis


def _examples() -> list[ContentItem]:
    return [r for r in read_items(EXAMPLES) if isinstance(r, ContentItem)]


def _pending(client: Any, keys: Keys) -> int:
    return int(client.xpending(keys.items, keys.group)["pending"])


def _out(client: Any, keys: Keys) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in client.xrange(keys.out)]


def _store(engine: Any) -> Store:
    assert isinstance(engine.sink, Store)
    return engine.sink


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_every_item_is_stored_published_and_acknowledged(backend, keys, client, make_engine, request):
    url = None
    if backend == "postgres":
        from referee.store import upgrade

        url = request.getfixturevalue("pg_url")
        upgrade(url)
    engine = make_engine(url)
    items = _examples()
    assert produce(client, keys.items, items) == len(items)
    worker = worker_for(engine, client, keys, batch=8)
    drain(worker, lambda: worker.finished == len(items))

    out = _out(client, keys)
    assert len(out) == len(items) and _pending(client, keys) == 0
    assert sorted(o["item_id"] for o in out) == sorted(i.id for i in items)
    for o in out:  # what was published is what the store holds
        stored = _store(engine).log.get(o["decision_id"])
        assert stored is not None and json.loads(o["decision"])["action"] == stored.action.value
    assert {o["item_id"]: json.loads(o["decision"])["action"] for o in out}["c-003"] != "allow"


def test_a_redelivered_entry_gets_the_stored_decision_not_a_second_one(keys, client, make_engine, monkeypatch):
    engine = make_engine()
    items = _examples()[:5]
    produce(client, keys.items, items)
    first = worker_for(engine, client, keys, consumer="dies", batch=5, claim_idle_ms=100)

    def crash(_results: object) -> set[str]:  # the process dies after the commit, before the ack
        raise RuntimeError("killed between the store's commit and XACK")

    monkeypatch.setattr(first.stream, "finish", crash)
    with pytest.raises(RuntimeError):
        first.step()
    assert _pending(client, keys) == 5 and client.xlen(keys.out) == 0
    assert all(len(_store(engine).log.history(i.id)) == 1 for i in items)  # stored, not acknowledged

    second = worker_for(engine, client, keys, consumer="survivor", batch=5, claim_idle_ms=100)
    drain(second, lambda: second.finished == 5)
    assert _pending(client, keys) == 0
    assert all(len(_store(engine).log.history(i.id)) == 1 for i in items)  # no second decision
    out = _out(client, keys)
    assert sorted(o["item_id"] for o in out) == sorted(i.id for i in items)
    heads = _store(engine).log.heads([i.id for i in items])
    assert {o["decision_id"] for o in out} == {d.decision_id for d in heads.values()}


def test_a_slow_worker_does_not_publish_what_another_worker_claimed(keys, client, make_engine):
    engine = make_engine()
    produce(client, keys.items, _examples()[:3])
    slow = worker_for(engine, client, keys, consumer="slow", batch=3)
    entries = slow.stream.read(3, None)
    fast = worker_for(engine, client, keys, consumer="fast", batch=3, claim_idle_ms=100)
    client.xclaim(keys.items, keys.group, "fast", 0, [e.id for e in entries])  # fast took them over
    drain(fast, lambda: fast.finished == 3)
    slow.process(entries)  # slow finishes late: its results are not published twice
    assert slow.finished == 0 and client.xlen(keys.out) == 3


def test_poison_entries_are_dead_lettered_with_the_error_and_the_worker_goes_on(keys, client, make_engine):
    engine = make_engine()
    client.xadd(keys.items, {"item": b"{not json"})
    client.xadd(keys.items, {"body": b'{"id": "x", "text": "hi"}'})
    client.xadd(keys.items, {"item": b'{"id": "x", "txet": "hi"}'})
    client.xadd(keys.items, {"item": b"\xff\xfe"})
    client.xadd(keys.items, {"item": b'{"id": "", "text": "hi"}'})
    produce(client, keys.items, _examples()[:2])
    worker = worker_for(engine, client, keys, batch=4)
    drain(worker, lambda: worker.finished == 2)

    dead = [{k.decode(): v for k, v in f.items()} for _, f in client.xrange(keys.dead)]
    errors = [d["error"].decode() for d in dead]
    assert len(dead) == 5 and worker.dead == 5 and _pending(client, keys) == 0
    assert "not valid JSON" in errors[0]
    assert "no 'item' field (the entry has: body)" in errors[1]
    assert "txet: unknown field; did you mean 'text'?" in errors[2]
    assert "invalid UTF-8 at byte 0" in errors[3]
    assert ": id:" in errors[4]
    assert dead[0]["orig.item"] == b"{not json" and dead[3]["orig.item"] == b"\xff\xfe"  # the original entry
    assert dead[1]["orig.body"] == b'{"id": "x", "text": "hi"}'
    assert all(d["source"].decode() == keys.items and d["deliveries"] == b"1" for d in dead)


def test_an_item_that_keeps_failing_is_retried_then_dead_lettered(keys, client, make_engine, tmp_path: Path):
    engine = make_engine()
    missing = tmp_path / "gone.png"
    bad = ContentItem.model_validate({"id": "m1", "parts": [{"kind": "image", "id": "cover", "path": str(missing)}]})
    good = _examples()[:2]
    produce(client, keys.items, [good[0], bad, good[1]])
    worker = worker_for(engine, client, keys, batch=3, claim_idle_ms=100, max_attempts=3)
    drain(worker, lambda: worker.finished == 2)  # the batch failed, item by item saved the good ones
    assert worker.dead == 0 and _pending(client, keys) == 1  # the bad one waits for a retry
    drain(worker, lambda: worker.dead == 1)
    (_, fields), = client.xrange(keys.dead)
    assert fields[b"deliveries"] == b"3"
    assert b"cannot read image file" in fields[b"error"] and b"gone.png" in fields[b"error"]
    assert json.loads(fields[b"orig.item"])["id"] == "m1"
    assert _pending(client, keys) == 0 and client.xlen(keys.out) == 2


def test_an_entry_delivered_too_often_is_dead_lettered_without_running(keys, client, make_engine):
    engine = make_engine()
    produce(client, keys.items, _examples()[:1])
    worker_for(engine, client, keys, consumer="dead0").stream.read(1, None)
    entry_id = client.xrange(keys.items)[0][0]
    for n in (1, 2):  # two more workers took it over and died too
        client.xclaim(keys.items, keys.group, f"dead{n}", 0, [entry_id])
    worker = worker_for(engine, client, keys, claim_idle_ms=100, max_attempts=2)
    drain(worker, lambda: worker.dead == 1)
    (_, fields), = client.xrange(keys.dead)
    assert fields[b"deliveries"] == b"4" and b"delivered 4 times without being acknowledged" in fields[b"error"]
    assert _store(engine).log.heads(["c-001"]) == {}  # never moderated


def test_the_output_stream_is_capped(keys, client, make_engine):
    engine = make_engine()
    items = [ContentItem(id=f"cap-{i}", text=f"comment number {i}") for i in range(600)]
    produce(client, keys.items, items)
    worker = worker_for(engine, client, keys, batch=200, out_maxlen=100)
    drain(worker, lambda: worker.finished == 600)
    assert 100 <= client.xlen(keys.out) < 300  # MAXLEN ~ trims whole nodes, approximately


def test_the_group_is_created_once_and_a_consumer_reads_only_new_entries(keys, client, make_engine):
    engine = make_engine()
    worker = worker_for(engine, client, keys)
    worker.stream.ensure_group()  # a second start finds the group: no error
    assert worker.step() == 0
    produce(client, keys.items, _examples()[:2])
    assert worker.step() == 2 and worker.step() == 0


def test_a_worker_needs_a_store(keys, client, make_engine, tmp_path: Path):
    from referee.build import EngineConfig, build_engine
    from referee.errors import ConfigError
    from tests.workers.conftest import DEFAULT_POLICY

    with (build_engine(EngineConfig(policy=DEFAULT_POLICY, detectors=("lexicon",))) as engine,
          pytest.raises(ConfigError, match="acknowledges an entry only once its decision is stored")):
        Worker(engine, ItemStream(client, keys.config()))


def test_redis_that_does_not_answer_is_a_stream_error_after_bounded_retries(keys):
    from referee.workers import connect
    from tests.workers.conftest import free_port

    stream = ItemStream(connect(f"redis://127.0.0.1:{free_port()}/0"), keys.config(retries=2))
    with pytest.raises(StreamError, match=r"XREADGROUP failed 3 time\(s\)"):
        stream.read(1, None)


def test_a_url_that_is_not_redis_names_the_flag():
    from referee.workers import connect

    with pytest.raises(StreamError, match="--redis-url 'http://x' is not a Redis URL"):
        connect("http://x")


def test_stream_ids_and_bytes_round_trip(client: redis.Redis, keys):
    produce(client, keys.items, [ContentItem(id="u", text="naïve café ✓")])
    ((_, fields),) = client.xrange(keys.items)
    assert ContentItem.model_validate_json(fields[b"item"]).text == "naïve café ✓"


def test_the_public_surface_is_pinned():
    import referee.workers

    assert referee.workers.__all__ == ["ITEM_FIELD", "Entry", "ItemStream", "PrometheusMetrics", "StreamConfig",
                                       "StreamError", "Worker", "WorkerMetrics", "connect", "produce"]


def test_the_redis_url_comes_from_settings(monkeypatch):
    from referee.settings import Settings

    assert Settings().redis_url == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("REFEREE_REDIS_URL", "redis://127.0.0.1:6390/2")
    assert Settings().redis_url == "redis://127.0.0.1:6390/2"


def test_a_group_lost_with_redis_data_is_recreated_and_the_stream_read_again(keys, client, make_engine):
    engine = make_engine()
    worker = worker_for(engine, client, keys)
    produce(client, keys.items, _examples()[:2])
    drain(worker, lambda: worker.finished == 2)
    client.delete(keys.items)  # as after a restart without persistence
    produce(client, keys.items, _examples()[:3])
    drain(worker, lambda: worker.finished == 5)
    assert all(len(_store(engine).log.history(i.id)) == 1 for i in _examples()[:3])  # idempotent


def test_an_async_stage_decision_is_published_after_the_synchronous_one(keys, client, tmp_path):
    """The batch is acked on the provisional decision; the async stage's decision that
    supersedes it is stored and then published on the output stream too."""
    from referee.engine import Engine
    from referee.policy import Policy
    from tests.conftest import KeywordDetector
    from tests.engine.test_spine import PLAN_POLICY, FakeOCR, Second

    policy = Policy.from_yaml(PLAN_POLICY.replace("detectors: [second]", "detectors: [second]\n    async: true"))
    store = Store(f"sqlite:///{tmp_path / 'async.db'}")
    engine = Engine(policy, [FakeOCR(), KeywordDetector(), Second(delay_s=0.05)], sink=store)
    try:
        produce(client, keys.items, [ContentItem(id="a1", text="vile")])
        worker = worker_for(engine, client, keys, batch=8)
        drain(worker, lambda: worker.finished == 1)
        engine.wait_async()
        out = _out(client, keys)
        assert [o["item_id"] for o in out] == ["a1", "a1"] and _pending(client, keys) == 0
        first, final = (json.loads(o["decision"]) for o in out)
        assert first["provisional"] and final["supersedes"] == first["decision_id"]
        assert out[1]["source_id"] == "" and store.log.head("a1").decision_id == final["decision_id"]
    finally:
        engine.close()
        store.close()
