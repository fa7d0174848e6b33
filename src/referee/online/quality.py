"""How right the automated actions are, and how much harm there is, measured on live traffic.

Offline metrics say how a model does on yesterday's labelled data. These estimators say how
the whole system does on today's traffic, from two kinds of human labels:

**Precision of automated actions** (``qa_precision``). The review desk double-reviews a
fixed share (``review.qa_sample_rate``) of automated enforcement decisions, chosen by a hash
of the decision id (``ReviewDesk.sampled_for_qa``): a uniform random sample with one known
inclusion probability. Precision of a category is the share of those reviewed actions whose
category the reviewer kept, with a Wilson interval. QA tasks picked by active learning
(``referee review sample``: uncertain or disputed decisions) are *not* random and are left
out: they would make precision look worse than it is.

**Prevalence and recall** (``design_sample``, ``estimate_prevalence``, ``estimate_recall``).
Violations the system missed never reach a reviewer, so they are counted from a stratified
random sample of *all* content of a window:

- a **unit** is an item, with its latest automated decision in the window; its score is the
  highest signal score of that decision (the model's view of how risky it is);
- **strata** are (surface, score band): bands ``[0, .05) [.05, .2) [.2, .5) [.5, .8) [.8, 1]``
  by default, so the rare high-score items are sampled far more often than the bulk;
- the labelling budget ``n`` is split by Neyman allocation with the band's midpoint as the
  prior violation rate (``n_h ∝ N_h * sqrt(m_h (1 - m_h))``, at least 2 per stratum, at most
  ``N_h``) and drawn without replacement, seeded; every selected unit records its stratum
  and its inclusion probability ``n_h / N_h``, so the sample is a file anyone can re-weight;
- each labelled unit says which categories it violates (``y``), whatever was decided.

The stratified (Horvitz–Thompson) estimator of the number of violating items of a category
on a surface, and its variance, are::

    Y = sum_h N_h * mean_h(y)
    V = sum_h N_h^2 * (1 - n_h / N_h) * var_h(y) / n_h      (var_h with n_h - 1)

``prevalence = Y / N_surface``, reported as violating items per 10,000. Strata only partly
labelled use their labelled units (labels missing at random within a stratum); a stratum
with no label at all adds nothing to the estimate and its whole population to the upper
bound, so an unfinished sample widens the interval instead of shrinking the harm.

The interval is Wilson's at the design's effective sample size
``n_eff = p (1 - p) / V(p)`` (Korn & Graubard 1998): a normal interval around a rare
prevalence runs below zero and under-covers. Recall (of a category: the violating items the
automated decision flagged, any action but ``allow``, over all violating items) is a ratio
of two such totals, with a linearised variance.

``tests/online/test_quality.py`` checks on a simulated population of 200,000 items with a
known prevalence that the estimator is unbiased and that its 95 % interval covers the truth
about 95 % of the time.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field

from referee.errors import InputError
from referee.model import Action, Decision
from referee.model.base import Frozen, assemble
from referee.records.review import ReviewDesk
from referee.stats import Z95, wilson_interval
from referee.store.protocols import DecisionLog

__all__ = [
    "ALL",
    "DEFAULT_BANDS",
    "LABELLING_SLOT",
    "Frame",
    "LabellingSample",
    "PrecisionEstimate",
    "PrevalenceEstimate",
    "RecallEstimate",
    "SampledUnit",
    "Stratum",
    "Unit",
    "design_sample",
    "estimate_prevalence",
    "estimate_recall",
    "frame",
    "qa_precision",
    "read_sample",
    "sample_labels",
    "send_for_labelling",
    "units_from_log",
    "write_sample",
]

#: The surface (or category) label of a row over all of them.
ALL = "*"
#: Score bands of the strata: dense at the top, where violations concentrate.
DEFAULT_BANDS: tuple[float, ...] = (0.0, 0.05, 0.2, 0.5, 0.8, 1.0)
#: The review-task slot of a labelling-sample task, apart from the QA share (1) and the
#: double review of a verdict (2), so one decision can be in both.
LABELLING_SLOT = 3
PER = 10_000


# -- precision of automated actions, from the QA share ---------------------------------------
class PrecisionEstimate(Frozen):
    """Of the automated actions for ``category`` on ``surface`` that QA reviewed, the share kept."""

    category: str
    surface: str
    reviewed: int
    kept: int
    precision: float
    low: float
    high: float


def qa_precision(desk: ReviewDesk, since: float | None = None, until: float | None = None,
                 by_surface: bool = True) -> list[PrecisionEstimate]:
    """Precision per category (and per surface, plus ``*`` for all) from the random QA share.

    Only QA verdicts on decisions the desk's hash sampled (``sampled_for_qa``) count, and only
    automated enforcement actions (not ``allow``, not ``hold_for_review``, which is a person's
    call). The first QA verdict on a decision is its label; escalations label nothing."""
    first: dict[str, tuple[Action | None, tuple[str, ...]]] = {}
    for v in desk.verdicts(since=since):
        if until is not None and v.recorded_at >= until:
            continue
        if v.kind == "qa" and v.verdict != "escalate" and v.decision_id not in first:
            first[v.decision_id] = (v.action, v.categories)
    reviewed = desk.store.log.get_many(list(first))
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for decision_id, (action, categories) in first.items():
        d = reviewed.get(decision_id)
        if (d is None or d.source != "automated" or d.action in (Action.allow, Action.hold_for_review)
                or not desk.sampled_for_qa(d)):
            continue
        for c in d.categories:
            kept = int(c in categories and action is not Action.allow)
            for surface in ((d.surface, ALL) if by_surface else (ALL,)):
                counts[(c, surface)][0] += 1
                counts[(c, surface)][1] += kept
    out = []
    for (c, surface), (n, kept) in sorted(counts.items()):
        low, high = wilson_interval(kept, n)
        out.append(PrecisionEstimate(category=c, surface=surface, reviewed=n, kept=kept, precision=kept / n,
                                     low=low, high=high))
    return out


# -- the population and its stratified sample ------------------------------------------------
class Unit(Frozen):
    """One item of the population: its latest automated decision in the window."""

    item_id: str
    decision_id: str
    surface: str
    score: float = Field(ge=0.0, le=1.0)
    flagged: tuple[str, ...] = Field(default=(), description="Categories the decision flagged (action not allow).")


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def unit_of(decision: Decision) -> Unit:
    score = max((s.score for s in decision.signals), default=0.0)
    flagged = decision.categories if decision.action is not Action.allow else ()
    return Unit(item_id=decision.item_id, decision_id=decision.decision_id, surface=decision.surface,
                score=score, flagged=tuple(flagged))


def automated_decisions(log: DecisionLog, since: datetime | None = None,
                        until: datetime | None = None) -> Iterator[Decision]:
    """Each item's latest automated decision made in ``[since, until)``: one pass over the log
    in sequence order (the log has no index by time and source that would serve this better)."""
    latest: dict[str, Decision] = {}
    lo = _utc(since) if since else None
    hi = _utc(until) if until else None
    for record in log.records():
        d = record.decision
        if d.source != "automated":
            continue
        made = _utc(d.created_at)
        if (lo is not None and made < lo) or (hi is not None and made >= hi):
            continue
        latest[d.item_id] = d
    yield from latest.values()


def units_from_log(log: DecisionLog, since: datetime | None = None, until: datetime | None = None) -> list[Unit]:
    return [unit_of(d) for d in automated_decisions(log, since, until)]


class Stratum(Frozen):
    key: str
    surface: str
    low: float
    high: float
    population: int = Field(ge=0)
    sample_size: int = Field(ge=0)


class SampledUnit(Frozen):
    item_id: str
    decision_id: str
    surface: str
    stratum: str
    inclusion_probability: float = Field(gt=0.0, le=1.0)
    flagged: tuple[str, ...] = ()


class LabellingSample(Frozen):
    """A stratified sample of a window's content, with everything needed to weight it back."""

    sample_id: str
    created_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    bands: tuple[float, ...]
    seed: int
    strata: tuple[Stratum, ...]
    units: tuple[SampledUnit, ...]
    #: Per stratum key, of the population: the number of items flagged for each category
    #: (known exactly, not sampled): recall's "caught" side needs no label.
    flagged: dict[str, dict[str, int]] = Field(default_factory=dict)


