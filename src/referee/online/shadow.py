"""Shadow mode: a candidate engine decides beside the champion, and nothing it decides acts.

A *candidate* is a whole ``EngineConfig`` (a policy file, a threshold set, a
model, a detector selection: every change is expressed as one) under a name.
``Shadow`` runs each candidate on what the champion just decided and stores the
candidate's decisions as *shadow decisions* (``ShadowStore``), apart from the
decision log. So a shadow decision is never enforced, never queued for review,
never sealed into the audit chain, never a statement of reasons and never in a
transparency report: all of those read the log, and the candidate's engine is
built without a store (``store_url=None``), so it cannot write one.

Off the hot path: ``observe`` only puts (item, champion decision) pairs on a
bounded queue and returns; one thread drains it in batches. A full queue drops
(and counts) instead of waiting, and a candidate that fails is counted and
logged: the champion is never failed by its shadow. It shares the process's
CPU (and the GIL) with the champion, though: a candidate as costly as the
champion running flat out slowed champion batches 1.76x in
``benchmarks/bench_shadow.py``. So the thread works at most ``duty`` of the time
(after a batch that took t seconds it rests t * (1/duty - 1)); traffic beyond
what that allows fills the queue and is dropped, not waited for. For traffic
beyond that, shadow a share of it: ``sample`` keeps the items whose id hashes
below it (the same items in every process, so a re-scan and the service agree).

Wiring (see docs/online.md): the HTTP service builds one from ``REFEREE_SHADOW``;
a stream worker or a re-scan calls ``shadow.observe(items, decisions)`` after
its own ``engine.moderate_many(items)``, or hands its engine's sink to
``shadow.watching(sink)`` so every decision the engine stores is observed.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationError

from referee.build import EngineConfig, build_engine
from referee.engine import Engine
from referee.engine.experiment import bucket
from referee.errors import ConfigError
from referee.model import ContentItem, Decision
from referee.model.base import Frozen
from referee.store import MemoryStore, Store
from referee.store.protocols import ShadowDecision, ShadowStore
from referee.store.sql.shadow import SQLShadowStore

__all__ = ["Candidate", "Shadow", "ShadowStats", "attach_shadow", "load_candidates", "shadow_store"]

log = logging.getLogger(__name__)


class Candidate(Frozen):
    """An engine configuration on trial, under the name its shadow decisions are kept by."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    config: EngineConfig


class ShadowStats(Frozen):
    """Counts since the shadow started: what it was shown (``observed``, before sampling), decided,
    stored (new shadow decisions), dropped (queue full) and failed on."""

    observed: int
    decided: int
    stored: int
    dropped: int
    failed: int
    queued: int


def shadow_store(store: Store | MemoryStore) -> ShadowStore:
    """The shadow store on the same database as ``store`` (its decision log stays untouched)."""
    return store.shadow if isinstance(store, MemoryStore) else SQLShadowStore(store.db)


def load_candidates(paths: Sequence[Path]) -> list[Candidate]:
    """Candidates from engine-config JSON files, each named by its file's stem
    (``candidates/thresholds-v2.json`` is ``thresholds-v2``)."""
    found: list[Candidate] = []
    for path in paths:
        try:
            data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"REFEREE_SHADOW: cannot read candidate config {path}: {exc.strerror}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"REFEREE_SHADOW: candidate config {path} is not JSON: {exc}") from exc
        try:
            found.append(Candidate(name=Path(path).stem, config=EngineConfig.model_validate(data)))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "(the file)"
            raise ConfigError(f"candidate config {path}: {where}: {problem['msg']} (an EngineConfig as JSON: "
                              f'{{"policy": "policies/candidate.yaml", ...}}; the name is the file\'s stem)') from exc
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        raise ConfigError(f"REFEREE_SHADOW names two candidates alike ({names}); each needs a file of its own name")
    return found


def attach_shadow(engine: Engine, store: Store | MemoryStore, paths: Sequence[Path], **options: Any) -> Shadow:
    """Put the candidates of these engine-config files in shadow beside ``engine`` (the champion,
    storing into ``store``): every decision the champion stores is shown to them. Close the
    returned ``Shadow`` when the champion stops."""
    if engine.sink is None:
        raise ConfigError("the champion engine has no decision store: a shadow compares with stored champion "
                          "decisions, so build the champion with a store_url")
    shadow = Shadow(load_candidates(paths), shadow_store(store), **options)
    engine.sink = shadow.watching(engine.sink)
    return shadow


