"""One conformance suite over every registered detector (the scikit-learn
``check_estimator`` idea): whatever a detector does inside, it keeps the contract
the engine relies on. The detectors are enumerated from the registry, so a plugin
that registers itself is checked without anybody adding it here."""

from __future__ import annotations

import base64

import pytest

from referee.detectors.base import Detector, build_detector, detector_registry
from referee.engine import Engine
from referee.errors import ConfigError, ModelError, PolicyError
from referee.model import ContentItem
from referee.policy import Policy
from tests.conftest import REPO

POLICY = Policy.from_file(REPO / "policies" / "default.yaml")
REGISTRY = detector_registry()
NAMES = REGISTRY.names()

ITEMS = [
    ContentItem(id="plain", text="Loved the new single, the chorus is great."),
    ContentItem(id="nasty", text="I will k1ll you, you w0rthless idiot. FREE FOLLOWERS click here"),
    ContentItem(id="unicode", text="ｆｒｅｅ ｆｏｌｌｏｗｅｒｓ \u200b😀 مرحبا 你好 \U0001f600" * 3),
    ContentItem(id="long", text="a calm sentence about music and touring. " * 2000, surface="podcast_episode"),
]


def build(name: str) -> Detector:
    try:
        return build_detector(name, POLICY, REGISTRY)
    except ModelError as exc:
        pytest.skip(f"{name}: {exc}")


def test_every_detector_the_default_policy_names_is_registered() -> None:
    assert set(POLICY.document.detectors) <= set(NAMES)


@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.model) if n == "classifier" else n
                                        for n in NAMES])
def detector(request) -> Detector:
    return build(request.param)


def test_identity(detector: Detector) -> None:
    assert detector.name and isinstance(detector.version, str) and detector.version
    assert set(detector.categories) <= set(POLICY.categories)
    assert detector.timeout_s > 0 and detector.reads


def test_batch_matches_single_and_is_deterministic(detector: Detector) -> None:
    batch = detector.detect_many(ITEMS)
    assert len(batch) == len(ITEMS)
    for item, signals in zip(ITEMS, batch):
        single = detector.detect(item)
        assert [(s.category, round(s.score, 4)) for s in single] == [(s.category, round(s.score, 4)) for s in signals]
    assert detector.detect_many(ITEMS) == batch


def test_evidence_lies_inside_the_part_it_names(detector: Detector) -> None:
    playlist = ContentItem(id="p", surface="playlist_description", parts=[
        {"kind": "text", "id": "title", "role": "title", "text": "FREE FOLLOWERS click here"},
        {"kind": "text", "id": "desc", "role": "description", "text": "you w0rthless idiot, I will k1ll you"},
    ])
    with Engine(POLICY, [detector]) as engine:
        decision = engine.moderate(playlist)
    for s in decision.signals:
        assert s.detector == detector.name and s.detector_version == detector.version
        assert 0.0 <= s.score <= 1.0
        for ev in s.evidence:
            assert ev.part_id in {"title", "desc"}, ev
            part = playlist.part(ev.part_id)
            if ev.start is not None:
                assert 0 <= ev.start < ev.end <= len(part.text)


def test_parts_of_kinds_it_does_not_read_are_ignored(detector: Detector) -> None:
    text = ContentItem(id="k", text="you w0rthless idiot")
    image = {"kind": "image", "id": "cover", "data": base64.b64encode(b"not an image").decode()}
    both = ContentItem(id="k", parts=[*text.parts, image])
    with Engine(POLICY, [detector]) as engine:
        alone, mixed = engine.moderate(text), engine.moderate(both)
    assert [(s.category, s.score) for s in alone.signals] == [(s.category, s.score) for s in mixed.signals]
    if "image" not in detector.reads:  # (and the text too, for a detector that reads no text)
        unread = tuple(p.id for p in both.parts if p.kind not in detector.reads)
        assert any(r.kind == "uninspected" and r.parts == unread for r in mixed.reasons)


def test_its_own_examples_score_as_declared(detector: Detector) -> None:
    examples = type(detector).examples()
    assert examples, f"{detector.name} ships no examples(); add a few for this suite"
    for example in examples:
        scores = {s.category: s.score for s in detector.detect(example.item)}
        if example.category is None:
            assert all(v < 0.5 for v in scores.values()), (example.item.text, scores)
        else:
            assert scores.get(example.category, 0.0) >= example.min_score, (example.item.text, scores)


def test_bad_settings_are_named_with_the_detector_and_the_key(detector: Detector) -> None:
    raw = POLICY.raw
    if f"\n  {detector.name}:\n" not in raw:  # a plugin the default policy does not configure
        raw = raw.replace("\ndetectors:\n", f"\ndetectors:\n  {detector.name}:\n    optional: true\n", 1)
    raw = raw.replace(f"\n  {detector.name}:\n", f"\n  {detector.name}:\n    nosuch_setting: 1\n", 1)
    with pytest.raises(PolicyError, match=rf"detectors\.{detector.name}\.nosuch_setting: unknown setting"):
        Engine.from_policy(Policy.from_yaml(raw, source=str(REPO / "policies" / "x.yaml")), registry=REGISTRY)
    with pytest.raises(ConfigError, match=rf"detectors\.{detector.name}\.nosuch_setting"):
        build_detector(detector.name, _with_setting(detector.name), REGISTRY)


def _with_setting(name: str) -> Policy:
    class Patched(Policy):
        def detector_config(self, n: str):  # type: ignore[no-untyped-def]
            return {**super().detector_config(n), "nosuch_setting": 1} if n == name else super().detector_config(n)

    return Patched(POLICY.document, source=POLICY.source, raw=POLICY.raw)


def test_close_is_idempotent(detector: Detector) -> None:
    fresh = build(detector.name)
    fresh.close()
    fresh.close()


def test_empty_batch(detector: Detector) -> None:
    assert detector.detect_many([]) == []
