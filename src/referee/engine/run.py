"""The engine: items → the policy's detection plan → decisions → the decision log.

``moderate_many`` is the entry point; ``moderate`` is a batch of one. For each
batch the engine:

1. looks up each item's *head* (its current decision) in the log. A head that
   a person decided stands (unless the policy's ``reautomation`` is
   ``override``); a head made from the same inputs stands. Anything else is
   decided afresh and supersedes the head: a new policy content, new detector
   versions, an edited item, or a provisional head made while a detector
   failed;
2. runs the plan's stages in order. A gated stage runs only for the items its
   gate admits, and its detectors see the earlier stages' signals; an
   ``async`` stage is left pending;
3. decides (``decide``, pure), stores the batch in one transaction, and
   returns. Pending async stages then run on the engine's own pool and write
   a decision that supersedes the one just returned.

Without a sink nothing is looked up or stored; async follow-ups go only to
the ``on_decision`` listeners.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, cast

from referee.detectors.base import Detector, build_detector, detector_registry
from referee.engine.batcher import Batcher
from referee.engine.decide import decide, input_key_of
from referee.engine.detect import Found, run_detectors
from referee.engine.media import MediaResolver
from referee.engine.observe import NO_OBSERVER, Observer
from referee.errors import ConfigError, ModelError
from referee.model import ContentItem, Decision, DetectorFailure, Signal, StageRun
from referee.model.account import AccountRestriction
from referee.policy import Policy
from referee.policy.plan import DEFAULT_STAGE, Plan, PlanStage, emitted_before
from referee.registry import Registry

log = logging.getLogger(__name__)


class DecisionSink(Protocol):
    """What the engine needs of the decision log (``referee.store`` implements it)."""

    def heads(self, item_ids: Sequence[str]) -> dict[str, Decision]:
        """The current decision of each of these items that has one."""
        ...

    def append(self, pairs: Sequence[tuple[ContentItem, Decision]]) -> list[Decision]:
        """Store decisions (and their items' content) in one transaction. A decision
        already stored, or one whose ``supersedes`` was superseded meanwhile (a race,
        a reviewer), comes back as the item's stored head instead."""
        ...


class AccountStandings(Protocol):
    """Which authors' accounts are under an account action that applies to their items
    (``referee.records.accounts`` implements it over the store). The engine asks once a
    batch and passes the answer to ``decide`` as data."""

    def restrictions(self, author_ids: Sequence[str]) -> dict[str, AccountRestriction]:
        """The restriction in force for each of these authors that has one."""
        ...


class Engine:
    """Moderates items under one policy with a fixed set of detectors, by its plan."""

    def __init__(
        self,
        policy: Policy,
        detectors: Sequence[Detector],
        sink: DecisionSink | None = None,
        batch_size: int = 64,
        max_workers: int | None = None,
        config_id: str = "",
        observer: Observer | None = None,
        plan: Plan | None = None,
        accounts: AccountStandings | None = None,
    ) -> None:
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ConfigError(f"detectors must have distinct names, got {names}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.policy = policy
        self.detectors = list(detectors)
        self.sink = sink
        #: Told each detector's and stage's time and every decision made (``referee.obs.Metrics``).
        self.observer = observer or NO_OBSERVER
        #: Account restrictions in force (suspended authors' items get the policy's item action).
        self.accounts = accounts
        self.batch_size = batch_size
        self.config_id = config_id
        self.detector_versions = {d.name: d.version for d in self.detectors}
        self._by_name = {d.name: d for d in self.detectors}
        if plan is None and policy.document.plan is None:
            # No plan written: one stage of whatever detectors the caller built.
            plan = Plan((PlanStage(DEFAULT_STAGE, tuple(names), False, None, frozenset(), frozenset()),))
        self.plan = (plan or policy.plan).only(names)
        outside = [n for n in names if n not in self.plan.detectors]
        if outside:
            raise ConfigError(
                f"detector(s) {outside} are not in policy {policy.id!r}'s plan; "
                f"its stages run: {list(policy.plan.detectors) or '(none)'}"
            )
        unemitted = emitted_before(self.plan, {d.name: d.categories for d in self.detectors})
        if unemitted:
            stage, category = unemitted[0]
            raise ConfigError(f"plan stage {stage!r} is gated on {category!r}, which no earlier stage's "
                              "detector emits; move the stage or change its band")
        self._categories = frozenset(policy.categories)
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers or max(2, 2 * len(self.detectors)), thread_name_prefix="referee-detector"
        )
        self._async_pool: ThreadPoolExecutor | None = None
        self._async_jobs: set[Future[None]] = set()
        self._async_lock = threading.Lock()
        self._closed = False
        self._batcher: Batcher | None = None
        self._stage_runs: dict[tuple[str, str, str], StageRun] = {}
        self._stage_seqs: dict[tuple[int, int], tuple[tuple[StageRun, ...], StageRun, tuple[StageRun, ...]]] = {}
        #: Fills in media parts' sha256 (reads paths; fetches only allow-listed hosts).
        self.media = MediaResolver()
        #: Called with every decision an async stage writes (after it is stored).
        self.on_decision: list[Callable[[Decision], None]] = []
        #: The ``EngineConfig`` it was built from, when ``build_engine`` built it.
        self.config: Any = None
        #: What the engine closes with itself (the store ``build_engine`` opened).
        self.owned: list[Any] = []

    def batcher(self, max_batch: int | None = None, max_wait_ms: float | None = None) -> Batcher:
        """The one batcher that merges concurrent callers' items into engine batches
        (HTTP requests, stream messages); made on first use, with the config's limits."""
        if self._batcher is None:
            config = self.config
            self._batcher = Batcher(
                self,
                max_batch=max_batch or (config.max_batch if config is not None else 256),
                max_wait_ms=max_wait_ms if max_wait_ms is not None else (
                    config.batch_wait_ms if config is not None else 0.0),
            )
        return self._batcher

    @classmethod
    def from_policy(
        cls,
        policy: Policy,
        sink: DecisionSink | None = None,
        only: Sequence[str] | None = None,
        registry: Registry[type[Detector]] | None = None,
        **kwargs: Any,
    ) -> "Engine":
        """Build every detector of the policy's plan (or only those named).

        A name that is not one of the policy's detectors is an error, never a
        silently smaller engine. A detector marked ``optional: true`` whose
        model is not installed is skipped with a warning, so a fresh checkout
        still moderates with the lexicon alone; any other build error is raised.
        """
        registry = registry or detector_registry()
        policy.check_detectors(registry)
        configured = list(policy.document.detectors)
        if only is not None:
            unknown = [name for name in only if name not in configured]
            if unknown:
                close = difflib.get_close_matches(unknown[0], configured, n=1) or difflib.get_close_matches(
                    unknown[0].lower(), configured, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown detector {unknown[0]!r} for policy {policy.id!r}.{hint} "
                                  f"The policy configures: {', '.join(configured) or '(none)'}")
            if not only:
                raise ConfigError("an empty detector selection would inspect nothing; name at least one detector")
        wanted = [name for name in policy.plan.detectors if only is None or name in only]
        built: list[Detector] = []
        try:
            for name in wanted:
                try:
                    built.append(build_detector(name, policy, registry))
                except ModelError as exc:
                    if not (policy.detector_config(name) or {}).get("optional", False):
                        raise
                    log.warning("detector %r skipped: %s", name, exc)
            return cls(policy, built, sink=sink, **kwargs)
        except BaseException:
            for detector in built:
                detector.close()
            raise

    def close(self) -> None:
        """Finish pending async stages, then release every detector. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.wait_async()
        if self._async_pool is not None:
            self._async_pool.shutdown(wait=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for resource in [*self.detectors, *self.owned]:
            try:
                resource.close()
            except Exception as exc:  # noqa: BLE001 - one close must not stop the others'
                log.warning("%s failed to close: %s", getattr(resource, "name", resource), exc)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- moderation -------------------------------------------------------
    def moderate(self, item: ContentItem) -> Decision:
        return self.moderate_many([item])[0]

    def moderate_many(self, items: Sequence[ContentItem]) -> list[Decision]:
        if self._closed:
            raise ConfigError("this engine is closed; build a new one")
        if any(part.kind != "text" for item in items for part in item.parts):
            items = [self.media.resolve(item) for item in items]
        decisions: list[Decision] = []
        for start in range(0, len(items), self.batch_size):
            decisions.extend(self._moderate_batch(items[start : start + self.batch_size]))
        return decisions

    def signals_for(self, items: Sequence[ContentItem]) -> list[tuple[list[Signal], list[DetectorFailure]]]:
        """Every synchronous stage's signals and failures per item, without deciding."""
        return [(list(found.signals), list(found.failures)) for found in self._run_plan(items)[0]]

    def input_key(self, item: ContentItem) -> str:
        return input_key_of(self.policy, item, self.detector_versions, self.config_id)

    def _moderate_batch(self, items: Sequence[ContentItem]) -> list[Decision]:
        answer: list[Decision | None] = [None] * len(items)
        supersedes: dict[int, Decision] = {}
        restricted = self._restrictions(items)
        todo: Sequence[int] = range(len(items))
        batch = items
        if self.sink is not None:
            heads = self.sink.heads(list({item.id: None for item in items}))
            for i, item in enumerate(items):
                head = heads.get(item.id)
                if head is None:
                    continue
                if self._head_stands(head, item, restricted.get(item.author_id or "")):
                    answer[i] = head
                else:
                    supersedes[i] = head
            todo = [i for i, known in enumerate(answer) if known is None]
            if not todo:
                return cast(list[Decision], answer)  # every item has its head
            batch = [items[i] for i in todo]
        # Parallel lists, not (index, decision) pairs: one object less per item for the collector.
        fresh_at: list[int] = []
        fresh: list[Decision] = []
        found, runs, unread = self._run_plan(batch)
        for k, (i, item) in enumerate(zip(todo, batch)):
            head = supersedes.get(i) if supersedes else None
            result = found[k]
            decision = decide(
                self.policy, item, result.signals, result.failures, self.detector_versions,
                stages=runs[k], uninspected=unread[k], engine_config_id=self.config_id,
                supersedes=head.decision_id if head is not None else None,
                account=restricted.get(item.author_id or "") if restricted else None, derived=result.derived,
            )
            if head is not None and _same_outcome(head, decision):
                answer[i] = head  # still failing the same way: no new link in the chain
                continue
            fresh_at.append(i)
            fresh.append(decision)
            answer[i] = decision
        if self.sink is not None and fresh:
            stored = self.sink.append([(items[i], decision) for i, decision in zip(fresh_at, fresh)])
            kept_at: list[int] = []
            kept_new: list[Decision] = []
            for i, decision, kept in zip(fresh_at, fresh, stored):
                answer[i] = kept
                if kept.decision_id == decision.decision_id:
                    kept_at.append(i)
                    kept_new.append(kept)
            fresh_at, fresh = kept_at, kept_new
        if fresh:
            self.observer.on_decisions(fresh)
        for i, decision in zip(fresh_at, fresh):
            if decision.provisional and decision.pending_stages:  # pending implies provisional
                self._schedule_async(items[i], decision)
        return cast(list[Decision], answer)  # every index was answered above

    def _restrictions(self, items: Sequence[ContentItem]) -> dict[str, AccountRestriction]:
        if self.accounts is None:
            return {}
        authors = sorted({item.author_id for item in items if item.author_id})
        if not authors:
            return {}
        return self.accounts.restrictions(authors)

    def _head_stands(self, head: Decision, item: ContentItem, account: AccountRestriction | None = None) -> bool:
        if head.content_hash != item.content_hash:
            return False  # the item was edited: its new content needs a decision
        if head.human:
            return self.policy.document.reautomation == "keep_human"
        # An account action imposed or lifted since the head was made changes what the item gets.
        applied = next((r.rule_id for r in head.reasons if r.kind == "account"), None)
        if applied != (account.rule_id if account is not None else None):
            return False
        return head.input_key == self.input_key(item) and not head.failures

    # -- the plan -----------------------------------------------------------
    def _run_plan(
        self, items: Sequence[ContentItem], stages: Sequence[PlanStage] | None = None,
        found: list[Found] | None = None, runs: list[tuple[StageRun, ...]] | None = None,
    ) -> tuple[list[Found], list[tuple[StageRun, ...]], list[Sequence[str]]]:
        """Run the plan's stages (or ``stages``, all run now) and return per item what was
        found, what each stage did and the unread parts. An async stage whose gate admits
        an item is left pending for it, with every later stage; one whose gate skips an
        item is skipped, and that item's later stages run now."""
        work = list(items)
        found = found or [Found() for _ in work]
        runs = runs or [() for _ in work]
        # Items whose async stage the gate admitted: that stage and every later one run after the decision.
        deferred: set[int] = set()
        for stage in (stages if stages is not None else self.plan.stages):
            admitted: list[int] = []
            if stage.gate is None and not (stage.run_async and stages is None) and not deferred:
                # Every item runs it: one shared record, no per-item work.
                ran = self._stage_run(stage, "ran", "no gate")
                first = runs[0] if runs else ()
                if all(r is first for r in runs):
                    runs = [self._then(first, ran)] * len(runs)
                else:
                    runs = [self._then(r, ran) for r in runs]
                admitted = list(range(len(work)))
            else:
                for i, item in enumerate(work):
                    if i in deferred:
                        runs[i] = self._then(runs[i], self._stage_run(stage, "pending", "after an async stage"))
                        continue
                    if stage.gate is None:
                        ok, why = True, "no gate"
                    else:
                        ok, why = stage.admits(item.surface, self.policy.jurisdictions_for(item.country),
                                               found[i].signals)
                    if ok and stage.run_async and stages is None:
                        deferred.add(i)
                        runs[i] = self._then(runs[i], self._stage_run(
                            stage, "pending", f"async: runs after the decision ({why})"))
                        continue
                    if ok:
                        admitted.append(i)
                    runs[i] = self._then(runs[i], self._stage_run(stage, "ran" if ok else "skipped", why))
            if not admitted:
                continue
            detectors = [self._by_name[name] for name in stage.detectors]
            subset = [work[i] for i in admitted]
            prior = [found[i].signals for i in admitted]
            into = [found[i] for i in admitted]
            derived_before = [len(f.derived) for f in into]
            begun = time.monotonic()
            run_detectors(detectors, subset, self._pool, self._categories, prior=prior, stage=stage.id, into=into,
                          observer=self.observer)
            self.observer.on_stage(stage.id, time.monotonic() - begun, len(subset))
            for i, result, before in zip(admitted, into, derived_before):
                if len(result.derived) > before:
                    work[i] = work[i].with_parts(tuple(result.derived[before:]))
                if result.failures and runs[i][-1].status != "failed" and any(
                        f.detector in stage.detectors for f in result.failures):
                    failed = ", ".join(f.detector for f in result.failures if f.detector in stage.detectors)
                    last = runs[i][-1].model_copy(update={"status": "failed", "why": f"{failed} failed"})
                    runs[i] = runs[i][:-1] + (last,)
        unread_of: list[Sequence[str]] = []
        for i, item in enumerate(work):
            kinds = found[i].kinds_read
            parts = item.parts
            if len(parts) == 1 and parts[0].kind in kinds:
                unread_of.append(())  # the common case: one part, read
                continue
            unread = [p.id for p in parts if p.kind not in kinds
                      and not (p.kind == "text" and getattr(p, "derived", None) is not None)]
            if i in deferred and unread:
                unread = self._unread_after(item, unread)
            unread_of.append(unread)
        return found, runs, unread_of

    def _then(self, before: tuple[StageRun, ...], run: StageRun) -> tuple[StageRun, ...]:
        """``before + (run,)``, shared by every item with the same stage records (most items
        of a batch have the same): the tuple goes into each decision as it is."""
        key = (id(before), id(run))
        hit = self._stage_seqs.get(key)
        if hit is not None:
            return hit[2]
        seq = before + (run,)
        if len(self._stage_seqs) < 10_000:
            # The entry holds ``before`` and ``run``, so the ids in its key stay theirs.
            self._stage_seqs[key] = (before, run, seq)
        return seq

    def _stage_run(self, stage: PlanStage, status: str, why: str) -> StageRun:
        """One StageRun per (stage, status, why), shared by every item it describes:
        they are frozen, and building one per item was a tenth of the engine's time."""
        key = (stage.id, status, why)
        run = self._stage_runs.get(key)
        if run is None:
            run = StageRun.model_validate({"stage": stage.id, "status": status, "why": why, "detectors": stage.detectors})
            if len(self._stage_runs) < 10_000:  # whys that quote scores vary; keep the cache bounded
                self._stage_runs[key] = run
        return run

    def _unread_after(self, item: ContentItem, unread: list[str]) -> list[str]:
        """Parts a pending async stage will read are not uninspected yet."""
        later = {kind for stage in self.plan.stages if stage.run_async
                 for name in stage.detectors for kind in self._by_name[name].reads}
        return [pid for pid in unread if (part := item.part(pid)) is not None and part.kind not in later]

    # -- async stages -------------------------------------------------------
    def _schedule_async(self, item: ContentItem, decision: Decision) -> None:
        with self._async_lock:
            if self._async_pool is None:
                self._async_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="referee-async")
            job = self._async_pool.submit(self._finish_async, item, decision)
            self._async_jobs.add(job)
        job.add_done_callback(self._async_done)

    def _async_done(self, job: Future[None]) -> None:
        with self._async_lock:
            self._async_jobs.discard(job)
        if job.exception() is not None:
            log.error("async stage failed: %s", job.exception())

    def wait_async(self, timeout: float | None = None) -> None:
        """Block until every async stage scheduled so far has written its decision."""
        with self._async_lock:
            jobs = list(self._async_jobs)
        for job in jobs:
            job.exception(timeout=timeout)

    def resume_pending(self, limit: int = 100) -> int:
        """Run the async stages of stored heads still ``pending`` (an async call that failed,
        timed out or was cut off by a restart), oldest first, up to ``limit`` heads; each
        that succeeds writes its superseding decision. Returns how many heads were tried."""
        source = self.sink
        pending_heads = getattr(source, "pending_heads", None)
        get_item = getattr(source, "get_item", None)
        if pending_heads is None or get_item is None:
            return 0
        heads: list[Decision] = pending_heads(limit)
        tried = 0
        for head in heads:
            item = get_item(head.item_id, head.content_hash)
            if item is None:
                log.warning("pending decision %s: the content of %s is gone; not resumed", head.decision_id, head.item_id)
                continue
            tried += 1
            if head.input_key != self.input_key(item) or not set(head.pending_stages) <= {s.id for s in self.plan.stages}:
                self.moderate(item)  # another policy or engine: decide afresh (supersedes the head)
                continue
            self._finish_async(item, head)
        return tried

    def _finish_async(self, item: ContentItem, sync: Decision) -> None:
        pending = set(sync.pending_stages)
        stages = [s for s in self.plan.stages if s.id in pending]
        found = Found(signals=sync.signals, failures=sync.failures)
        found.read(item.kinds)  # uninspected parts were already reported by the sync decision
        runs = tuple(r for r in sync.stages if r.status != "pending")
        # Run them as ordinary (synchronous) stages now.
        sync_like = [PlanStage(s.id, s.detectors, False, s.gate, s.band_categories, s.severe_categories)
                     for s in stages]
        (result,), (stage_runs,), _ = self._run_plan([item], sync_like, [found], [runs])
        async_detectors = {name for s in stages for name in s.detectors}
        failed = [f for f in result.failures if f.detector in async_detectors]
        if failed:
            # The synchronous decision stands, still pending: the log is the durable queue
            # and ``resume_pending`` retries it (after a restart too).
            log.warning("async stage for %s failed (%s); the decision stays pending for resume_pending",
                        item.id, "; ".join(f"{f.detector}: {f.message}" for f in failed))
            return
        decision = decide(
            self.policy, item, result.signals, result.failures, self.detector_versions,
            stages=stage_runs, engine_config_id=self.config_id, supersedes=sync.decision_id,
            account=self._restrictions([item]).get(item.author_id or ""), derived=result.derived,
        )
        if self.sink is not None:
            stored = self.sink.append([(item, decision)])[0]
            if stored.decision_id != decision.decision_id:
                log.info("async stage result for %s dropped: %s already superseded it", item.id, stored.decision_id)
                return
            decision = stored
        self.observer.on_decisions([decision])
        for listener in self.on_decision:
            listener(decision)


def _same_outcome(head: Decision, fresh: Decision) -> bool:
    """A re-decision that changes nothing a person or a report would see."""
    return (
        head.input_key == fresh.input_key
        and head.action == fresh.action
        and head.categories == fresh.categories
        and {f.detector for f in head.failures} == {f.detector for f in fresh.failures}
    )