def _band(score: float, bands: Sequence[float]) -> int:
    for i in range(len(bands) - 1):
        if score < bands[i + 1]:
            return i
    return len(bands) - 2  # a score of exactly the top edge belongs to the last band


def _check_bands(bands: Sequence[float]) -> tuple[float, ...]:
    b = tuple(float(x) for x in bands)
    if len(b) < 2 or b[0] != 0.0 or b[-1] != 1.0 or any(x >= y for x, y in itertools.pairwise(b)):
        raise InputError(f"score bands must rise strictly from 0 to 1, got {list(b)} "
                         f"(fix: e.g. {list(DEFAULT_BANDS)})", where="bands")
    return b


def _allocate(populations: Sequence[int], priors: Sequence[float], size: int, minimum: int) -> list[int]:
    """Neyman allocation of ``size`` labels: ``n_h ∝ N_h sqrt(m (1 - m))``, at least ``minimum``
    (which can take the total over ``size`` when there are many strata) and at most ``N_h``;
    what a capped stratum cannot take goes to the others."""
    n = [min(p, minimum) for p in populations]
    weight = [p * math.sqrt(m * (1 - m)) for p, m in zip(populations, priors)]
    while True:
        left = size - sum(n)
        open_ = [i for i, p in enumerate(populations) if p > n[i]]
        if left <= 0 or not open_:
            return n
        total = sum(weight[i] for i in open_)
        given = 0
        for i in open_:
            extra = min(populations[i] - n[i], math.floor(left * weight[i] / total))
            n[i] += extra
            given += extra
        if given == 0:  # every share rounds down to nothing: one more each, heaviest first
            for i in sorted(open_, key=lambda i: -weight[i])[:left]:
                n[i] += 1


