"""Running an experiment on live traffic, and reading it: exposures, per-arm metrics, the SRM check.

``ExperimentRunner`` is the engine for traffic under an experiment: each item's unit
is assigned an arm (``referee.engine.experiment``), that arm's engine (built from its
own ``EngineConfig``) decides the item, and one *exposure* (experiment, unit, arm,
item, decision) is logged per unit and item. Unlike a shadow, every arm is enforced:
its decisions go to the decision log like any other.

``experiment_report`` reads the exposures back and compares each arm with control:

- **action rate**: exposed items whose arm's decision was not ``allow``;
- **appeal rate**: actioned items that were appealed (``appeals``);
- **overturn rate**: actioned items a human reversed: a review verdict ``overturn`` on
  the arm's decision, or an appeal of the item decided ``overturned`` (a reviewer who
  confirms a held item, turning the hold into a removal, is not an overturn);
- **user-report rate after allow** (missed harm): allowed items that users reported
  afterwards: by default a notice (``records/notices.py``) received after the decision;
  a caller can pass another source;
- **reviewer load**: items that put a task in a review queue (and tasks per 1,000 items);
- **review latency**: median seconds from enqueue to verdict of those tasks.

Each rate has a 95 % Wilson interval; each difference against control a 95 % Newcombe
(hybrid score, method 10) interval, built from the two Wilson intervals, which keeps
its coverage near 0 and 1 where the normal approximation does not. Rates are per
item while assignment is per unit (an author): items of one author are correlated,
so with a few prolific authors the intervals are too narrow; count units, not items,
before reading a small difference as real.

The **sample-ratio-mismatch** check compares the units seen per arm with the shares
configured (Pearson chi-square, k-1 degrees of freedom) and flags p < 0.001: a split
that far off means assignment or exposure logging is broken, and no metric of the
experiment can be trusted until it is found.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import ValidationError
from sqlalchemy import select

from referee.build import EngineConfig, build_engine
from referee.engine import Engine
from referee.engine.experiment import Arm, Experiment, derive_policy
from referee.errors import ConfigError, StoreError
from referee.model import Action, ContentItem, Decision, utcnow
from referee.model.base import Frozen
from referee.online.shadow import shadow_store
from referee.stats import Z95, wilson_interval
from referee.store import MemoryStore, Store
from referee.store.protocols import Exposure
from referee.store.sql.account_tables import notices
from referee.store.sql.review_tables import appeals, review_tasks, review_verdicts

__all__ = [
    "SRM_ALPHA",
    "ArmMetrics",
    "Difference",
    "ExperimentReport",
    "ExperimentRunner",
    "Rate",
    "SampleRatio",
    "arm_engine_config",
    "chi2_sf",
    "experiment_report",
    "load_experiment",
    "newcombe_interval",
    "notice_reports",
    "sample_ratio_check",
]

log = logging.getLogger(__name__)

#: The p-value below which the split is called broken (a common choice: rare by chance, loud when real).
SRM_ALPHA = 0.001
_CHUNK = 500


# -- building the arms -----------------------------------------------------------
def arm_engine_config(experiment: Experiment, arm: Arm, base: EngineConfig) -> EngineConfig:
    """The ``EngineConfig`` of one arm: the base with the arm's policy and detectors, and, when the
    arm overrides thresholds, detector settings or a cascade band, a derived policy file written
    beside the source policy (``<stem>.<experiment>.<arm>.yaml``), so relative paths in it (lexicon
    files, tests) still resolve and the decisions name the policy content the arm ran."""
    policy = arm.policy or base.policy
    if arm.changes_policy:
        try:
            document = yaml.safe_load(Path(policy).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"arm {arm.name!r}: cannot read policy {policy}: {exc}") from exc
        derived = derive_policy(document, arm)
        target = Path(policy).with_name(f"{Path(policy).stem}.{experiment.name}.{arm.name}.yaml")
        text = (f"# Derived from {Path(policy).name} for experiment {experiment.name!r}, arm {arm.name!r}; "
                "written by referee, do not edit.\n" + yaml.safe_dump(derived, sort_keys=False, allow_unicode=True))
        try:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                # Written aside and renamed: the service's worker processes build their arms at
                # once, and one must never read another's half-written policy.
                partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                partial.write_text(text, encoding="utf-8")
                os.replace(partial, target)
        except OSError as exc:
            raise ConfigError(f"arm {arm.name!r}: cannot write its derived policy {target}: {exc.strerror}; make "
                              "the policy's folder writable, or write the arm's policy yourself and name it in "
                              "the arm's 'policy'") from exc
        policy = target
    update: dict[str, Any] = {"policy": policy}
    if arm.detectors is not None:
        update["detectors"] = arm.detectors
    return EngineConfig.model_validate({**base.model_dump(), **update})


class ExperimentRunner:
    """Decides items under an experiment: each by its unit's arm's engine, with one exposure each.

    ``build`` makes an arm's engine from its config (``build_engine`` by default). ``reuse``
    is an engine the caller already has (the HTTP service's, the worker's): an arm whose
    config equals ``reuse.config`` (a control arm that changes nothing) decides with it
    rather than with a second identical engine, and it stays the caller's to close. The
    experiment's configuration is recorded in the store on start; a different one under
    the same name is refused (StoreError), since it could not be analysed.

    It decides like an engine (``moderate_many``, ``sink``, ``on_decision``, ``close``), so
    the HTTP batcher and the stream worker take it where they would take an engine."""

    def __init__(self, experiment: Experiment, base: EngineConfig, store: Store | MemoryStore, *,
                 build: Callable[[EngineConfig], Engine] = build_engine, reuse: Engine | None = None) -> None:
        self.experiment = experiment
        #: The store exposures go to; a worker pings it to tell a store outage from a bad item.
        self.sink = store
        #: Called with every decision an arm's async stage writes after the batch (the worker publishes it).
        self.on_decision: list[Callable[[Decision], None]] = []
        self.records = shadow_store(store)
        self.records.register_experiment(experiment.name, experiment.model_dump(mode="json"))
        self.engines: dict[str, Engine] = {}
        self._reused: Engine | None = None
        try:
            for arm in experiment.arms:
                config = arm_engine_config(experiment, arm, base)
                if reuse is not None and self._reused is None and reuse.config == config:
                    engine = self._reused = reuse
                else:
                    engine = build(config)
                if engine.sink is None:
                    if engine is not reuse:
                        engine.close()
                    raise ConfigError(f"arm {arm.name!r}: its engine has no decision store; an experiment's "
                                      "arms are enforced and analysed from the log: give the base a store_url")
                self.engines[arm.name] = engine
                engine.on_decision.append(self._follow_up)
        except BaseException:
            self.close()
            raise

    def _follow_up(self, decision: Decision) -> None:
        for listener in self.on_decision:
            listener(decision)

    def moderate_many(self, items: Sequence[ContentItem]) -> list[Decision]:
        """Decide ``items`` (in order), each by its arm's engine, and log their exposures."""
        by_arm: dict[str, list[tuple[int, str, ContentItem]]] = defaultdict(list)
        for i, item in enumerate(items):
            unit, arm = self.experiment.assign_item(item)
            by_arm[arm].append((i, unit, item))
        answer: dict[int, Decision] = {}
        exposures: list[Exposure] = []
        now = utcnow()
        for arm, chosen in by_arm.items():
            decided = self.engines[arm].moderate_many([item for _, _, item in chosen])
            for (i, unit, item), decision in zip(chosen, decided, strict=True):
                answer[i] = decision
                exposures.append(Exposure(experiment=self.experiment.name, unit=unit, arm=arm, item_id=item.id,
                                          decision_id=decision.decision_id, ts=now))
        self.records.log_exposures(exposures)
        return [answer[i] for i in range(len(items))]

    def resume_pending(self, limit: int = 100) -> int:
        """Resumes nothing, and says so when an arm has async stages: ``Engine.resume_pending``
        takes every pending head of the shared log, so an arm's engine would re-decide the
        other arms' items and move their units across arms. Their decisions in force are the
        synchronous ones; resume them with the experiment off (``referee serve`` without
        ``REFEREE_EXPERIMENT``) once it has ended."""
        if any(stage.run_async for engine in self.engines.values() for stage in engine.plan.stages):
            log.warning("experiment %s: async stages left pending by an earlier process are not resumed "
                        "while it runs (an arm would re-decide other arms' items)", self.experiment.name)
        return 0

    def close(self) -> None:
        """Close the arms' engines, all but the one the caller lent (``reuse``)."""
        for engine in self.engines.values():
            if engine is self._reused:
                if self._follow_up in engine.on_decision:
                    engine.on_decision.remove(self._follow_up)
            else:
                engine.close()
        self.engines = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_experiment(path: Path) -> Experiment:
    """The experiment of a JSON or YAML file (``REFEREE_EXPERIMENT``, ``referee worker --experiment``);
    a file that cannot be read or validated is a ConfigError naming the file and the field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read experiment file {path}: {exc.strerror}; check REFEREE_EXPERIMENT "
                          "or --experiment") from exc
    try:
        data: Any = yaml.safe_load(text)  # JSON is YAML too: one reader for both
    except yaml.YAMLError as exc:
        raise ConfigError(f"experiment file {path} is neither JSON nor YAML: {exc}") from exc
    try:
        return Experiment.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "(the file)"
        raise ConfigError(f"experiment file {path}: {where}: {problem['msg']}") from exc


# -- statistics ------------------------------------------------------------------------
def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with ``df`` degrees of freedom (closed forms:
    a finite sum for even ``df``, erfc plus a finite sum for odd)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if x <= 0:
        return 1.0
    half = x / 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= half / k
            total += term
        return min(1.0, math.exp(-half) * total)
    total = math.erfc(math.sqrt(half))
    term = math.sqrt(2 * x / math.pi) * math.exp(-half)
    for k in range(1, (df - 1) // 2 + 1):
        total += term
        term *= x / (2 * k + 1)
    return min(1.0, total)


def newcombe_interval(x1: int, n1: int, x0: int, n0: int, z: float = Z95) -> tuple[float, float]:
    """95 % interval of p1 - p0 (Newcombe's hybrid score method, from the two Wilson intervals)."""
    p1, p0 = x1 / n1 if n1 else 0.0, x0 / n0 if n0 else 0.0
    l1, u1 = wilson_interval(x1, n1, z)
    l0, u0 = wilson_interval(x0, n0, z)
    d = p1 - p0
    return (d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2))


