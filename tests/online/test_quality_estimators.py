"""The prevalence and recall estimators on simulated populations whose truth is known.

A population of items with two categories, scores from a known model (violating items
score high more often, but not always), and a labeller who reports the truth. Many seeded
samples are drawn from one population; over them the estimate must average to the truth
(unbiased) and the 95 % interval must cover it about 95 % of the time. The unweighted share
of violations in the sample, which ignores the inclusion probabilities, is far off: the
weighting is what makes the estimate right.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from referee.errors import InputError
from referee.online.quality import (
    ALL,
    Unit,
    design_sample,
    estimate_prevalence,
    estimate_recall,
    frame,
    read_sample,
    write_sample,
)

CATEGORIES = ("hate", "spam")


def population(n: int, seed: int = 7) -> tuple[list[Unit], dict[str, frozenset[str]]]:
    """``n`` items on two surfaces; hate 1 % of comments and 0.5 % of messages, spam 3 %
    of comments and 6 % of messages. Per category the model scores a violating item
    Beta(4, 2) and a clean one Beta(1, 30); the decision flags a category above 0.5."""
    rng = np.random.default_rng(seed)
    surface = np.where(rng.random(n) < 0.7, "comment", "message")
    rate = {"hate": {"comment": 0.01, "message": 0.005}, "spam": {"comment": 0.03, "message": 0.06}}
    units, truth = [], {}
    y = {c: rng.random(n) < np.vectorize(rate[c].get)(surface) for c in CATEGORIES}
    s = {c: np.where(y[c], rng.beta(4, 2, n), rng.beta(1, 30, n)) for c in CATEGORIES}
    for i in range(n):
        scores = {c: float(s[c][i]) for c in CATEGORIES}
        units.append(Unit(item_id=f"it{i:06d}", decision_id=f"d{i:06d}", surface=str(surface[i]),
                          score=max(scores.values()), flagged=tuple(c for c in CATEGORIES if scores[c] >= 0.5)))
        truth[f"it{i:06d}"] = frozenset(c for c in CATEGORIES if y[c][i])
    return units, truth


def true_prevalence(units: list[Unit], truth: dict[str, frozenset[str]], surface: str, category: str) -> float:
    members = [u for u in units if surface in (ALL, u.surface)]
    return sum(category in truth[u.item_id] for u in members) / len(members)


def true_recall(units: list[Unit], truth: dict[str, frozenset[str]], surface: str, category: str) -> float:
    bad = [u for u in units if surface in (ALL, u.surface) and category in truth[u.item_id]]
    return sum(category in u.flagged for u in bad) / len(bad)


def repeat(units: list[Unit], truth: dict[str, frozenset[str]], reps: int, size: int) -> dict[tuple[str, str], list]:
    f = frame(units)
    out: dict[tuple[str, str], list] = {}
    for seed in range(reps):
        sample = design_sample(f, size=size, seed=seed)
        labels = {u.item_id: truth[u.item_id] for u in sample.units}
        for e in estimate_prevalence(sample, labels, CATEGORIES):
            out.setdefault(("prev", e.surface, e.category), []).append(e)
        for r in estimate_recall(sample, labels, CATEGORIES):
            out.setdefault(("recall", r.surface, r.category), []).append(r)
    return out


def check_unbiased_and_covering(units: list[Unit], truth: dict[str, frozenset[str]], reps: int, size: int) -> None:
    runs = repeat(units, truth, reps, size)
    for surface in (ALL, "comment", "message"):
        for c in CATEGORIES:
            est = runs[("prev", surface, c)]
            p = true_prevalence(units, truth, surface, c)
            values = [e.prevalence for e in est]
            mean, sd = statistics.fmean(values), statistics.stdev(values)
            # unbiased: the mean of the estimates is within 3.5 standard errors of the truth
            assert abs(mean - p) < 3.5 * sd / math.sqrt(reps), (surface, c, mean, p, sd)
            assert abs(mean - p) < 0.05 * p, (surface, c, mean, p)
            covered = sum(e.low <= p <= e.high for e in est) / reps
            assert 0.90 <= covered <= 0.995, (surface, c, covered)
            # the reported standard error is the spread the estimates really have
            assert 0.8 < statistics.fmean(e.std_error for e in est) / sd < 1.25, (surface, c)
        for c in CATEGORIES:
            every = runs[("recall", surface, c)]
            rec = [e for e in every if e.recall is not None]
            assert len(rec) >= 0.95 * len(every)  # undefined only when the sample found no violation at all
            r = true_recall(units, truth, surface, c)
            values = [e.recall for e in rec]
            mean, sd = statistics.fmean(values), statistics.stdev(values)
            reps_r = len(rec)
            # a ratio estimator: biased only to order 1/n
            assert abs(mean - r) < 3.5 * sd / math.sqrt(reps_r) + 0.01, (surface, c, mean, r)
            covered = sum(e.low <= r <= e.high for e in rec) / reps_r
            assert 0.88 <= covered <= 0.995, (surface, c, covered)


def test_prevalence_is_unbiased_and_its_interval_covers_on_a_simulated_population() -> None:
    units, truth = population(20_000)
    check_unbiased_and_covering(units, truth, reps=150, size=1_000)


@pytest.mark.slow
def test_prevalence_on_200k_items() -> None:
    units, truth = population(200_000, seed=11)
    check_unbiased_and_covering(units, truth, reps=300, size=2_000)


def test_unweighted_sample_share_is_far_off() -> None:
    """Proof that the test above can fail: the sample over-represents high scores, so the
    plain share of violations in it is more than twice the population's."""
    units, truth = population(40_000)
    sample = design_sample(units, size=1_500, seed=1)
    naive = sum("hate" in truth[u.item_id] for u in sample.units) / len(sample.units)
    p = true_prevalence(units, truth, ALL, "hate")
    assert naive > 2 * p
    est = next(e for e in estimate_prevalence(sample, {u.item_id: truth[u.item_id] for u in sample.units},
                                              CATEGORIES) if e.surface == ALL and e.category == "hate")
    assert est.low <= p <= est.high


