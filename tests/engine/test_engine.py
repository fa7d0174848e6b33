from __future__ import annotations

from datetime import datetime, timezone

import pytest

from referee.engine import Engine, decide
from referee.model import Action, ContentItem, DetectorFailure, Signal
from referee.policy import Policy
from referee.store import DecisionStore
from tests.conftest import KeywordDetector

NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)


def item(text: str, surface: str = "comment", country: str | None = None, id: str = "i1") -> ContentItem:
    return ContentItem(id=id, text=text, surface=surface, country=country)


def sig(category: str, score: float, detector: str = "keyword", threshold: float | None = None) -> Signal:
    return Signal(detector=detector, detector_version="k1", category=category, score=score,
                  operating_threshold=threshold)


def test_most_severe_rule_wins_and_every_fired_rule_is_a_reason(small_policy: Policy) -> None:
    d = decide(small_policy, item("x"), [sig("hate", 0.95), sig("spam", 0.6)], now=NOW)
    assert d.action is Action.remove
    assert d.strike is True
    assert [r.rule_id for r in d.reasons] == ["comment.hate.remove", "comment.hate.review", "comment.spam"]
    assert d.categories == ("hate", "spam")
    assert "0.95" in d.reasons[0].message and "comment.hate.remove" in d.reasons[0].message
    assert d.policy_id == "small" and d.policy_version == "1"


def test_below_every_threshold_is_allowed(small_policy: Policy) -> None:
    d = decide(small_policy, item("x"), [sig("hate", 0.49)], now=NOW)
    assert d.action is Action.allow and d.reasons == () and not d.review_required


def test_jurisdiction_lowers_threshold(small_policy: Policy) -> None:
    signals = [sig("hate", 0.75)]
    assert decide(small_policy, item("x", country="US"), signals).action is Action.hold_for_review
    assert decide(small_policy, item("x", country="DE"), signals).action is Action.remove


def test_review_action_sets_review_required(small_policy: Policy) -> None:
    d = decide(small_policy, item("x"), [sig("hate", 0.6)])
    assert d.action is Action.hold_for_review and d.review_required


def test_model_default_uses_the_signals_operating_threshold() -> None:
    policy = Policy.from_yaml(
        "id: m\nversion: '1'\ncategories: {hate: {description: h}}\n"
        "surfaces:\n  default:\n    rules:\n      - {id: r, categories: hate, threshold: model_default, action: remove}\n"
    )
    assert decide(policy, item("x"), [sig("hate", 0.3, threshold=0.25)]).action is Action.remove
    assert decide(policy, item("x"), [sig("hate", 0.3, threshold=0.35)]).action is Action.allow
    assert decide(policy, item("x"), [sig("hate", 0.3)]).action is Action.allow  # falls back to 0.5


def test_on_error_is_policy(small_policy: Policy) -> None:
    failure = DetectorFailure(detector="keyword", detector_version="k1", kind="timeout", message="slow")
    d = decide(small_policy, item("x"), [], [failure])
    # hate rules say hold_for_review on error, the spam rule says allow: the most severe wins.
    assert d.action is Action.hold_for_review
    kinds = {r.rule_id: (r.kind, r.action) for r in d.reasons}
    assert kinds["comment.spam"] == ("on_error", Action.allow)
    assert kinds["comment.hate.review"] == ("on_error", Action.hold_for_review)
    assert d.failures == (failure,)


def test_engine_runs_detector_on_the_whole_batch(small_policy: Policy, keyword: KeywordDetector) -> None:
    engine = Engine(small_policy, [keyword], batch_size=3)
    items = [item(f"vile vile {i}", id=f"i{i}") for i in range(7)]
    decisions = engine.moderate_many(items)
    assert keyword.batches == [3, 3, 1]
    assert [d.item_id for d in decisions] == [i.id for i in items]
    assert {d.action for d in decisions} == {Action.hold_for_review}


def test_detector_timeout_applies_on_error(small_policy: Policy) -> None:
    slow = KeywordDetector(delay_s=1.0)
    slow.timeout_s = 0.05
    d = Engine(small_policy, [slow]).moderate(item("buy buy"))
    assert d.failures and d.failures[0].kind == "timeout"
    assert d.action is Action.hold_for_review
    assert any(r.kind == "on_error" for r in d.reasons)


def test_one_poisoned_item_does_not_fail_its_batch(small_policy: Policy) -> None:
    det = KeywordDetector(fail_on="POISON")
    decisions = Engine(small_policy, [det]).moderate_many(
        [item("vile vile", id="a"), item("POISON", id="b"), item("buy", id="c")]
    )
    assert decisions[0].action is Action.hold_for_review and not decisions[0].failures
    assert decisions[1].failures[0].kind == "error" and "poisoned" in decisions[1].failures[0].message
    assert decisions[2].action is Action.limit_reach and not decisions[2].failures


def test_deterministic(small_policy: Policy) -> None:
    a = Engine(small_policy, [KeywordDetector()]).moderate(item("vile vile vile"))
    b = Engine(small_policy, [KeywordDetector()]).moderate(item("vile vile vile"))
    assert a.model_dump(exclude={"created_at"}) == b.model_dump(exclude={"created_at"})


