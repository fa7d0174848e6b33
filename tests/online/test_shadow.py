"""Shadow mode: a candidate decides beside the champion; none of its decisions acts.

The champion runs the default policy with the hashtag detector (tests/serve); the
candidate is a more eager variant ("#maybe" scores every category 0.95), so it would
remove items the champion allows. After shadow traffic, the decision log, the review
queues, the statements of reasons and the transparency report hold exactly what a run
without the shadow holds."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from referee.build import EngineConfig
from referee.engine import Engine
from referee.errors import ConfigError
from referee.model import Action, ContentItem, Signal
from referee.online.shadow import (
    Candidate,
    Shadow,
    attach_shadow,
    load_candidates,
    shadow_store,
)
from referee.policy import Policy
from referee.records.reasons import Statements, export, read_export
from referee.records.review import ReviewDesk
from referee.records.transparency import TransparencyReport
from referee.store import MemoryStore, Store
from tests.serve.conftest import CATEGORIES, DEFAULT_POLICY, HashtagDetector


class EagerHashtags(HashtagDetector):
    """The candidate's detector: also '#maybe' scores every category 0.95."""

    version = "h2-eager"

    def detect(self, item: ContentItem) -> list[Signal]:
        if "#maybe" not in item.text.split():
            return super().detect(item)
        return [Signal(detector=self.name, detector_version=self.version, category=c, score=0.95)
                for c in CATEGORIES]


class Slow(HashtagDetector):
    """Blocks until released: a shadow that cannot keep up."""

    release = threading.Event()

    def detect(self, item: ContentItem) -> list[Signal]:
        self.release.wait(10)
        return super().detect(item)


def candidate_engine(detector: type[HashtagDetector] = EagerHashtags):
    def build(config: EngineConfig) -> Engine:
        assert config.store_url is None  # the shadow strips it before building
        return Engine(Policy.from_file(config.policy), [detector()], config_id=config.id)
    return build


def traffic(n: int = 40) -> list[ContentItem]:
    texts = ["a lovely song", "#maybe this is bad", "#hate you all", "#spam buy now", "#maybe again"]
    return [ContentItem(id=f"i{k}", text=f"{texts[k % len(texts)]} {k}", author_id=f"a{k % 7}",
                        country="DE" if k % 2 else "FR", surface="comment") for k in range(n)]


CANDIDATE = Candidate(name="eager", config=EngineConfig(policy=DEFAULT_POLICY, store_url="sqlite:///must-not.db"))


def run_champion(store: Store, items: list[ContentItem], shadow: bool) -> Shadow | None:
    engine = Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()], sink=store)
    s = None
    if shadow:
        s = Shadow([CANDIDATE], shadow_store(store), build=candidate_engine())
        engine.sink = s.watching(store)
    for start in range(0, len(items), 8):
        engine.moderate_many(items[start:start + 8])
    if s is not None:
        assert s.flush(10)
    engine.close()
    return s


def test_the_candidate_is_stored_as_shadow_decisions_only(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    items = traffic()
    shadow = run_champion(store, items, shadow=True)
    assert shadow is not None
    assert not Path("must-not.db").exists()
    stats = shadow.stats()
    assert (stats.observed, stats.decided, stats.stored, stats.dropped, stats.failed) == (40, 40, 40, 0, 0)
    rows = shadow_store(store).shadow_decisions("eager")
    champion = {r.decision.decision_id: r.decision for r in store.log.records()}
    assert len(champion) == 40 and len(rows) == 40
    assert {r.champion_decision_id for r in rows} == set(champion)
    # The candidate's decisions differ (it removes the '#maybe' items) and none is in the log.
    changed = [r for r in rows if r.decision.action != r.champion_action]
    assert {r.decision.item_id for r in changed} == {i.id for i in items if "#maybe" in i.text}
    assert all(r.decision.action is Action.remove for r in changed)
    assert not {r.decision.decision_id for r in rows} & set(champion)
    assert all(r.decision.engine_config_id == CANDIDATE.config.id for r in rows)
    shadow.close()
    store.close()


def test_shadow_decisions_never_reach_review_statements_or_the_transparency_report(tmp_path):
    with_shadow, without = Store(f"sqlite:///{tmp_path}/a.db"), Store(f"sqlite:///{tmp_path}/b.db")
    items = traffic()
    shadow = run_champion(with_shadow, items, shadow=True)
    run_champion(without, items, shadow=False)
    assert shadow is not None
    candidate_ids = {r.decision.decision_id for r in shadow_store(with_shadow).shadow_decisions("eager")}
    assert len(candidate_ids) == 40
    policy = Policy.from_file(DEFAULT_POLICY)

    # Review: only the champion's held items are queued.
    tasks = ReviewDesk(with_shadow, policy).sync()
    assert tasks and not {t.decision_id for t in tasks} & candidate_ids
    assert len(tasks) == len(ReviewDesk(without, policy).sync())

    # Statements of reasons: the same count, none for a candidate decision (the '#maybe' removals).
    exported = export(Statements(with_shadow.db, with_shadow.log, policy), tmp_path / "sor.jsonl")
    baseline = export(Statements(without.db, without.log, policy), tmp_path / "sor-b.jsonl")
    bodies = list(read_export(tmp_path / "sor.jsonl"))
    builder = Statements(with_shadow.db, with_shadow.log, policy).builder
    assert exported.written == baseline.written == len(bodies) > 0
    assert not {b["puid"] for b in bodies} & {builder.puid(i) for i in candidate_ids}

    # The transparency report: the same tables as without the shadow.
    year = str(next(with_shadow.log.records()).decision.created_at.year)
    a = TransparencyReport(with_shadow.db, with_shadow.log, policy).build(year)
    b = TransparencyReport(without.db, without.log, policy).build(year)
    assert {n: t.rows for n, t in a.tables.items()} == {n: t.rows for n, t in b.tables.items()}
    assert sum(1 for _ in with_shadow.log.records()) == 40
    shadow.close()
    with_shadow.close()
    without.close()


def test_a_full_queue_drops_and_counts_instead_of_slowing_the_champion():
    store = MemoryStore()
    Slow.release.clear()
    shadow = Shadow([CANDIDATE], store.shadow, queue_size=4, batch_size=1, build=candidate_engine(Slow))
    items = traffic(20)
    engine = Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()], sink=store)
    engine.sink = shadow.watching(store)
    decisions = engine.moderate_many(items)  # returns while the shadow is stuck
    assert len(decisions) == 20
    stats = shadow.stats()
    assert stats.observed == 20 and stats.dropped >= 20 - 4 - 1
    Slow.release.set()
    assert shadow.flush(10)
    assert shadow.stats().stored == 20 - shadow.stats().dropped
    shadow.close()
    engine.close()