@dataclass(frozen=True)
class Frame:
    """The population of a window, grouped into strata once, so that many samples (or many
    simulated repetitions) can be drawn from it without regrouping."""

    bands: tuple[float, ...]
    groups: dict[tuple[str, int], list[Unit]]
    flagged: dict[tuple[str, int], dict[str, int]]

    @property
    def size(self) -> int:
        return sum(len(g) for g in self.groups.values())


def frame(units: Iterable[Unit], bands: Sequence[float] = DEFAULT_BANDS) -> Frame:
    b = _check_bands(bands)
    groups: dict[tuple[str, int], list[Unit]] = defaultdict(list)
    for u in units:
        groups[(u.surface, _band(u.score, b))].append(u)
    flagged: dict[tuple[str, int], dict[str, int]] = {}
    for key, members in groups.items():
        members.sort(key=lambda u: u.item_id)
        counts: dict[str, int] = defaultdict(int)
        for u in members:
            for c in u.flagged:
                counts[c] += 1
        flagged[key] = dict(counts)
    return Frame(bands=b, groups=dict(sorted(groups.items())), flagged=flagged)


def design_sample(population: Iterable[Unit] | Frame, size: int, bands: Sequence[float] = DEFAULT_BANDS,
                  seed: int = 13, minimum: int = 2, since: datetime | None = None,
                  until: datetime | None = None) -> LabellingSample:
    """Choose which items to send for labelling, stratified by (surface, score band)."""
    if size < 1:
        raise InputError(f"the labelling budget must be at least 1 item, got {size}", where="size")
    f = population if isinstance(population, Frame) else frame(population, bands)
    if not f.groups:
        raise InputError("the window holds no automated decisions to sample (fix: widen --since/--until)")
    b = f.bands
    keys = list(f.groups)
    populations = [len(f.groups[k]) for k in keys]
    priors = [min(0.99, max(0.01, (b[i] + b[i + 1]) / 2)) for _, i in keys]
    sizes = _allocate(populations, priors, size, minimum)
    rng = random.Random(seed)
    strata, chosen = [], []
    flagged: dict[str, dict[str, int]] = {}
    for (surface, i), n_h in zip(keys, sizes):
        key = f"{surface}|{b[i]:g}-{b[i + 1]:g}"
        members = f.groups[(surface, i)]
        strata.append(Stratum(key=key, surface=surface, low=b[i], high=b[i + 1], population=len(members),
                              sample_size=n_h))
        flagged[key] = f.flagged[(surface, i)]
        p = n_h / len(members)
        for u in rng.sample(members, n_h):
            # built from values already checked (the units), without validating each again
            chosen.append(assemble(SampledUnit, item_id=u.item_id, decision_id=u.decision_id, surface=surface,
                                   stratum=key, inclusion_probability=p, flagged=u.flagged))
    digest = hashlib.sha256(json.dumps([s.model_dump() for s in strata] + [u.decision_id for u in chosen],
                                       sort_keys=True).encode()).hexdigest()
    return assemble(LabellingSample, sample_id="smp_" + digest[:20], created_at=datetime.now(UTC), since=since,
                    until=until, bands=b, seed=seed, strata=tuple(strata), units=tuple(chosen), flagged=flagged)