class SampleRatio(Frozen):
    """Units seen per arm against the shares configured."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    df: int
    p_value: float
    mismatch: bool


def sample_ratio_check(observed: dict[str, int], shares: dict[str, float], alpha: float = SRM_ALPHA) -> SampleRatio:
    """Pearson's chi-square of ``observed`` units per arm against ``shares``; ``mismatch`` when p < alpha."""
    total = sum(observed.get(a, 0) for a in shares)
    expected = {a: total * s for a, s in shares.items()}
    chi2 = sum((observed.get(a, 0) - e) ** 2 / e for a, e in expected.items() if e > 0) if total else 0.0
    df = len(shares) - 1
    p = chi2_sf(chi2, df) if total else 1.0
    return SampleRatio(observed={a: observed.get(a, 0) for a in shares}, expected=expected, chi2=chi2, df=df,
                       p_value=p, mismatch=p < alpha)


# -- the report ----------------------------------------------------------------------------
class Rate(Frozen):
    count: int
    n: int
    rate: float | None
    low: float
    high: float

    @classmethod
    def of(cls, count: int, n: int) -> Rate:
        low, high = wilson_interval(count, n)
        return cls(count=count, n=n, rate=count / n if n else None, low=low, high=high)


class Difference(Frozen):
    """An arm's rate minus control's, with its 95 % Newcombe interval."""

    metric: str
    arm: str
    difference: float | None
    low: float | None
    high: float | None


