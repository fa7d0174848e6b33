"""One conformance suite for every detector referee ships (the scikit-learn
``check_estimator`` idea): whatever a detector does inside, it keeps the
contract the engine relies on."""

from __future__ import annotations

import pytest

from referee.detectors.base import Detector, build_detector
from referee.errors import ModelError
from referee.model import ContentItem
from referee.policy import Policy
from tests.conftest import REPO

POLICY = Policy.from_file(REPO / "policies" / "default.yaml")

ITEMS = [
    ContentItem(id="empty", text=""),
    ContentItem(id="plain", text="Loved the new single, the chorus is great."),
    ContentItem(id="nasty", text="I will k1ll you, you w0rthless idiot. FREE FOLLOWERS click here"),
    ContentItem(id="unicode", text="ｆｒｅｅ ｆｏｌｌｏｗｅｒｓ \u200b😀 مرحبا 你好 \U0001f600" * 3),
    ContentItem(id="long", text="a calm sentence about music and touring. " * 2000, surface="podcast_episode"),
]


def build(name: str) -> Detector:
    try:
        return build_detector(name, POLICY)
    except ModelError as exc:
        pytest.skip(f"{name}: {exc}")


@pytest.fixture(scope="module", params=["lexicon", pytest.param("classifier", marks=pytest.mark.model)])
def detector(request) -> Detector:
    return build(request.param)


def test_identity(detector: Detector) -> None:
    assert detector.name and isinstance(detector.version, str) and detector.version
    assert set(detector.categories) <= set(POLICY.categories)
    assert detector.timeout_s > 0


def test_batch_matches_single_and_is_deterministic(detector: Detector) -> None:
    batch = detector.detect_many(ITEMS)
    assert len(batch) == len(ITEMS)
    for item, signals in zip(ITEMS, batch):
        single = detector.detect(item)
        assert [(s.category, round(s.score, 4)) for s in single] == [(s.category, round(s.score, 4)) for s in signals]
    assert detector.detect_many(ITEMS) == batch


def test_signals_are_well_formed(detector: Detector) -> None:
    for item, signals in zip(ITEMS, detector.detect_many(ITEMS)):
        assert len({s.category for s in signals}) == len(signals), "one signal per category"
        for s in signals:
            assert s.detector == detector.name and s.detector_version == detector.version
            assert s.category in detector.categories
            assert 0.0 <= s.score <= 1.0
            for ev in s.evidence:
                if ev.start is not None:
                    assert 0 <= ev.start < ev.end <= len(item.text)
                    if ev.text is not None:
                        assert item.text[ev.start : ev.end] == ev.text


def test_empty_batch(detector: Detector) -> None:
    assert detector.detect_many([]) == []