def test_idempotent_storage(small_policy: Policy, tmp_path) -> None:
    store = DecisionStore(f"sqlite:///{tmp_path}/d.db")
    det = KeywordDetector()
    engine = Engine(small_policy, [det], sink=store)
    first = engine.moderate(item("vile vile vile"))
    again = engine.moderate(item("vile vile vile"))
    assert again == first  # the stored decision, created_at included
    assert det.batches == [1]  # the second call never ran the detector
    assert len(store.list_decisions()) == 1
    changed = engine.moderate(item("vile vile vile edited"))
    assert changed.decision_id != first.decision_id
    assert len(store.history("i1")) == 2


def test_from_policy_builds_detectors_from_the_registry_it_is_given(small_policy: Policy) -> None:
    from referee.detectors import Detector
    from referee.registry import Registry

    registry = Registry.of("detector", [("keyword", KeywordDetector)], base_cls=Detector)
    engine = Engine.from_policy(small_policy, registry=registry)
    assert [d.name for d in engine.detectors] == ["keyword"]


def test_a_registry_with_extra_detectors_is_a_value_no_other_caller_sees(small_policy: Policy) -> None:
    from referee.detectors import detector_registry
    from referee.errors import PolicyError

    mine = detector_registry({"keyword": KeywordDetector})
    assert {"keyword", "lexicon"} <= set(mine.names())  # the installed detectors and the extra one
    assert "keyword" not in detector_registry()  # nothing was registered into the process
    with Engine.from_policy(small_policy, registry=mine) as engine:
        assert [d.name for d in engine.detectors] == ["keyword"]
    with pytest.raises(PolicyError, match="Unknown detector 'keyword'"):
        Engine.from_policy(small_policy)


def test_unknown_detector_name_lists_choices(small_policy: Policy) -> None:
    from referee.errors import PolicyError

    policy = Policy.from_yaml(small_policy.raw.replace("keyword: {}", "nosuchdetector: {}"))
    with pytest.raises(PolicyError, match=r"small.yaml|<memory>.*Unknown detector 'nosuchdetector'. .*Available:"):
        Engine.from_policy(policy)


def test_batch_with_a_repeated_item_stores_one_decision(small_policy: Policy, tmp_path) -> None:
    store = DecisionStore(f"sqlite:///{tmp_path}/d.db")
    engine = Engine(small_policy, [KeywordDetector()], sink=store)
    a, b, c = engine.moderate_many([item("buy", id="x"), item("buy", id="x"), item("vile vile", id="y")])
    assert a.decision_id == b.decision_id
    assert len(store.list_decisions()) == 2
    assert engine.moderate_many([item("buy", id="x")])[0] == a


def test_item_times_are_kept_in_utc_and_the_hash_ignores_them() -> None:
    from datetime import datetime, timedelta, timezone

    berlin = ContentItem(id="t", text="x", created_at=datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1))))
    naive = ContentItem(id="t", text="x", created_at=datetime(2026, 3, 1, 12, 0))
    assert berlin.created_at == naive.created_at and berlin.created_at.utcoffset() == timedelta(0)
    assert berlin.content_hash == ContentItem(id="t", text="x").content_hash


def test_a_decisions_json_is_cached_and_a_changed_copy_gets_its_own(small_policy: Policy) -> None:
    from referee.engine import decide

    first = decide(small_policy, ContentItem(id="j", text="vile"), [], (), {"k": "1"})
    untouched = first.model_copy()
    cached = first.json_bytes
    assert cached == first.model_dump_json().encode() and first.json_bytes is cached
    assert first == untouched  # the cache is not part of what a decision is
    review = first.model_copy(update={"action": Action.allow, "source": "review"})
    assert review.json_bytes == review.model_dump_json().encode() != cached


class InlineKeyword(KeywordDetector):
    """The same detector, declared bounded CPU work: the engine runs it in the caller's thread."""

    runs_inline = True

    def detect_many(self, items):  # type: ignore[no-untyped-def]
        import threading

        self.thread = threading.current_thread()
        return super().detect_many(items)


def test_an_inline_detector_runs_in_the_callers_thread_beside_the_pool(small_policy: Policy) -> None:
    import threading

    class Pooled(KeywordDetector):
        name = "pooled"

        def detect_many(self, items):  # type: ignore[no-untyped-def]
            self.thread = threading.current_thread()
            return super().detect_many(items)

    inline, pooled = InlineKeyword(), Pooled()
    engine = Engine(small_policy, [inline, pooled])
    d = engine.moderate(item("vile vile"))
    assert inline.thread is threading.current_thread()
    assert pooled.thread is not threading.current_thread()
    assert {s.detector for s in d.signals} == {"keyword", "pooled"} and not d.failures


def test_an_inline_detector_that_overruns_is_a_timeout_like_any_other(small_policy: Policy) -> None:
    slow = InlineKeyword(delay_s=0.2)
    slow.timeout_s = 0.05
    d = Engine(small_policy, [slow]).moderate(item("vile vile"))
    assert d.failures and d.failures[0].kind == "timeout" and not d.signals
    assert any(r.kind == "on_error" for r in d.reasons)


def test_an_items_hash_is_computed_once_and_a_changed_copy_gets_its_own() -> None:
    original = ContentItem(id="h", text="first")
    digest = original.content_hash
    assert original.content_hash is digest
    changed = original.model_copy(update={"parts": ContentItem(id="h", text="second").parts})
    assert changed.content_hash == ContentItem(id="h", text="second").content_hash != digest
    assert "content_hash" not in original.model_dump()