class ArmMetrics(Frozen):
    arm: str
    units: int
    items: int
    action_rate: Rate
    appeal_rate: Rate
    overturn_rate: Rate
    user_report_rate_after_allow: Rate | None
    reviewer_load: Rate
    review_tasks_per_1k: float | None
    review_latency_median_s: float | None


class ExperimentReport(Frozen):
    experiment: str
    control: str
    since: datetime | None
    until: datetime | None
    arms: list[ArmMetrics]
    differences: list[Difference]
    sample_ratio: SampleRatio

    def text(self) -> str:
        """The report as plain text (what ``referee experiment report`` prints)."""
        lines = [f"experiment {self.experiment} (control: {self.control})"]
        srm = self.sample_ratio
        verdict = "MISMATCH: assignment or exposure logging is broken" if srm.mismatch else "ok"
        lines.append(f"sample ratio: chi2={srm.chi2:.2f} df={srm.df} p={srm.p_value:.3g} {verdict}")
        for arm in srm.observed:
            total = sum(srm.observed.values())
            lines.append(f"  {arm}: {srm.observed[arm]} units ({srm.observed[arm] / total:.1%} of {total}; "
                         f"expected {srm.expected[arm] / total:.1%})" if total else f"  {arm}: 0 units")
        lines.append("")
        header = f"{'arm':<14}{'units':>7}{'items':>8}  " + "  ".join(f"{m:<24}" for m in _RATES)
        lines.append(header)
        for a in self.arms:
            cells = [_rate_cell(getattr(a, m)) for m in _RATES]
            lines.append(f"{a.arm:<14}{a.units:>7}{a.items:>8}  " + "  ".join(f"{c:<24}" for c in cells))
        lines.append("")
        lines.append(f"{'arm':<14}{'review tasks/1k':>16}{'review latency (median s)':>28}")
        for a in self.arms:
            lines.append(f"{a.arm:<14}{_num(a.review_tasks_per_1k):>16}{_num(a.review_latency_median_s):>28}")
        lines.append("")
        lines.append(f"differences against {self.control} (95 % Newcombe intervals):")
        for d in self.differences:
            if d.difference is None:
                lines.append(f"  {d.arm} {d.metric}: not measured")
            else:
                lines.append(f"  {d.arm} {d.metric}: {d.difference:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")
        return "\n".join(lines)


