"""Running a set of detectors over a batch of items: views, timeouts, isolation.

Each detector sees only the parts it reads. A per-part detector gets one view
per part (the item holding just that part), so a text detector scores a
playlist's title, description and cover OCR text separately and its evidence
offsets index exactly one part; the engine then names that part on the
evidence and keeps, per category, the highest score over the parts. For a
one-part item the view is the item itself, so the common case copies nothing.

Detectors are independent, so they run concurrently on a thread pool, each
on the whole batch of views (a model vectorises), each under its own
timeout. A detector that raises or overruns never breaks the call: its items
get a ``DetectorFailure`` and the policy's ``on_error`` decides. A failing
batch is retried view by view, so one poisoned item cannot fail its
neighbours.

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
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from referee.detectors.base import Detector
from referee.engine.observe import NO_OBSERVER, Observer
from referee.model import ContentItem, DetectorFailure, Evidence, Signal, TextPart

log = logging.getLogger(__name__)

_Outcome = list[Signal] | DetectorFailure
#: A detector's outcomes per view, its derived parts per view (None if it derives nothing), and its own time.
_Run = tuple[list[_Outcome], list[list[TextPart]] | None, float]


class Found:
    """One item's results from the detectors run so far (one per item per batch:
    a plain slotted class, as a dataclass with four factories cost more than the lexicon).

    Most items get no signal and no failure, so the lists start as the shared empty
    tuple and become lists only when something is added: an empty list per field per
    item was garbage the collector walked for nothing."""

    __slots__ = ("signals", "failures", "derived", "kinds_read")

    def __init__(self, signals: Sequence[Signal] = (), failures: Sequence[DetectorFailure] = ()) -> None:
        self.signals: Sequence[Signal] = signals
        self.failures: Sequence[DetectorFailure] = failures
        self.derived: Sequence[TextPart] = ()
        #: Part kinds some detector run on the item reads (a part of another kind is uninspected).
        self.kinds_read: frozenset[str] = frozenset()

    def add_signals(self, signals: Iterable[Signal]) -> None:
        self.signals = [*self.signals, *signals]

    def add_failure(self, failure: DetectorFailure) -> None:
        self.failures = [*self.failures, failure]

    def add_derived(self, parts: Iterable[TextPart]) -> None:
        self.derived = [*self.derived, *parts]

    def read(self, kinds: frozenset[str]) -> None:
        if not kinds <= self.kinds_read:
            self.kinds_read = kinds if not self.kinds_read else self.kinds_read | kinds


@dataclass
class _Views:
    """The views one detector gets, and which item and part each came from."""

    views: list[ContentItem]
    owner: list[int]
    part: list[TextPart | None]  # the part of a per-part view (for evidence mapping), else None


def _views(detector: Detector, items: Sequence[ContentItem]) -> _Views:
    views: list[ContentItem] = []
    owner: list[int] = []
    parts: list[TextPart | None] = []
    reads = detector.reads
    for i, item in enumerate(items):
        if detector.per_part:
            if len(item.parts) == 1:  # the common case: the view is the item itself
                (only,) = item.parts
                if only.kind in reads:
                    views.append(item)
                    owner.append(i)
                    parts.append(only if isinstance(only, TextPart) else None)
                continue
            readable = [p for p in item.parts if p.kind in reads]
            for p in readable:
                views.append(item if len(item.parts) == 1 else item.model_copy(update={"parts": (p,)}))
                owner.append(i)
                parts.append(p if isinstance(p, TextPart) else None)
        elif item.kinds & reads:
            views.append(item.only(reads))
            owner.append(i)
            parts.append(None)
    return _Views(views, owner, parts)


def run_detectors(
    detectors: Sequence[Detector],
    items: Sequence[ContentItem],
    pool: ThreadPoolExecutor,
    categories: frozenset[str],
    prior: Sequence[Sequence[Signal]] | None = None,
    stage: str | None = None,
    into: list[Found] | None = None,
    observer: Observer = NO_OBSERVER,
) -> list[Found]:
    """Every detector's signals, failures and derived parts per item, added to ``into``
    (one Found per item, e.g. what earlier stages found) or to new ones; each detector's
    time and failures go to ``observer``."""
    found = into if into is not None else [Found() for _ in items]
    plans = {d.name: _views(d, items) for d in detectors}
    # A detector is handed exactly an item's parts of the kinds it reads (one view per part,
    # or the item filtered to them), so what was read is a set of kinds, shared by every item.
    kinds = frozenset().union(*(d.reads for d in detectors))
    for f in found:
        if f.kinds_read is not kinds:
            f.read(kinds)

    started = time.monotonic()
    futures: dict[str, Future[_Run]] = {}
    for d in detectors:
        if not d.runs_inline and plans[d.name].views:
            futures[d.name] = pool.submit(_run_one, d, plans[d.name], prior)
    results: dict[str, _Run] = {}
    for d in detectors:
        views = plans[d.name].views
        if not views:
            continue
        if d.runs_inline:  # one after another, each on its own clock
            results[d.name] = run = _run_one(d, plans[d.name], prior)
            if run[2] > d.timeout_s:
                results[d.name] = (_timed_out(d, len(views)), None, run[2])
    for d in detectors:
        if d.name not in futures:
            continue
        remaining = d.timeout_s - (time.monotonic() - started)
        try:
            results[d.name] = futures[d.name].result(timeout=max(remaining, 0.0))
        except FutureTimeout:
            futures[d.name].cancel()
            n = len(plans[d.name].views)
            results[d.name] = (_timed_out(d, n), None, time.monotonic() - started)

    for d in detectors:
        if d.name not in results:
            continue
        outcomes, derived, seconds = results[d.name]
        plan = plans[d.name]
        best: dict[int, dict[str, Signal]] = {}
        failed: set[int] = set()
        failed_views = 0
        for k, outcome in enumerate(outcomes):
            i = plan.owner[k]
            if derived is not None and derived[k]:
                found[i].add_derived(derived[k])
            if isinstance(outcome, DetectorFailure):
                failed_views += 1
                if i not in failed:
                    failed.add(i)
                    found[i].add_failure(outcome)
                continue
            if not outcome:
                continue
            part = plan.part[k]
            per_category = best.setdefault(i, {})
            for s in outcome:
                if s.category not in categories:
                    continue
                s = _placed(s, part, stage)
                held = per_category.get(s.category)
                per_category[s.category] = s if held is None else _merge(held, s)
        for i, per_category in best.items():
            if i not in failed:
                found[i].add_signals(per_category.values())
        timed_out = bool(outcomes) and isinstance(outcomes[0], DetectorFailure) and outcomes[0].kind == "timeout"
        observer.on_detector(d.name, stage or "", seconds, len(outcomes), failed_views, timed_out)
    return found


def _placed(signal: Signal, part: TextPart | None, stage: str | None) -> Signal:
    """The signal with its stage set and its evidence naming the part it points into
    (and, for a derived part, the source part and time range it came from)."""
    evidence = signal.evidence
    if part is not None and evidence:
        evidence = tuple(_on_part(ev, part) for ev in evidence)
    if evidence is signal.evidence and signal.stage == stage:
        return signal
    return signal.model_copy(update={"evidence": evidence, "stage": stage})


def _on_part(ev: Evidence, part: TextPart) -> Evidence:
    update: dict[str, object] = {}
    if ev.part_id is None:
        update["part_id"] = part.id
    source = part.derived
    if source is not None and ev.source_part is None:
        update["source_part"] = source.source_part
        if ev.start is not None and ev.start_s is None:
            end = ev.end if ev.end is not None else ev.start + 1
            hit = [seg for seg in source.segments if seg.start < end and ev.start < seg.end]
            if hit:
                update["start_s"] = min(seg.start_s for seg in hit)
                update["end_s"] = max(seg.end_s for seg in hit)
    return ev.model_copy(update=update) if update else ev


def _merge(a: Signal, b: Signal) -> Signal:
    """One signal per category and detector: the higher score, with both parts' evidence."""
    top, other = (a, b) if a.score >= b.score else (b, a)
    if not other.evidence:
        return top
    return top.model_copy(update={"evidence": top.evidence + other.evidence})