def write_sample(sample: LabellingSample, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sample.model_dump_json(indent=1) + "\n", encoding="utf-8")
    return path


def read_sample(path: str | Path) -> LabellingSample:
    try:
        return LabellingSample.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the labelling sample: {exc.strerror} (fix: pass the file "
                         f"`referee online sample --out` wrote)", where=str(path)) from exc
    except ValueError as exc:
        raise InputError(f"not a labelling sample: {exc}", where=str(path)) from exc


# -- labels, from the review desk ------------------------------------------------------------
def send_for_labelling(desk: ReviewDesk, sample: LabellingSample, queue: str | None = None) -> int:
    """Queue every sampled decision for a label (a QA task: labels only, never a new decision).
    Re-sending queues nothing twice; returns how many tasks were new."""
    decisions = desk.store.log.get_many([u.decision_id for u in sample.units])
    made = 0
    with desk.store.db.write() as conn:
        for u in sample.units:
            d = decisions.get(u.decision_id)
            if d is None:
                raise InputError(f"the sample names decision {u.decision_id!r}, which the log does not hold "
                                 f"(fix: design the sample from this store)", where=u.item_id)
            if desk.enqueue(d, kind="qa", slot=LABELLING_SLOT, queue=queue, conn=conn) is not None:
                made += 1
    return made


def sample_labels(desk: ReviewDesk, sample: LabellingSample) -> dict[str, frozenset[str]]:
    """Item id -> the categories its first (non-escalating) verdict says it violates
    (empty when the labeller said ``allow``); unlabelled items are absent."""
    wanted = {u.decision_id: u.item_id for u in sample.units}
    out: dict[str, frozenset[str]] = {}
    for v in desk.verdicts():
        item = wanted.get(v.decision_id)
        if item is None or item in out or v.verdict == "escalate" or v.action is None:
            continue
        out[item] = frozenset(v.categories) if v.action is not Action.allow else frozenset()
    return out


# -- the estimators -----------------------------------------------------------------------------
class PrevalenceEstimate(Frozen):
    surface: str
    category: str
    population: int
    labelled: int
    violating: float = Field(description="Estimated number of violating items.")
    prevalence: float
    low: float
    high: float
    std_error: float
    unlabelled_population: int = Field(default=0, description="Items in strata with no label yet.")

    @property
    def per_10k(self) -> tuple[float, float, float]:
        return (self.prevalence * PER, self.low * PER, self.high * PER)


class RecallEstimate(Frozen):
    surface: str
    category: str
    violating: float
    caught: float
    recall: float | None
    low: float | None
    high: float | None