class Shadow:
    """Candidate engines that decide beside the champion, on a thread of their own.

    ``build`` makes each candidate's engine (``build_engine`` by default; tests pass
    one with their detectors). A candidate config's ``store_url`` is replaced by
    None before it is built: a shadow engine has no decision log to write to."""

    def __init__(self, candidates: Sequence[Candidate], records: ShadowStore, *, queue_size: int = 10_000,
                 batch_size: int = 64, duty: float = 0.25, sample: float = 1.0,
                 build: Callable[[EngineConfig], Engine] = build_engine) -> None:
        if not candidates:
            raise ConfigError("a shadow needs at least one candidate")
        if queue_size < 1 or batch_size < 1:
            raise ConfigError(f"queue_size and batch_size must be at least 1, got {queue_size} and {batch_size}")
        if not 0.0 < duty <= 1.0:
            raise ConfigError(f"duty is the share of time the shadow may work, in (0, 1]; got {duty}")
        if not 0.0 < sample <= 1.0:
            raise ConfigError(f"sample is the share of items the shadow sees, in (0, 1]; got {sample}")
        self.duty = duty
        self.sample = sample
        self._stop = threading.Event()
        self.records = records
        self.batch_size = batch_size
        self.engines: dict[str, Engine] = {}
        try:
            for c in candidates:
                if c.name in self.engines:
                    raise ConfigError(f"two shadow candidates are named {c.name!r}")
                engine = build(c.config.model_copy(update={"store_url": None}))
                if engine.sink is not None:
                    engine.close()
                    raise ConfigError(f"candidate {c.name!r}: its engine has a decision store; a shadow engine "
                                      "must be built without one (store_url=None)")
                self.engines[c.name] = engine
        except BaseException:
            self._close_engines()
            raise
        self._queue: queue.Queue[tuple[ContentItem, Decision] | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._counts = {"observed": 0, "decided": 0, "stored": 0, "dropped": 0, "failed": 0}
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="referee-shadow", daemon=True)
        self._thread.start()

    # -- the champion's side: never blocks, never raises ------------------------
    def observe(self, items: Sequence[ContentItem], decisions: Sequence[Decision]) -> None:
        """Queue what the champion decided for the candidates (the sampled share of it). Returns
        at once; when the queue is full the rest is dropped and counted (``stats().dropped``)."""
        dropped = 0
        for item, decision in zip(items, decisions, strict=False):
            if self.sample < 1.0 and bucket("shadow", item.id) >= self.sample:
                continue
            try:
                self._queue.put_nowait((item, decision))
            except queue.Full:
                dropped += 1
        with self._lock:
            self._counts["observed"] += min(len(items), len(decisions))
            self._counts["dropped"] += dropped

    def watching(self, sink: Any) -> _WatchingSink:
        """``sink`` (an engine's decision store) that also shows the shadow every decision it stores."""
        return _WatchingSink(sink, self)

    def stats(self) -> ShadowStats:
        with self._lock:
            return ShadowStats(**self._counts, queued=self._queue.qsize())

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is decided and stored (tests, shutdown). False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                idle = self._busy == 0
            if idle and self._queue.empty():
                return True
            time.sleep(0.005)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (what is still queued after ``timeout`` is lost) and close the engines."""
        if self._thread.is_alive():
            self.flush(timeout)
            self._stop.set()
            try:
                self._queue.put(None, timeout=1.0)
            except queue.Full:
                pass
            self._thread.join(timeout)
        self._close_engines()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the shadow's side ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            with self._lock:
                self._busy += 1
            try:
                while len(batch) < self.batch_size:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)  # stop after this batch
                        break
                    batch.append(more)
                started = time.monotonic()
                self._decide(batch)
                if self.duty < 1.0:
                    self._stop.wait((time.monotonic() - started) * (1.0 / self.duty - 1.0))
            finally:
                with self._lock:
                    self._busy -= 1

    def _decide(self, batch: list[tuple[ContentItem, Decision]]) -> None:
        items = [item for item, _ in batch]
        for name, engine in self.engines.items():
            try:
                decided = engine.moderate_many(items)
                rows = [ShadowDecision(candidate_id=name, champion_decision_id=champion.decision_id,
                                       champion_action=champion.action, decision=candidate)
                        for (_, champion), candidate in zip(batch, decided, strict=True)]
                stored = self.records.add_shadow(rows)
            except Exception:  # a failing candidate must never reach the champion
                log.exception("shadow candidate %r failed on a batch of %d items", name, len(items))
                with self._lock:
                    self._counts["failed"] += len(items)
                continue
            with self._lock:
                self._counts["decided"] += len(rows)
                self._counts["stored"] += stored

    def _close_engines(self) -> None:
        for engine in self.engines.values():
            engine.close()
        self.engines = {}


class _WatchingSink:
    """A decision sink that passes everything to the real one and shows the shadow what was stored."""

    def __init__(self, sink: Any, shadow: Shadow) -> None:
        self._sink = sink
        self._shadow = shadow

    def heads(self, item_ids: Sequence[str]) -> dict[str, Decision]:
        found: dict[str, Decision] = self._sink.heads(item_ids)
        return found

    def append(self, pairs: Sequence[tuple[ContentItem, Decision]]) -> list[Decision]:
        stored: list[Decision] = self._sink.append(pairs)
        self._shadow.observe([item for item, _ in pairs], stored)
        return stored

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)