_RATES = ("action_rate", "appeal_rate", "overturn_rate", "user_report_rate_after_allow", "reviewer_load")


def _rate_cell(rate: Rate | None) -> str:
    if rate is None or rate.rate is None:
        return "-"
    return f"{rate.rate:.4f} [{rate.low:.3f},{rate.high:.3f}]"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


#: The items (of these decisions) that users reported after the decision: the missed-harm source.
UserReports = Callable[[Sequence[Decision]], set[str]]


def notice_reports(store: Store) -> UserReports:
    """Missed harm from the notices table: an item with a notice received after its decision."""
    def reported(decided: Sequence[Decision]) -> set[str]:
        at = {d.item_id: d.created_at.timestamp() for d in decided}
        found: set[str] = set()
        ids = sorted(at)
        with store.db.read() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start:start + _CHUNK]
                rows = conn.execute(select(notices.c.item_id, notices.c.received_at).where(notices.c.item_id.in_(chunk)))
                found.update(r.item_id for r in rows if r.received_at >= at[r.item_id])
        return found
    return reported


def experiment_report(store: Store, name: str, since: datetime | None = None, until: datetime | None = None,
                      user_reports: UserReports | None = None) -> ExperimentReport:
    """Per-arm metrics of experiment ``name`` over exposures in [since, until), differences against
    control, and the sample-ratio check. ``user_reports`` is the missed-harm source (the store's
    notices when not given)."""
    user_reports = user_reports or notice_reports(store)
    records = shadow_store(store)
    config = records.experiment_config(name)
    if config is None:
        raise StoreError(f"no experiment {name!r} in this store (it is recorded when an ExperimentRunner starts)")
    experiment = Experiment.model_validate(config)
    exposures = records.exposures(name, since=since, until=until)
    by_arm: dict[str, list[Exposure]] = {a.name: [] for a in experiment.arms}
    for e in exposures:
        by_arm.setdefault(e.arm, []).append(e)
    decisions = store.log.get_many(sorted({e.decision_id for e in exposures}))
    appealed, overturned, tasks = _human_outcomes(store, sorted(decisions), sorted({e.item_id for e in exposures}))
    arms = [_arm_metrics(arm, rows, decisions, appealed, overturned, tasks, user_reports)
            for arm, rows in by_arm.items()]
    control = next(a for a in arms if a.arm == experiment.control_arm)
    differences = [_difference(m, a, control) for a in arms if a.arm != control.arm for m in _RATES]
    units = {a.arm: a.units for a in arms}
    return ExperimentReport(experiment=name, control=control.arm, since=since, until=until, arms=arms,
                            differences=differences, sample_ratio=sample_ratio_check(units, experiment.shares))