def _run_one(detector: Detector, views: _Views, prior: Sequence[Sequence[Signal]] | None) -> _Run:
    """Outcomes per view, derived parts per view (None for a detector that derives nothing),
    and the seconds it took (on the thread that ran it, so a pool's queueing is not counted)."""
    begun = time.monotonic()
    view_prior = [prior[i] for i in views.owner] if prior is not None and detector.uses_prior_signals else None
    outcomes = _detect_isolated(detector, views.views, view_prior)
    derived: list[list[TextPart]] | None = None
    if detector.derives:
        derived, failed = _derive_isolated(detector, views.views)
        outcomes = [f if f is not None else o for o, f in zip(outcomes, failed)]
    return outcomes, derived, time.monotonic() - begun


def _derive_isolated(
    detector: Detector, items: Sequence[ContentItem]
) -> tuple[list[list[TextPart]], list[DetectorFailure | None]]:
    """Derived parts for the batch if it works, else view by view, so one corrupt image or
    audio file fails only its own item (as ``_detect_isolated`` does for signals)."""
    try:
        derived = [list(parts) for parts in detector.derive_many(items)]
        if len(derived) != len(items):
            raise RuntimeError(f"derive_many returned {len(derived)} results for {len(items)} items")
        return derived, [None] * len(items)
    except Exception as exc:  # noqa: BLE001 - a failed derivation is that detector's failure
        if len(items) == 1:
            return [[]], [_failure(detector, exc)]
        log.warning("detector %s failed to derive for a batch of %d (%s); retrying one by one",
                    detector.name, len(items), exc)
    out: list[list[TextPart]] = []
    failures: list[DetectorFailure | None] = []
    for item in items:
        try:
            (parts,) = detector.derive_many([item])
            out.append(list(parts))
            failures.append(None)
        except Exception as exc:  # noqa: BLE001
            out.append([])
            failures.append(_failure(detector, exc))
    return out, failures


def _timed_out(detector: Detector, n: int) -> list[_Outcome]:
    log.warning("detector %s timed out on %d items", detector.name, n)
    failure = DetectorFailure(
        detector=detector.name,
        detector_version=detector.version,
        kind="timeout",
        message=f"no answer within {detector.timeout_s:g} s for a batch of {n}",
    )
    return [failure] * n


def _detect_isolated(
    detector: Detector, items: Sequence[ContentItem], prior: Sequence[Sequence[Signal]] | None
) -> list[_Outcome]:
    """The batch if it works, else item by item, so failures stay with their item."""
    if not detector.categories:
        return [[] for _ in items]
    try:
        result = detector.detect_many(items, prior) if prior is not None else detector.detect_many(items)
        if len(result) != len(items):
            raise RuntimeError(f"returned {len(result)} results for {len(items)} items")
        return list(result)
    except Exception as exc:  # noqa: BLE001 - any detector bug becomes a recorded failure
        if len(items) == 1:
            return [_failure(detector, exc)]
        log.warning("detector %s failed on a batch of %d (%s); retrying one by one", detector.name, len(items), exc)
    outcomes: list[_Outcome] = []
    for k, item in enumerate(items):
        try:
            if prior is not None:
                outcomes.append(detector.detect_many([item], [prior[k]])[0])
            else:
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