def test_the_sample_records_strata_and_inclusion_probabilities(tmp_path) -> None:  # type: ignore[no-untyped-def]
    units, _ = population(5_000)
    sample = design_sample(units, size=400, seed=3)
    assert sum(s.sample_size for s in sample.strata) == len(sample.units) == 400
    assert sum(s.population for s in sample.strata) == 5_000
    by_key = {s.key: s for s in sample.strata}
    for u in sample.units:
        s = by_key[u.stratum]
        assert u.inclusion_probability == pytest.approx(s.sample_size / s.population)
        assert s.low <= next(x.score for x in units if x.item_id == u.item_id) <= s.high
    assert len({u.item_id for u in sample.units}) == 400  # without replacement
    top = [s for s in sample.strata if s.low == 0.8]
    bottom = [s for s in sample.strata if s.low == 0.0]
    # high scores are sampled at a higher rate than the bulk (Neyman: where the variance is)
    assert min(s.sample_size / s.population for s in top) > 2 * max(s.sample_size / s.population for s in bottom)
    # the same seed draws the same sample; the file round-trips
    assert design_sample(units, size=400, seed=3).units == sample.units
    assert read_sample(write_sample(sample, tmp_path / "s.json")) == sample


def test_strata_without_labels_widen_the_interval_instead_of_hiding_harm() -> None:
    units, truth = population(5_000)
    sample = design_sample(units, size=400, seed=3)
    top = {s.key for s in sample.strata if s.low == 0.8}
    partial = {u.item_id: truth[u.item_id] for u in sample.units if u.stratum not in top}
    full = {u.item_id: truth[u.item_id] for u in sample.units}
    [a] = [e for e in estimate_prevalence(sample, partial, ["hate"]) if e.surface == ALL]
    [b] = [e for e in estimate_prevalence(sample, full, ["hate"]) if e.surface == ALL]
    assert a.unlabelled_population == sum(s.population for s in sample.strata if s.key in top) > 0
    assert a.high >= b.high and a.high >= a.unlabelled_population / a.population
    assert b.unlabelled_population == 0


def test_bad_inputs_name_the_field() -> None:
    units, _ = population(100)
    with pytest.raises(InputError, match="size: the labelling budget must be at least 1"):
        design_sample(units, size=0)
    with pytest.raises(InputError, match="bands: score bands must rise strictly from 0 to 1"):
        design_sample(units, size=10, bands=(0.0, 0.5, 0.4, 1.0))
    with pytest.raises(InputError, match="no automated decisions"):
        design_sample([], size=10)
