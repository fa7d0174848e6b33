"""Concurrent requests share engine batches, and each gets exactly its own decisions."""

from __future__ import annotations

import asyncio
import threading

import pytest

from referee.engine import Engine
from referee.engine.batcher import Batcher
from referee.model import ContentItem


class GatedEngine:
    """Wraps an engine; the first call blocks until released, so later requests pile up behind it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[int] = []
        self.gate = threading.Event()

    def moderate_many(self, items):
        self.calls.append(len(items))
        if len(self.calls) == 1:
            self.gate.wait(5)
        return self.engine.moderate_many(items)


def test_queued_requests_are_merged_and_answered_in_order(engine: Engine) -> None:
    gated = GatedEngine(engine)
    coalescer = Batcher(gated, max_batch=10, max_inflight=1)  # type: ignore[arg-type]

    async def scenario():
        first = asyncio.create_task(coalescer.moderate([ContentItem(id="first", text="#hate")]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(coalescer.moderate([ContentItem(id=f"r{i}", text="#spam" if i % 2 else "ok")]))
                for i in range(6)]
        pair = asyncio.create_task(coalescer.moderate([ContentItem(id="p1", text="a"), ContentItem(id="p2", text="b")]))
        await asyncio.sleep(0.05)
        gated.gate.set()
        return await first, await asyncio.gather(*rest), await pair

    first, rest, pair = asyncio.run(scenario())
    assert gated.calls == [1, 8]
    assert first[0].item_id == "first" and first[0].action.value == "remove"
    assert [d[0].item_id for d in rest] == [f"r{i}" for i in range(6)]
    assert [d[0].action.value for d in rest] == ["allow", "limit_reach"] * 3
    assert [d.item_id for d in pair] == ["p1", "p2"]


def test_batches_respect_max_batch(engine: Engine) -> None:
    gated = GatedEngine(engine)
    coalescer = Batcher(gated, max_batch=3, max_inflight=1)  # type: ignore[arg-type]

    async def scenario():
        first = asyncio.create_task(coalescer.moderate([ContentItem(id="x", text="t")]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(coalescer.moderate([ContentItem(id=f"y{i}", text="t")])) for i in range(7)]
        await asyncio.sleep(0.05)
        gated.gate.set()
        await first
        return await asyncio.gather(*rest)

    asyncio.run(scenario())
    assert gated.calls == [1, 3, 3, 1]


def test_an_engine_error_reaches_every_request_of_the_batch() -> None:
    class Broken:
        def moderate_many(self, items):
            raise RuntimeError("store down")

    coalescer = Batcher(Broken(), max_batch=10)  # type: ignore[arg-type]

    async def scenario():
        return await asyncio.gather(*(coalescer.moderate([ContentItem(id=str(i), text="x")]) for i in range(3)),
                                    return_exceptions=True)

    results = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        asyncio.run(coalescer.moderate([ContentItem(id="again", text="x")]))


def test_gathering_window_batches_requests_that_arrive_close_together(engine: Engine) -> None:
    """With max_wait_ms, requests a few ms apart share one engine call (up to N items or M ms)."""

    class Counting:
        def __init__(self) -> None:
            self.calls: list[int] = []

        def moderate_many(self, items):
            self.calls.append(len(items))
            return engine.moderate_many(items)

    for wait_ms, expect_one_batch in ((200, True), (0, False)):
        counting = Counting()
        coalescer = Batcher(counting, max_batch=32, max_wait_ms=wait_ms)  # type: ignore[arg-type]

        async def scenario():
            tasks = []
            for i in range(5):
                tasks.append(asyncio.create_task(coalescer.moderate([ContentItem(id=f"w{i}", text="ok")])))
                await asyncio.sleep(0.01)
            return await asyncio.gather(*tasks)

        results = asyncio.run(scenario())
        assert [r[0].item_id for r in results] == [f"w{i}" for i in range(5)]
        assert (counting.calls == [5]) is expect_one_batch, counting.calls