def _wilson_effective(p: float, n_eff: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's interval at a non-integer effective sample size (Korn & Graubard): the formula
    of ``referee.stats.wilson_interval``, which takes whole counts, at ``p * n_eff`` of ``n_eff``."""
    if n_eff <= 0:
        return (0.0, 1.0)
    denom = 1 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n_eff + z * z / (4 * n_eff * n_eff)) / denom
    low = 0.0 if p <= 0 else max(0.0, centre - half)
    high = 1.0 if p >= 1 else min(1.0, centre + half)
    return (low, high)


def _stratum_moments(values: Sequence[float], population: int) -> tuple[float, float]:
    """(estimated total, variance of that estimate) of one stratum from its labelled values."""
    n = len(values)
    mean = sum(values) / n
    if n == 1 or population <= 1:
        var = 0.25 if population > 1 else 0.0  # one label cannot say how values vary: the Bernoulli maximum
    else:
        var = sum((v - mean) ** 2 for v in values) / (n - 1)
    fpc = max(0.0, 1 - n / population)
    return population * mean, population * population * fpc * var / n


def _domains(sample: LabellingSample) -> dict[str, list[Stratum]]:
    by: dict[str, list[Stratum]] = defaultdict(list)
    for s in sample.strata:
        by[s.surface].append(s)
        by[ALL].append(s)
    return by


def _labelled_by_stratum(sample: LabellingSample, labels: Mapping[str, Collection[str]]) -> dict[str, list[SampledUnit]]:
    out: dict[str, list[SampledUnit]] = defaultdict(list)
    for u in sample.units:
        if u.item_id in labels:
            out[u.stratum].append(u)
    return out


def estimate_prevalence(sample: LabellingSample, labels: Mapping[str, Collection[str]],
                        categories: Sequence[str], z: float = Z95) -> list[PrevalenceEstimate]:
    """Per surface (and ``*``) and category: violating items, prevalence and its interval."""
    labelled = _labelled_by_stratum(sample, labels)
    out = []
    for surface, strata in sorted(_domains(sample).items()):
        population = sum(s.population for s in strata)
        missing = sum(s.population for s in strata if not labelled.get(s.key))
        n_labelled = sum(len(labelled.get(s.key, [])) for s in strata)
        for c in categories:
            total = var = 0.0
            for s in strata:
                units = labelled.get(s.key)
                if units:
                    t, v = _stratum_moments([float(c in labels[u.item_id]) for u in units], s.population)
                    total, var = total + t, var + v
            p = total / population if population else 0.0
            var_p = var / population ** 2 if population else 0.0
            n_eff = p * (1 - p) / var_p if var_p > 0 and 0 < p < 1 else float(n_labelled)
            low, high = _wilson_effective(p, n_eff, z) if n_labelled else (0.0, 1.0)
            high = min(1.0, high + missing / population) if population else high
            out.append(PrevalenceEstimate(surface=surface, category=c, population=population, labelled=n_labelled,
                                          violating=total, prevalence=p, low=low, high=high,
                                          std_error=math.sqrt(var_p), unlabelled_population=missing))
    return out


def estimate_recall(sample: LabellingSample, labels: Mapping[str, Collection[str]], categories: Sequence[str],
                    z: float = Z95) -> list[RecallEstimate]:
    """Per surface (and ``*``) and category: the share of violating items the automated decision
    flagged, ``R = Y_caught / Y``, with the linearised variance of the ratio."""
    labelled = _labelled_by_stratum(sample, labels)
    out = []
    for surface, strata in sorted(_domains(sample).items()):
        for c in categories:
            y_total = caught = 0.0
            for s in strata:
                units = labelled.get(s.key)
                if units:
                    y = [float(c in labels[u.item_id]) for u in units]
                    a = [float(c in labels[u.item_id] and c in u.flagged) for u in units]
                    y_total += _stratum_moments(y, s.population)[0]
                    caught += _stratum_moments(a, s.population)[0]
            if y_total <= 0:
                out.append(RecallEstimate(surface=surface, category=c, violating=0.0, caught=0.0, recall=None,
                                          low=None, high=None))
                continue
            r = caught / y_total
            var = 0.0
            n_viol = 0
            for s in strata:
                units = labelled.get(s.key)
                if units:
                    resid = [float(c in labels[u.item_id]) * (float(c in u.flagged) - r) for u in units]
                    var += _stratum_moments(resid, s.population)[1]
                    n_viol += sum(c in labels[u.item_id] for u in units)
            var_r = var / (y_total ** 2)
            n_eff = r * (1 - r) / var_r if var_r > 0 and 0 < r < 1 else float(n_viol)
            low, high = _wilson_effective(r, n_eff, z)
            out.append(RecallEstimate(surface=surface, category=c, violating=y_total, caught=caught, recall=r,
                                      low=low, high=high))
    return out