def _difference(metric: str, arm: ArmMetrics, control: ArmMetrics) -> Difference:
    a, c = getattr(arm, metric), getattr(control, metric)
    if a is None or c is None or not a.n or not c.n:
        return Difference(metric=metric, arm=arm.arm, difference=None, low=None, high=None)
    low, high = newcombe_interval(a.count, a.n, c.count, c.n)
    return Difference(metric=metric, arm=arm.arm, difference=a.count / a.n - c.count / c.n, low=low, high=high)


def _arm_metrics(arm: str, rows: list[Exposure], decisions: dict[str, Decision], appealed: set[str],
                 overturned: set[str], tasks: dict[str, list[tuple[float, float | None]]],
                 user_reports: UserReports | None) -> ArmMetrics:
    decided = [(e, decisions[e.decision_id]) for e in rows if e.decision_id in decisions]
    actioned = [(e, d) for e, d in decided if d.action is not Action.allow]
    allowed = [d for _, d in decided if d.action is Action.allow]
    queued = [tasks[d.decision_id] for _, d in decided if d.decision_id in tasks]
    latencies = [done - enq for found in queued for enq, done in found if done is not None]
    reported = None
    if user_reports is not None:
        reported = Rate.of(len(user_reports(allowed) & {d.item_id for d in allowed}), len(allowed))
    n = len(decided)
    return ArmMetrics(
        arm=arm, units=len({e.unit for e in rows}), items=n,
        action_rate=Rate.of(len(actioned), n),
        appeal_rate=Rate.of(sum(1 for e, _ in actioned if e.item_id in appealed), len(actioned)),
        overturn_rate=Rate.of(sum(1 for e, d in actioned if d.decision_id in overturned or
                                  e.item_id in overturned), len(actioned)),
        user_report_rate_after_allow=reported,
        reviewer_load=Rate.of(len(queued), n),
        review_tasks_per_1k=1000 * sum(len(q) for q in queued) / n if n else None,
        review_latency_median_s=statistics.median(latencies) if latencies else None,
    )


def _human_outcomes(store: Store, decision_ids: list[str], item_ids: list[str]
                    ) -> tuple[set[str], set[str], dict[str, list[tuple[float, float | None]]]]:
    """Items appealed; decisions a review verdict overturned and items whose appeal was
    overturned (one set: decision ids and item ids do not collide); each decision's
    review tasks (enqueued, completed)."""
    appealed: set[str] = set()
    overturned: set[str] = set()
    tasks: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    with store.db.read() as conn:
        for start in range(0, len(item_ids), _CHUNK):
            chunk = item_ids[start:start + _CHUNK]
            for row in conn.execute(select(appeals.c.item_id, appeals.c.status).where(appeals.c.item_id.in_(chunk))):
                appealed.add(row.item_id)
                if row.status == "overturned":
                    overturned.add(row.item_id)
        for start in range(0, len(decision_ids), _CHUNK):
            chunk = decision_ids[start:start + _CHUNK]
            overturned.update(conn.execute(select(review_verdicts.c.decision_id).where(
                review_verdicts.c.decision_id.in_(chunk), review_verdicts.c.verdict == "overturn")).scalars())
            query = select(review_tasks.c.decision_id, review_tasks.c.enqueued_at, review_tasks.c.completed_at).where(
                review_tasks.c.decision_id.in_(chunk), review_tasks.c.kind == "review")
            for task in conn.execute(query):
                tasks[task.decision_id].append((task.enqueued_at, task.completed_at))
    return appealed, overturned, dict(tasks)