def test_a_failing_candidate_is_counted_and_the_champion_unaffected():
    def broken(config: EngineConfig) -> Engine:
        engine = candidate_engine()(config)
        engine.moderate_many = lambda items: (_ for _ in ()).throw(RuntimeError("candidate broke"))  # type: ignore[method-assign]
        return engine
    store = MemoryStore()
    with Shadow([CANDIDATE], store.shadow, build=broken) as shadow:
        engine = Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()], sink=shadow.watching(store))
        assert len(engine.moderate_many(traffic(5))) == 5
        assert shadow.flush(10)
        assert shadow.stats().failed == 5 and shadow.stats().stored == 0
        engine.close()


def test_candidate_files_and_their_errors(tmp_path):
    good = tmp_path / "thresholds-v2.json"
    good.write_text(json.dumps({"policy": str(DEFAULT_POLICY), "detectors": ["lexicon"]}))
    (found,) = load_candidates([good])
    assert found.name == "thresholds-v2" and found.config.detectors == ("lexicon",)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"policy": str(DEFAULT_POLICY), "batch_size": 0}))
    with pytest.raises(ConfigError, match=r"bad.json: batch_size: .*greater than or equal to 1"):
        load_candidates([bad])
    with pytest.raises(ConfigError, match="cannot read"):
        load_candidates([tmp_path / "missing.json"])
    # A champion without a store has nothing to compare against.
    with pytest.raises(ConfigError, match="no decision store"):
        attach_shadow(Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()]), MemoryStore(), [good])


@pytest.mark.slow  # builds the lexicon candidate in the app's lifespan: about 10 s on the shared machine
def test_the_http_service_runs_the_candidates_of_referee_shadow(tmp_path):
    from fastapi.testclient import TestClient

    from referee.serve import create_app
    from referee.settings import Settings

    candidate = tmp_path / "lexicon-only.json"
    candidate.write_text(json.dumps({"policy": str(DEFAULT_POLICY), "detectors": ["lexicon"]}))
    settings = Settings(_env_file=None, policy=DEFAULT_POLICY, db_url=f"sqlite:///{tmp_path / 'referee.db'}",
                        auth=False, follow_s=0, shadow=[candidate], shadow_duty=1.0)
    store = Store(settings.db_url)
    engine = Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()], sink=store)
    with TestClient(create_app(settings, engine=engine, store=store)) as client:
        for k in range(3):
            r = client.post("/v1/moderate", json={"id": f"h{k}", "text": f"you are an idiot {k}"})
            assert r.status_code == 200, r.text
        records = shadow_store(store)
        for _ in range(200):
            if len(records.shadow_decisions("lexicon-only")) == 3:
                break
            threading.Event().wait(0.02)
    rows = records.shadow_decisions("lexicon-only")
    assert [r.decision.item_id for r in rows] == ["h0", "h1", "h2"]
    assert all(r.decision.detector_versions.keys() == {"lexicon"} for r in rows)
    assert sum(1 for _ in store.log.records()) == 3
    engine.close()
    store.close()


def test_a_sampled_shadow_sees_the_same_share_of_items_everywhere():
    from referee.engine.experiment import bucket

    store = MemoryStore()
    items = traffic(400)
    with Shadow([CANDIDATE], store.shadow, sample=0.25, duty=1.0, build=candidate_engine()) as shadow:
        engine = Engine(Policy.from_file(DEFAULT_POLICY), [HashtagDetector()], sink=shadow.watching(store))
        engine.moderate_many(items)
        assert shadow.flush(10)
        engine.close()
    seen = {r.decision.item_id for r in store.shadow.shadow_decisions("eager")}
    assert seen == {i.id for i in items if bucket("shadow", i.id) < 0.25}
    assert 60 < len(seen) < 140
    with pytest.raises(ConfigError, match="sample is the share"):
        Shadow([CANDIDATE], store.shadow, sample=0.0, build=candidate_engine())
    with pytest.raises(ConfigError, match="duty is the share"):
        Shadow([CANDIDATE], store.shadow, duty=1.5, build=candidate_engine())
