"""Experiments: deterministic, balanced assignment; arms that change the engine; the SRM check;
and a report whose numbers on a small constructed set equal the ones worked out by hand."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import pytest
import yaml

from referee.build import EngineConfig
from referee.engine import Engine
from referee.engine.experiment import Arm, Experiment, assign, bucket, derive_policy
from referee.errors import ConfigError, StoreError
from referee.model import Action, ContentItem
from referee.online.experiments import (
    ExperimentRunner,
    arm_engine_config,
    chi2_sf,
    experiment_report,
    newcombe_interval,
    sample_ratio_check,
)
from referee.policy import Policy
from referee.records.appeals import file_appeal
from referee.records.notices import file_notice
from referee.records.review import ReviewDesk, Verdict
from referee.store import Store
from tests.serve.conftest import DEFAULT_POLICY, HashtagDetector


def split(salt: str = "s1", shares: tuple[float, ...] = (0.5, 0.3, 0.2)) -> Experiment:
    return Experiment(name="x", salt=salt, arms=[Arm(name=f"arm{i}", share=s) for i, s in enumerate(shares)])


# -- assignment -----------------------------------------------------------------------
def test_assignment_is_balanced_on_100k_units_and_stable():
    exp = split()
    units = [f"author-{k}" for k in range(100_000)]
    arms = [exp.assign(u) for u in units]
    for name, share in exp.shares.items():
        # 4.5 standard deviations of a binomial share at n = 100k: fails by chance about once in 10^5 runs.
        tolerance = 4.5 * math.sqrt(share * (1 - share) / len(units))
        assert abs(arms.count(name) / len(units) - share) < tolerance, name
    assert [exp.assign(u) for u in units[:1000]] == arms[:1000]  # same unit, same arm
    assert Experiment.model_validate(exp.model_dump(mode="json")).assign("author-7") == arms[7]  # in another process
    assert not sample_ratio_check({a: arms.count(a) for a in exp.shares}, exp.shares).mismatch


def test_the_salt_redraws_the_assignment():
    a, b = split("s1"), split("s2")
    units = [f"u{k}" for k in range(10_000)]
    moved = sum(a.assign(u) != b.assign(u) for u in units) / len(units)
    # Independent draws disagree with probability 1 - (0.5² + 0.3² + 0.2²) = 0.62.
    assert 0.59 < moved < 0.65
    assert bucket("s1", "u1") != bucket("s2", "u1")
    assert assign("s1", "u1", {"only": 1.0}) == "only"


def test_the_unit_is_the_author_or_else_the_item():
    exp = split()
    by_author = ContentItem(id="i1", text="hi", author_id="a9")
    assert exp.unit_of(by_author) == "a9"
    assert exp.unit_of(ContentItem(id="i2", text="hi")) == "item:i2"
    per_item = exp.model_copy(update={"unit": "item"})
    assert per_item.unit_of(by_author) == "i1"


def test_experiment_configs_fail_closed():
    with pytest.raises(ValueError, match="shares must sum to 1, got 0.9"):
        split(shares=(0.5, 0.4))
    with pytest.raises(ValueError, match="arm names must be unique"):
        Experiment(name="x", salt="s", arms=[Arm(name="a", share=0.5), Arm(name="a", share=0.5)])
    with pytest.raises(ValueError, match="control 'c' is not an arm"):
        Experiment(name="x", salt="s", control="c", arms=[Arm(name="a", share=0.5), Arm(name="b", share=0.5)])
    with pytest.raises(ValueError, match="thresholds must be between 0 and 1"):
        Arm(name="a", share=1.0, thresholds={"r": 1.5})


# -- statistics ----------------------------------------------------------------------------
def test_the_sample_ratio_check_catches_a_broken_split():
    exp = split(shares=(0.5, 0.5))
    units = [f"u{k}" for k in range(20_000)]
    seen = {"arm0": 0, "arm1": 0}
    for u in units:
        arm = exp.assign(u)
        # A broken exposure logger: loses 5 % of arm1's exposures.
        if arm == "arm1" and bucket("logger", u) < 0.05:
            continue
        seen[arm] += 1
    broken = sample_ratio_check(seen, exp.shares)
    assert broken.mismatch and broken.p_value < 1e-4 and broken.df == 1
    honest = sample_ratio_check({a: sum(exp.assign(u) == a for u in units) for a in exp.shares}, exp.shares)
    assert not honest.mismatch


def test_chi_square_tail_matches_scipy():
    special = pytest.importorskip("scipy.special")
    for x, df in itertools.product((0.01, 0.5, 3.84, 10.0, 40.0), (1, 2, 3, 4, 7, 10)):
        assert chi2_sf(x, df) == pytest.approx(special.chdtrc(df, x), rel=1e-9, abs=1e-15), (x, df)


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 - 48/80, method 10.
    low, high = newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


# -- arms change the engine ---------------------------------------------------------------------
def test_an_arm_overrides_thresholds_detector_settings_and_the_cascade_band():
    doc = {"surfaces": {"comment": {"rules": [{"id": "r1", "threshold": 0.5}]}},
           "jurisdictions": {"EU": {"surfaces": {"comment": {"rules": [{"id": "r1", "threshold": 0.4}]}}}},
           "detectors": {"classifier": {"model": "models/default"}},
           "plan": [{"id": "fast", "detectors": ["lexicon"]},
                    {"id": "llm", "detectors": ["llm"], "when": {"band": {"min": 0.2, "max": 0.8}}}]}
    arm = Arm(name="t", share=0.5, thresholds={"r1": 0.7}, detector_settings={"classifier": {"model": "models/new"}},
              cascade_band={"stage": "llm", "min": 0.3, "max": 0.9})
    out = derive_policy(doc, arm)
    assert out["surfaces"]["comment"]["rules"][0]["threshold"] == 0.7
    assert out["jurisdictions"]["EU"]["surfaces"]["comment"]["rules"][0]["threshold"] == 0.7
    assert out["detectors"]["classifier"] == {"model": "models/new"}
    assert out["plan"][1]["when"]["band"] == {"min": 0.3, "max": 0.9}
    assert doc["surfaces"]["comment"]["rules"][0]["threshold"] == 0.5  # the input is not touched
    with pytest.raises(ConfigError, match=r"rule\(s\) \['nope'\] the policy does not have \(its rules: r1\)"):
        derive_policy(doc, Arm(name="t", share=0.5, thresholds={"nope": 0.1}))
    with pytest.raises(ConfigError, match="detector_settings for 'llm'"):
        derive_policy(doc, Arm(name="t", share=0.5, detector_settings={"llm": {}}))
    with pytest.raises(ConfigError, match="stage 'slow'"):
        derive_policy(doc, Arm(name="t", share=0.5, cascade_band={"stage": "slow", "min": 0, "max": 1}))


def experiment_and_policy(tmp_path: Path) -> tuple[Experiment, EngineConfig]:
    policy = tmp_path / "default.yaml"
    # No random QA sample: which items it picks depends on decision ids, hence on the policy's bytes.
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert "qa_sample_rate: 0.05" in text
    policy.write_text(text.replace("qa_sample_rate: 0.05", "qa_sample_rate: 0"), encoding="utf-8")
    (tmp_path / "default.tests.yaml").write_text((DEFAULT_POLICY.parent / "default.tests.yaml").read_text())
    (tmp_path / "lexicons").symlink_to(DEFAULT_POLICY.parent / "lexicons")
    exp = Experiment(name="hate-threshold", salt="2026-12", arms=[
        Arm(name="control", share=0.5), Arm(name="strict", share=0.5, thresholds={"comment.hate.remove": 0.99})])
    return exp, EngineConfig(policy=policy, store_url=f"sqlite:///{tmp_path}/x.db")


def test_an_arm_is_an_engine_config_with_a_derived_policy(tmp_path):
    exp, base = experiment_and_policy(tmp_path)
    control, strict = (arm_engine_config(exp, a, base) for a in exp.arms)
    assert control.policy == base.policy
    assert strict.policy.name == "default.hate-threshold.strict.yaml" and strict.policy.parent == tmp_path
    derived = Policy.from_file(strict.policy)
    rule = next(r for r in derived.document.surfaces["comment"].rules if r.id == "comment.hate.remove")
    assert rule.threshold == 0.99
    assert derived.sha256 != Policy.from_file(base.policy).sha256
    assert arm_engine_config(exp, exp.arms[1], base) == strict  # written once, the same file again


# -- the report on a constructed set ------------------------------------------------------------------
def authors_in(exp: Experiment, arm: str, n: int) -> list[str]:
    return [a for a in (f"author-{k}" for k in range(1000)) if exp.assign(a) == arm][:n]


def test_the_report_equals_the_hand_computed_numbers(tmp_path):
    exp, base = experiment_and_policy(tmp_path)
    store = Store(base.store_url or "")

    def build(config: EngineConfig) -> Engine:
        return Engine(Policy.from_file(config.policy), [HashtagDetector()], sink=store, config_id=config.id)

    (ca, cb), (sa, sb) = authors_in(exp, "control", 2), authors_in(exp, "strict", 2)
    items = [  # id, author, text -> (control) remove / hold / allow, (strict: hate not removed) hold / ...
        ("c1", ca, "#hate"), ("c2", ca, "#self_harm"), ("c3", cb, "fine"), ("c4", cb, "fine"),
        ("t1", sa, "#hate"), ("t2", sa, "#harassment"), ("t3", sb, "#self_harm"),
        ("t4", sb, "fine"), ("t5", sb, "fine"), ("t6", sa, "fine"),
    ]
    with ExperimentRunner(exp, base, store, build=build) as runner:
        decided = runner.moderate_many([ContentItem(id=i, author_id=a, text=f"{t} {i}") for i, a, t in items])
        assert runner.moderate_many([ContentItem(id="c1", author_id=ca, text="#hate c1")])  # exposed once
    actions = {d.item_id: d.action for d in decided}
    assert actions == {"c1": Action.remove, "c2": Action.hold_for_review, "c3": Action.allow, "c4": Action.allow,
                       "t1": Action.hold_for_review, "t2": Action.limit_reach, "t3": Action.hold_for_review,
                       "t4": Action.allow, "t5": Action.allow, "t6": Action.allow}

    t0 = time.time()
    clock = [t0]
    desk = ReviewDesk(store, Policy.from_file(base.policy), clock=lambda: clock[0])
    assert sorted(t.item_id for t in desk.sync() if t.kind == "review") == ["c2", "t1", "t3"]
    verdicts = {"c2": ("overturn", 30.0), "t1": ("uphold", 60.0), "t3": ("overturn", 90.0)}
    while (task := desk.claim("rev-1", desk.config.default_queue)) is not None:
        kind, after = verdicts[task.item_id]
        clock[0] = t0 + after
        desk.submit(task.task_id, "rev-1", Verdict(kind=kind))  # type: ignore[arg-type]
        clock[0] = t0
    by_item = {d.item_id: d for d in decided}
    file_appeal(desk, by_item["c1"].decision_id, "it was a quote")
    file_appeal(desk, by_item["t2"].decision_id, "banter")

    # Users report three allowed items (DSA notices), which also queues them for review.
    for item_id in ("c3", "t4", "t5"):
        file_notice(desk, "this is harassment", item_id=item_id)
    report = experiment_report(store, "hate-threshold")
    control, strict = report.arms
    assert (control.arm, control.units, control.items, strict.arm, strict.units, strict.items) == (
        "control", 2, 4, "strict", 2, 6)
    hand = {  # metric: (control count, n), (strict count, n)
        "action_rate": ((2, 4), (3, 6)),
        "appeal_rate": ((1, 2), (1, 3)),
        "overturn_rate": ((1, 2), (1, 3)),
        "user_report_rate_after_allow": ((1, 2), (2, 3)),
        "reviewer_load": ((2, 4), (4, 6)),  # held items, and the noticed ones
    }
    for metric, (c, s) in hand.items():
        assert (getattr(control, metric).count, getattr(control, metric).n) == c, metric
        assert (getattr(strict, metric).count, getattr(strict, metric).n) == s, metric
    assert control.review_latency_median_s == 30.0 and strict.review_latency_median_s == 75.0
    assert control.review_tasks_per_1k == 500.0 and strict.review_tasks_per_1k == pytest.approx(4000 / 6)
    diff = {(d.arm, d.metric): d for d in report.differences}
    assert diff[("strict", "action_rate")].difference == 0.0
    assert diff[("strict", "user_report_rate_after_allow")].difference == pytest.approx(2 / 3 - 1 / 2)
    low, high = newcombe_interval(1, 3, 1, 2)
    assert (diff[("strict", "appeal_rate")].low, diff[("strict", "appeal_rate")].high) == (low, high)
    assert report.sample_ratio.observed == {"control": 2, "strict": 2} and not report.sample_ratio.mismatch
    text = report.text()
    assert "sample ratio: chi2=0.00 df=1 p=1 ok" in text and "strict action_rate: +0.0000" in text
    # Another missed-harm source can be passed (here: nothing was reported).
    quiet = experiment_report(store, "hate-threshold", user_reports=lambda decided: set())
    assert quiet.arms[1].user_report_rate_after_allow == quiet.arms[1].user_report_rate_after_allow.of(0, 3)
    store.close()


def test_an_experiment_cannot_change_its_arms_mid_run(tmp_path):
    exp, base = experiment_and_policy(tmp_path)
    store = Store(base.store_url or "")

    def build(config: EngineConfig) -> Engine:
        return Engine(Policy.from_file(config.policy), [HashtagDetector()], sink=store, config_id=config.id)

    ExperimentRunner(exp, base, store, build=build).close()
    changed = exp.model_copy(update={"salt": "other"})
    with pytest.raises(StoreError, match="new name"):
        ExperimentRunner(changed, base, store, build=build)
    with pytest.raises(StoreError, match="no experiment 'nope'"):
        experiment_report(store, "nope")
    store.close()


def test_arm_yaml_is_plain_data(tmp_path):
    exp, base = experiment_and_policy(tmp_path)
    derived = arm_engine_config(exp, exp.arms[1], base).policy
    assert yaml.safe_load(derived.read_text())["id"] == "default"
