"""Runs detectors over items and hands their signals to ``decide``.

Detectors are independent, so they run concurrently on a thread pool, each
on the whole batch (a model vectorises), each under its own timeout. A
detector that raises or overruns never breaks the call: its items get a
``DetectorFailure`` and the policy's ``on_error`` decides. A failing batch is
retried item by item, so one poisoned item cannot fail its neighbours.

A thread that overruns its timeout cannot be killed in Python; it finishes in
the background and its result is dropped. Detectors with network calls must
therefore carry their own socket timeouts too (the LLM detector does).

A detector marked ``runs_inline`` (bounded CPU work in this process, such as
the lexicon) runs in the calling thread while the pool works on the others:
handing a 25-item batch to another thread and waiting for it cost about as
much as matching it (~20 µs an item, measured at the HTTP service's batch
sizes). Its timeout is checked when it returns: an overrun is recorded as a
timeout like any other, so decisions do not depend on where it ran.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol

from referee.detectors.base import Detector, build_detector
from referee.engine.decide import decide
from referee.errors import ConfigError, ModelError
from referee.model import ContentItem, Decision, DetectorFailure, Signal, decision_key
from referee.policy import Policy

log = logging.getLogger(__name__)

_Outcome = list[Signal] | DetectorFailure


class DecisionSink(Protocol):
    """Where decisions go. The store implements it; the engine only needs these two."""

    def get_decisions(self, decision_ids: list[str]) -> dict[str, Decision]: ...

    def save_decisions(self, pairs: list[tuple[ContentItem, Decision]]) -> list[Decision]: ...


class Engine:
    """Moderates items under one policy with a fixed set of detectors.

    ``moderate_many`` is the real entry point; ``moderate`` is a batch of one.
    With a ``sink``, decisions are stored, and an item already decided under
    the same policy version and detector versions returns the stored decision.
    """

    def __init__(
        self,
        policy: Policy,
        detectors: Sequence[Detector],
        sink: DecisionSink | None = None,
        batch_size: int = 64,
        max_workers: int | None = None,
    ) -> None:
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ConfigError(f"detectors must have distinct names, got {names}")
        self.policy = policy
        self.detectors = list(detectors)
        self.sink = sink
        self.batch_size = batch_size
        self.detector_versions = {d.name: d.version for d in self.detectors}
        self._categories = set(policy.categories)
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers or max(2, 2 * len(self.detectors)), thread_name_prefix="referee-detector"
        )

    @classmethod
    def from_policy(
        cls, policy: Policy, sink: DecisionSink | None = None, only: Sequence[str] | None = None, **kwargs: object
    ) -> "Engine":
        """Build every detector the policy configures (or only those named).

        A detector marked ``optional: true`` whose model is not installed is
        skipped with a warning, so a fresh checkout still moderates with the
        lexicon alone; any other build error is raised.
        """
        built: list[Detector] = []
        for name, config in policy.document.detectors.items():
            if only is not None and name not in only:
                continue
            try:
                built.append(build_detector(name, policy))
            except ModelError as exc:
                if not (config or {}).get("optional", False):
                    raise
                log.warning("detector %r skipped: %s", name, exc)
        return cls(policy, built, sink=sink, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- moderation -------------------------------------------------------
    def moderate(self, item: ContentItem) -> Decision:
        return self.moderate_many([item])[0]

    def moderate_many(self, items: Sequence[ContentItem]) -> list[Decision]:
        decisions: list[Decision] = []
        for start in range(0, len(items), self.batch_size):
            decisions.extend(self._moderate_batch(items[start : start + self.batch_size]))
        return decisions

    def signals_for(self, items: Sequence[ContentItem]) -> list[tuple[list[Signal], list[DetectorFailure]]]:
        """Every detector's signals and failures per item, without deciding."""
        outcomes = self._run_detectors(items)
        result = []
        for i in range(len(items)):
            signals: list[Signal] = []
            failures: list[DetectorFailure] = []
            for per_item in outcomes.values():
                outcome = per_item[i]
                if isinstance(outcome, DetectorFailure):
                    failures.append(outcome)
                else:
                    signals.extend(s for s in outcome if s.category in self._categories)
            result.append((signals, failures))
        return result

    def _moderate_batch(self, items: Sequence[ContentItem]) -> list[Decision]:
        decided: dict[int, Decision] = {}
        todo = list(range(len(items)))
        if self.sink is not None:
            keys = [
                decision_key(item, self.policy.id, self.policy.version, self.detector_versions) for item in items
            ]
            stored = self.sink.get_decisions(keys)
            decided = {i: stored[k] for i, k in enumerate(keys) if k in stored}
            todo = [i for i in range(len(items)) if i not in decided]
        if todo:
            batch = [items[i] for i in todo]
            fresh = [
                decide(self.policy, item, signals, failures, self.detector_versions)
                for item, (signals, failures) in zip(batch, self.signals_for(batch))
            ]
            if self.sink is not None:
                fresh = self.sink.save_decisions(list(zip(batch, fresh)))
            decided.update(zip(todo, fresh))
        return [decided[i] for i in range(len(items))]

    def _run_detectors(self, items: Sequence[ContentItem]) -> dict[str, list[_Outcome]]:
        started = time.monotonic()
        futures: dict[str, Future[list[_Outcome]]] = {
            d.name: self._pool.submit(_detect_isolated, d, items) for d in self.detectors if not d.runs_inline
        }
        outcomes: dict[str, list[_Outcome]] = {}
        for detector in self.detectors:
            if detector.runs_inline:  # one after another, each on its own clock
                begun = time.monotonic()
                outcomes[detector.name] = _detect_isolated(detector, items)
                if time.monotonic() - begun > detector.timeout_s:
                    outcomes[detector.name] = _timed_out(detector, len(items))
        for detector in self.detectors:
            if detector.runs_inline:
                continue
            remaining = detector.timeout_s - (time.monotonic() - started)
            try:
                outcomes[detector.name] = futures[detector.name].result(timeout=max(remaining, 0.0))
            except FutureTimeout:
                futures[detector.name].cancel()
                outcomes[detector.name] = _timed_out(detector, len(items))
        return {d.name: outcomes[d.name] for d in self.detectors}


def _timed_out(detector: Detector, n: int) -> list[_Outcome]:
    log.warning("detector %s timed out on %d items", detector.name, n)
    failure = DetectorFailure(
        detector=detector.name,
        detector_version=detector.version,
        kind="timeout",
        message=f"no answer within {detector.timeout_s:g} s for a batch of {n}",
    )
    return [failure] * n


def _detect_isolated(detector: Detector, items: Sequence[ContentItem]) -> list[_Outcome]:
    """The batch if it works, else item by item, so failures stay with their item."""
    try:
        result = detector.detect_many(items)
        if len(result) != len(items):
            raise RuntimeError(f"returned {len(result)} results for {len(items)} items")
        return list(result)
    except Exception as exc:  # noqa: BLE001 - any detector bug becomes a recorded failure
        if len(items) == 1:
            return [_failure(detector, exc)]
        log.warning("detector %s failed on a batch of %d (%s); retrying one by one", detector.name, len(items), exc)
    outcomes: list[_Outcome] = []
    for item in items:
        try:
            outcomes.append(detector.detect(item))
        except Exception as exc:  # noqa: BLE001
            outcomes.append(_failure(detector, exc))
    return outcomes


def _failure(detector: Detector, exc: Exception) -> DetectorFailure:
    return DetectorFailure(
        detector=detector.name,
        detector_version=detector.version,
        kind="error",
        message=f"{type(exc).__name__}: {exc}"[:500],
    )
