"""Drift: PSI over fixed bins flags a shifted score distribution and a new language mix, stays
quiet on the same traffic, says "insufficient" on a handful of items; gauges for /metrics;
the HTTP reports answer behind the read scope."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from referee import ids
from referee.engine import Engine
from referee.model import Action, ContentItem, Decision, Signal
from referee.online.drift import drift_gauges, drift_report, guess_language, psi
from referee.online.quality import design_sample, units_from_log, write_sample
from referee.policy import Policy
from referee.serve import create_app
from referee.settings import Settings
from referee.store import Store

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, tzinfo=UTC)
TEXTS = {"en": "this is not what they said and you know it", "de": "das ist nicht so und ich bin auch dabei",
         "fr": "je ne sais pas pour vous mais ce est une blague", "es": "no es para los que son muy pero como"}


def put(store: Store, n: int, start: datetime, hate: float, lang: str, prefix: str, rng: random.Random) -> None:
    pairs = []
    for i in range(n):
        it = ContentItem(id=f"{prefix}{i}", text=f"{TEXTS[lang]} {i}", surface="comment")
        key = ids.input_key(it.id, it.content_hash, None, "default", "1", "p" * 64, {"c": "1"}, "")
        score = min(1.0, rng.betavariate(1, 30) + (hate if rng.random() < 0.5 else 0.0))
        pairs.append((it, Decision(decision_id=ids.decision_id(key, None), input_key=key, item_id=it.id,
                                   content_hash=it.content_hash, surface="comment", action=Action.allow,
                                   signals=(Signal(detector="c", detector_version="1", category="hate", score=score),
                                            Signal(detector="c", detector_version="1", category="spam",
                                                   score=rng.betavariate(1, 30))),
                                   policy_id="default", policy_version="1", policy_sha256="p" * 64,
                                   created_at=start + timedelta(seconds=i))))
    store.log.append(pairs)


def test_psi_is_zero_for_one_distribution_and_grows_with_the_shift() -> None:
    assert psi([10, 20, 70], [10, 20, 70]) == 0.0
    assert psi([10, 20, 70], [12, 20, 68]) < 0.01 < psi([10, 20, 70], [30, 30, 40]) < psi([10, 20, 70], [70, 20, 10])


def test_drift_report_flags_the_shifted_category_and_language(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/log.db")
    rng = random.Random(0)
    put(store, 400, T0, 0.0, "en", "r", rng)
    put(store, 400, T0 + timedelta(days=1), 0.4, "de", "c", rng)  # hate scores rise, German arrives
    report = drift_report(store.log, store.content, (T0, T0 + timedelta(days=1)), (T0 + timedelta(days=1), None))
    rows = {(r.kind, r.surface, r.category): r for r in report.rows}
    assert rows[("score", "comment", "hate")].status == "alert"
    assert rows[("score", "comment", "spam")].status == "ok"
    assert rows[("language", "comment", None)].status == "alert"
    gauges = drift_gauges(report)
    alert = [g for g in gauges if g.name == "referee_drift_alert" and g.labels["category"] == "hate"]
    assert alert and all(g.value == 2.0 for g in alert)
    assert any(g.name == "referee_language_share" and g.labels["language"] == "de" and g.value == 1.0 for g in gauges)
    # the same traffic in both windows: no alert; a handful of items: insufficient, never an alert
    same = drift_report(store.log, None, (T0, T0 + timedelta(hours=1)), (T0 + timedelta(hours=1), T0 + timedelta(days=1)),
                        min_count=10)
    assert not same.alerts
    few = drift_report(store.log, None, (T0, T0 + timedelta(seconds=5)), (T0 + timedelta(days=1), None))
    assert {r.status for r in few.rows} == {"insufficient"}
    store.close()


def test_guess_language_on_scripts_and_function_words() -> None:
    assert guess_language("this is not what they said") == "en"
    assert guess_language("das ist nicht so und ich bin") == "de"
    assert guess_language("je ne sais pas pour vous") == "fr"
    assert guess_language("Это не так") == "ru"
    assert guess_language("هذا ليس صحيحا") == "ar"
    assert guess_language("这不是真的") == "zh"
    assert guess_language("これは本当ではない") == "ja"
    assert guess_language("xyzzy qwrt") == "und"
    assert guess_language("12345 !!!") == "und"


@pytest.mark.shared
def test_guess_language_on_multilingual_hatecheck() -> None:
    import csv

    folder = REPO.parent / "shared" / "datasets" / "multilingual_hatecheck" / "final_cases"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (the shared datasets are not checked out)")
    names = {"arabic": "ar", "dutch": "nl", "french": "fr", "german": "de", "hindi": "hi", "italian": "it",
             "mandarin": "zh", "polish": "pl", "portuguese": "pt", "spanish": "es"}
    for path in sorted(folder.glob("*.csv")):
        lang = names[path.stem.rsplit("_", 1)[1]]
        with path.open(encoding="utf-8") as fh:
            texts = [r["test_case"] for r, _ in zip(csv.DictReader(fh), range(300))]
        right = sum(guess_language(t) == lang for t in texts) / len(texts)
        assert right > 0.5, (lang, right)  # short test cases; a mix is what the guess is for


def test_quality_http_reports_need_the_read_scope(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, policy=REPO / "policies" / "default.yaml",
                        db_url=f"sqlite:///{tmp_path / 'referee.db'}", samples_dir=tmp_path / "samples")
    store = Store(settings.db_url)
    rng = random.Random(1)
    put(store, 300, T0, 0.0, "en", "r", rng)
    put(store, 300, T0 + timedelta(days=1), 0.4, "fr", "c", rng)
    sample = design_sample(units_from_log(store.log), size=40)
    write_sample(sample, tmp_path / "samples" / f"{sample.sample_id}.json")
    engine = Engine(Policy.from_file(settings.policy), [], sink=store)
    app: FastAPI = create_app(settings, engine=engine, store=store)
    read = store.create_key("r", ["read"])
    moderate = store.create_key("m", ["moderate"])
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {read}"}
        assert client.get("/v1/quality/precision").status_code == 401
        assert client.get("/v1/quality/precision", headers={"Authorization": f"Bearer {moderate}"}).status_code == 403
        assert client.get("/v1/quality/precision", headers=h).json()["precision"] == []
        r = client.get(f"/v1/quality/prevalence/{sample.sample_id}", headers=h)
        assert r.status_code == 200 and r.json()["selected"] == 40 and r.json()["labelled"] == 0
        assert client.get("/v1/quality/prevalence/smp_" + "0" * 20, headers=h).status_code == 404
        d = client.get("/v1/quality/drift", headers=h, params={
            "reference_since": T0.isoformat(), "reference_until": (T0 + timedelta(days=1)).isoformat()}).json()
        assert d["alerts"] >= 1
        bad = client.get("/v1/quality/drift", headers=h, params={"reference_since": "yesterday"})
        assert bad.status_code == 422 and "reference_since" in bad.text
    engine.close()
    store.close()


def test_the_http_log_follower_puts_drift_on_the_metrics(tmp_path: Path) -> None:
    from referee.obs import Metrics
    from referee.serve.follow import LogFollower

    store = Store(f"sqlite:///{tmp_path}/log.db")
    rng = random.Random(2)
    now = datetime.now(UTC)
    put(store, 300, now - timedelta(days=3), 0.0, "en", "r", rng)  # the week before yesterday
    put(store, 300, now - timedelta(hours=20), 0.4, "en", "c", rng)  # yesterday: hate scores rose
    metrics = Metrics()
    follower = LogFollower(store, Policy.from_file(REPO / "policies" / "default.yaml"), 1.0,
                           metrics=metrics, drift_every_s=60)
    follower.once()
    labels = {"kind": "score", "surface": "comment", "category": "hate"}
    assert metrics.registry.get_sample_value("referee_drift_alert", labels) == 2.0
    assert metrics.registry.get_sample_value("referee_drift_psi", labels) > 0.25
    store.close()


def test_only_the_lease_holder_computes_drift_and_the_serving_processes_read_it(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """Every serving process used to compute drift over the whole window itself; now the one
    follower holding the lease computes it and the others show what it stored."""
    from referee.obs import Metrics
    from referee.serve import follow

    url = f"sqlite:///{tmp_path}/log.db"
    store = Store(url)
    rng = random.Random(2)
    now = datetime.now(UTC)
    put(store, 300, now - timedelta(days=3), 0.0, "en", "r", rng)
    put(store, 300, now - timedelta(hours=20), 0.4, "en", "c", rng)
    policy = Policy.from_file(REPO / "policies" / "default.yaml")
    computed: list[int] = []
    real = follow.drift_report
    monkeypatch.setattr(follow, "drift_report", lambda *a, **k: computed.append(1) or real(*a, **k))

    serving_store = Store(url)
    serving = follow.LogFollower(serving_store, policy, 1.0, metrics=Metrics(), drift_every_s=60,
                                 follow_log=False)
    serving.once()  # nothing computed yet, nothing to show
    labels = {"kind": "score", "surface": "comment", "category": "hate"}
    assert serving.metrics is not None
    assert serving.metrics.registry.get_sample_value("referee_drift_alert", labels) is None

    holder = follow.LogFollower(store, policy, 1.0, drift_every_s=60)  # `referee follow`: no metrics
    assert holder.once()
    holder.once()  # the next tick: not due again for 60 s
    assert computed == [1]

    serving._next_drift_read = 0.0  # its next read is due (every 30 s)
    serving.once()
    assert computed == [1]  # read, not computed
    assert serving.metrics.registry.get_sample_value("referee_drift_alert", labels) == 2.0
    assert serving.metrics.registry.get_sample_value("referee_drift_psi", labels) > 0.25
    holder.close()
    serving.close()
    serving_store.close()
    store.close()
