"""A stream worker: entries in, decisions stored, decisions out, then acknowledged.

One loop, one batch in hand at a time (that is the backpressure: a worker
reads only as many entries as it will process next, at most ``batch``):

1. claim entries other workers left pending for ``claim_idle_ms`` (they died,
   or gave up on an item), then read new ones to fill the batch;
2. park what can never succeed in the dead-letter stream at once: an entry
   without an ``item`` field, invalid JSON or UTF-8, an item that fails
   validation, or an entry delivered more than ``max_attempts`` times (it
   killed or stalled every worker that took it);
3. moderate the rest as one engine batch: the engine stores the decisions in
   one transaction before it returns them;
4. publish and acknowledge (``ItemStream.finish``), so an entry is acknowledged
   only once its decision is durably stored;
5. now and then (at most once per ``claim_idle_ms``, a bounded number each
   time) remove consumers of the group idle longer than ``forget_after_ms`` with
   nothing pending: dead workers' names, which XAUTOCLAIM leaves behind.

Failures, by who is to blame:

- *the database* (the batch raised and the store does not answer its ping):
  nothing is acknowledged; the worker keeps the batch, keeps it from being
  claimed (``touch``) and retries with bounded backoff until the store answers;
- *Redis*: every call is bounded and retried (``ItemStream.call``); the loop
  then waits with bounded backoff, logged, and resumes where it was: results in
  hand are published once Redis is back;
- *one item* (the batch raised, the store is fine): items are retried one by
  one; one that still raises stays pending, to be claimed again after
  ``claim_idle_ms``, and goes to the dead-letter stream on its
  ``max_attempts``-th delivery.

A detector that hangs is the engine's business: its timeout turns into a
recorded failure and the policy's ``on_error`` (a provisional, held decision),
so the worker moves on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from referee.errors import ConfigError, InputError
from referee.ingest import parse_item
from referee.model import ContentItem, Decision
from referee.obs import bound_batch
from referee.workers.stream import ITEM_FIELD, Backoff, Entry, ItemStream, StreamError

log = logging.getLogger(__name__)


class WorkerMetrics(Protocol):
    """What the worker reports; ``referee.workers.metrics`` implements it with Prometheus."""

    def batch_done(self, seconds: float, decisions: Sequence[Decision], oldest_ms: int | None = None) -> None: ...
    def error(self, kind: str) -> None: ...
    def dead_lettered(self, reason: str, n: int) -> None: ...
    def group(self, lag: int, pending: int) -> None: ...
    def consumers_forgotten(self, n: int) -> None: ...


class _NoMetrics:
    def batch_done(self, seconds: float, decisions: Sequence[Decision], oldest_ms: int | None = None) -> None:
        pass

    def error(self, kind: str) -> None:
        pass

    def dead_lettered(self, reason: str, n: int) -> None:
        pass

    def group(self, lag: int, pending: int) -> None:
        pass

    def consumers_forgotten(self, n: int) -> None:
        pass


class Moderator(Protocol):
    """What a worker decides with: an ``Engine``, or an ``ExperimentRunner`` (each item by its
    unit's arm's engine; ``referee worker --experiment``)."""

    #: Where decisions are stored; the worker pings it to tell a store outage from a bad item.
    @property
    def sink(self) -> object: ...
    #: Told every decision an async stage writes after its batch was acknowledged.
    on_decision: list[Callable[[Decision], None]]

    def moderate_many(self, items: Sequence[ContentItem]) -> list[Decision]: ...
    def resume_pending(self, limit: int = 100) -> int: ...
    def close(self) -> None: ...


class Worker:
    """Moderates a stream's entries with ``engine`` until ``stop()``."""

    #: Seconds between reads of the group's lag for the metrics.
    GROUP_INFO_EVERY_S = 5.0
    #: Most idle consumers one clean-up removes (the rest wait for the next one).
    FORGET_LIMIT = 100

    def __init__(self, engine: Moderator, stream: ItemStream, metrics: WorkerMetrics | None = None) -> None:
        if engine.sink is None or not callable(getattr(engine.sink, "ping", None)):
            raise ConfigError("a stream worker acknowledges an entry only once its decision is stored: "
                              "build its engine with a store (store_url / --db-url), not --no-store")
        self.engine = engine
        self.stream = stream
        self.config = stream.config
        self.metrics: WorkerMetrics = metrics or _NoMetrics()
        self._stop = threading.Event()
        self._next_claim = 0.0
        self._next_info = 0.0
        self._next_forget = 0.0
        #: Counters for tests and the final log line.
        self.finished = 0
        self.dead = 0
        self.forgotten = 0
        # An async stage's decision lands after the batch was acked: publish it when it is stored.
        engine.on_decision.append(self._publish_follow_up)

    def _publish_follow_up(self, decision: Decision) -> None:
        try:
            self.stream.publish({"decision": decision.model_dump_json(), "item_id": decision.item_id,
                                 "decision_id": decision.decision_id, "source_id": ""})
        except StreamError as exc:  # stored all the same: the store is the record, the stream a feed
            self.metrics.error("redis")
            log.warning("could not publish the follow-up decision %s of item %s: %s",
                        decision.decision_id, decision.item_id, exc)

    def stop(self) -> None:
        """Finish the batch in hand, acknowledge it, and return from ``run`` (signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the loop --------------------------------------------------------------------
    def run(self) -> None:
        """Until ``stop()``: read, moderate, publish, acknowledge. Redis being away is
        waited out (bounded backoff, logged); nothing here raises for bad input."""
        backoff = Backoff(cap_s=self.config.retry_max_s)
        started = False
        try:  # async stages a stopped process left pending (their follow-ups are published above)
            self.engine.resume_pending()
        except Exception:
            log.exception("resuming pending async stages failed")
        while not self.stopping:
            try:
                if not started:
                    self.stream.ensure_group()
                    started = True
                self.step()
                backoff.reset()
            except StreamError as exc:
                self.metrics.error("redis")
                delay = backoff.next_s()
                log.warning("%s; retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
        log.info("worker %s stopped: %d entries finished, %d dead-lettered",
                 self.config.consumer, self.finished, self.dead)

    def step(self) -> int:
        """One batch: claim or read, process, acknowledge. Returns the entries taken."""
        entries = self._take()
        if entries:
            with bound_batch(f"{self.config.consumer}/{entries[0].id}"):  # on every log line of the batch
                self.process(entries)
        self._observe()
        self._forget_idle()
        return len(entries)

    def _take(self) -> list[Entry]:
        cfg = self.config
        entries: list[Entry] = []
        now = time.monotonic()
        if now >= self._next_claim:
            entries = self.stream.claim(cfg.batch)
            if entries:
                log.info("claimed %d pending entries idle for over %d ms", len(entries), cfg.claim_idle_ms)
            if self.stream.claim_scan_done:
                self._next_claim = now + cfg.claim_idle_ms / 2000
        if len(entries) < cfg.batch and not self.stopping:
            entries += self.stream.read(cfg.batch - len(entries), None if entries else cfg.block_ms)
        return entries

    def _observe(self) -> None:
        now = time.monotonic()
        if now >= self._next_info:
            self._next_info = now + self.GROUP_INFO_EVERY_S
            info = self.stream.group_info()
            self.metrics.group(info["lag"], info["pending"])

    def _forget_idle(self) -> None:
        """Remove dead consumers (idle, nothing pending) from the group, a bounded number at a time."""
        idle_ms = self.config.forget_after_ms
        now = time.monotonic()
        if not idle_ms or now < self._next_forget:
            return
        self._next_forget = now + self.config.claim_idle_ms / 1000
        try:
            gone = self.stream.forget_idle_consumers(idle_ms, self.FORGET_LIMIT)
        except StreamError as exc:  # housekeeping: it must never stop the moderation
            self.metrics.error("redis")
            log.warning("could not remove idle consumers (retrying in %d ms): %s", self.config.claim_idle_ms, exc)
            return
        if gone:
            self.forgotten += len(gone)
            self.metrics.consumers_forgotten(len(gone))
            log.info("removed %d consumer(s) of group %s idle for over %d ms with nothing pending: %s",
                     len(gone), self.config.group, idle_ms, ", ".join(gone[:10]) + (" ..." if len(gone) > 10 else ""))

    # -- one batch ---------------------------------------------------------------------
    def process(self, entries: Sequence[Entry]) -> None:
        """Moderate ``entries`` and finish them: published and acknowledged, dead-lettered,
        or (an item that failed, a store that never came back before a stop) left pending."""
        began = time.monotonic()
        good: list[tuple[Entry, ContentItem]] = []
        poison: list[tuple[Entry, str]] = []
        for entry in entries:
            if entry.deliveries > self.config.max_attempts:
                poison.append((entry, (f"delivered {entry.deliveries} times without being acknowledged "
                                       "(every worker that took it died or stalled on it)")))
                continue
            try:
                good.append((entry, _item_of(entry)))
            except InputError as exc:
                poison.append((entry, str(exc)))
            except Exception as exc:  # noqa: BLE001 - invalid input never stops the worker
                poison.append((entry, f"entry {entry.id}: unreadable item ({type(exc).__name__}: {exc})"[:2000]))
        if poison:
            self._dead_letter(poison, "invalid")

        done, failed = self._moderate(good)
        if done:
            results = [(entry, _published(entry, decision)) for entry, decision in done]
            acked = self._until_redis_answers(lambda: self.stream.finish(results))
            if acked is not None:
                self.finished += len(acked)
                skipped = len(results) - len(acked)
                if skipped:
                    log.info("%d entries were claimed by another worker meanwhile; it publishes them", skipped)
        exhausted = [(e, err) for e, err in failed if e.deliveries >= self.config.max_attempts]
        if exhausted:
            self._dead_letter(exhausted, "failing")
        for entry, error in failed:
            if entry.deliveries < self.config.max_attempts:
                log.warning("entry %s failed (delivery %d of %d), left pending for a retry: %s",
                            entry.id, entry.deliveries, self.config.max_attempts, error)
        self.metrics.batch_done(time.monotonic() - began, [d for _, d in done], _oldest_ms(entries))

    def _moderate(
        self, good: list[tuple[Entry, ContentItem]]
    ) -> tuple[list[tuple[Entry, Decision]], list[tuple[Entry, str]]]:
        """Decisions for the batch; if it raises while the store answers, item by item."""
        if not good:
            return [], []
        try:
            decisions = self._with_store(lambda: self.engine.moderate_many([item for _, item in good]))
        except _Stopped:
            return [], []
        except Exception as exc:  # noqa: BLE001 - one bad item must not fail the batch: isolate it
            log.warning("a batch of %d failed (%s: %s); retrying item by item", len(good), type(exc).__name__, exc)
        else:
            return [(entry, d) for (entry, _), d in zip(good, decisions)], []
        done: list[tuple[Entry, Decision]] = []
        failed: list[tuple[Entry, str]] = []
        for entry, item in good:
            try:
                done.append((entry, self._with_store(lambda one=item: self.engine.moderate_many([one])[0])))
            except _Stopped:
                break
            except Exception as exc:  # noqa: BLE001 - recorded on the entry, dead-lettered when exhausted
                self.metrics.error("item")
                failed.append((entry, f"{type(exc).__name__}: {exc}"[:2000]))
        return done, failed

    def _with_store(self, fn: Any) -> Any:
        """``fn()``; when it raises and the store does not answer, wait for the store
        (keeping the batch ours) and try again. Raises what ``fn`` raised when the store
        is fine (the item's fault), or ``_Stopped`` when a stop came first."""
        backoff = Backoff(base_s=0.2, cap_s=self.config.retry_max_s)
        while True:
            try:
                return fn()
            except Exception as exc:
                if self._store_answers():
                    raise
                self.metrics.error("store")
                log.warning("the store is not answering (%s: %s); the batch stays pending, retrying",
                            type(exc).__name__, str(exc)[:300])
            while True:
                if self.stopping:
                    log.warning("stopping while the store is down: the batch in hand stays pending "
                                "(another worker claims it after %d ms)", self.config.claim_idle_ms)
                    raise _Stopped()
                self._stop.wait(backoff.next_s())
                self._keep_batch()
                if self._store_answers():
                    break

    def _store_answers(self) -> bool:
        try:
            self.engine.sink.ping()  # type: ignore[attr-defined]  # checked in __init__
            return True
        except Exception:  # noqa: BLE001 - any failure to answer is "down"
            return False

    def _keep_batch(self) -> None:
        """Keep the entries in hand from being claimed while the worker waits on the store."""
        try:
            pending = self.stream.client.xpending_range(
                self.config.stream, self.config.group, min="-", max="+", count=self.config.batch * 4,
                consumername=self.config.consumer)
            self.stream.touch([_text(p["message_id"]) for p in pending])
        except Exception as exc:  # noqa: BLE001 - best effort: a claim by another worker is still safe
            log.debug("could not refresh the pending entries: %s", exc)

    def _dead_letter(self, failures: list[tuple[Entry, str]], reason: str) -> None:
        for entry, error in failures:
            log.warning("entry %s dead-lettered to %s (delivery %d): %s", entry.id, self.config.dead_stream,
                        entry.deliveries, error[:300])
        acked = self._until_redis_answers(lambda: self.stream.dead_letter(failures))
        if acked is not None:
            self.dead += len(acked)
            self.metrics.dead_lettered(reason, len(acked))

    def _until_redis_answers(self, fn: Any) -> Any:
        """``fn()`` (a finishing call, safe to repeat), retried with bounded backoff while
        Redis is away. After a stop, gives up once its retries fail: the entries stay
        pending, their decisions are stored, and the next worker publishes them."""
        backoff = Backoff(cap_s=self.config.retry_max_s)
        while True:
            try:
                return fn()
            except StreamError as exc:
                self.metrics.error("redis")
                if self.stopping:
                    log.warning("stopping with Redis away (%s): entries in hand stay pending", exc)
                    return None
                delay = backoff.next_s()
                log.warning("%s; results in hand kept, retrying in %.1f s", exc, delay)
                self._stop.wait(delay)


class _Stopped(Exception):
    """A stop came while the worker waited for the store."""


def _item_of(entry: Entry) -> ContentItem:
    raw = entry.fields.get(ITEM_FIELD.encode())
    where = f"entry {entry.id}"
    if raw is None:
        names = ", ".join(sorted(k.decode("utf-8", "replace") for k in entry.fields)) or "(none)"
        raise InputError(f"no {ITEM_FIELD!r} field (the entry has: {names}); "
                         f"put the item's JSON in {ITEM_FIELD!r} (referee produce does)", where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 at byte {exc.start}; send the item as UTF-8 JSON", where) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})", where) from exc
    return parse_item(data, where)


def _published(entry: Entry, decision: Decision) -> dict[str, str]:
    """The output entry: the decision, and which item entry it answers."""
    return {"decision": decision.model_dump_json(), "item_id": decision.item_id,
            "decision_id": decision.decision_id, "source_id": entry.id}


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _oldest_ms(entries: Sequence[Entry]) -> int | None:
    """When the oldest entry was added (a stream id is ``<milliseconds>-<n>``), for the queue lag."""
    stamps = [int(e.id.split("-", 1)[0]) for e in entries if e.id.split("-", 1)[0].isdigit()]
    return min(stamps) if stamps else None
