"""ClassifierDetector: signals per shared category, operating thresholds, a missing model says how to fix it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from referee.detectors.base import detector_registry
from referee.plugins.classifier.detector import ClassifierDetector
from referee.errors import ConfigError, ModelError
from referee.model import ContentItem
from referee.policy import Policy

POLICY = """
id: t
version: "1"
categories:
  harassment: {description: insults}
  hate: {description: attacks on groups}
detectors:
  classifier: {model: champion, models_dir: models}
surfaces:
  default:
    rules:
      - {id: r, categories: "*", threshold: model_default, action: hold_for_review}
"""


class FakeClassifier:
    categories = ["harassment", "spam"]
    thresholds = {"harassment": 0.7, "spam": 0.4}
    version = "fake@123/int8"

    def predict_with_spans(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        probs = np.array([[0.9 if "idiot" in t else 0.1, 0.2] for t in texts], dtype=np.float32)
        spans = np.array([[[0, len(t)], [0, len(t)]] for t in texts])
        windows = np.array([3 if len(t) > 20 else 1 for t in texts])
        if len(texts) and len(texts[0]) > 20:
            spans[0, 0] = (4, 9)
        return probs, spans, windows


def test_signals_only_for_categories_the_policy_has() -> None:
    det = ClassifierDetector(FakeClassifier(), categories=["harassment", "hate"])
    assert det.categories == ("harassment",)
    items = [ContentItem(id="1", text="you idiot"), ContentItem(id="2", text="   "), ContentItem(id="3", text="hi")]
    out = det.detect_many(items)
    assert [s.category for s in out[0]] == ["harassment"]
    assert out[0][0].score == pytest.approx(0.9) and out[0][0].operating_threshold == 0.7
    assert out[0][0].detector == "classifier" and out[0][0].detector_version == "fake@123/int8+norm"
    assert out[1] == []  # nothing to score
    assert out[2][0].score == pytest.approx(0.1)
    assert det.detect(items[0]) == out[0]
    assert out[0][0].evidence == ()  # one window: nothing to point at


def test_long_text_evidence_points_at_the_window() -> None:
    det = ClassifierDetector(FakeClassifier())
    item = ContentItem(id="1", text="the idiot part is here, then more text")
    (sig, spam) = det.detect(item)
    (ev,) = sig.evidence
    assert (ev.start, ev.end) == (4, 9) and item.text[ev.start:ev.end] == "idiot" and ev.detail == {"window_of": 3}


def test_registered_under_its_name() -> None:
    assert detector_registry().get("classifier") is ClassifierDetector


def test_missing_model_raises_model_error_with_fix(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    policy = Policy.from_file(tmp_path / "p.yaml")
    with pytest.raises(ModelError, match=r"detectors.classifier.model: .*make model"):
        ClassifierDetector.from_policy(policy, policy.detector_config("classifier"))


def test_bad_config_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    policy = Policy.from_file(tmp_path / "p.yaml")
    with pytest.raises(ConfigError, match="detectors.classifier.variant"):
        ClassifierDetector.from_policy(policy, {"variant": "fp16"})


def test_from_policy_loads_a_registry_model(tmp_path: Path, tiny_model: Path) -> None:
    import shutil

    from referee.classifier import ModelRegistry

    shutil.copytree(tiny_model, tmp_path / "models" / "tiny")
    ModelRegistry(tmp_path / "models").promote("tiny")
    (tmp_path / "p.yaml").write_text(POLICY)
    policy = Policy.from_file(tmp_path / "p.yaml")
    det = ClassifierDetector.from_policy(policy, policy.detector_config("classifier"))
    assert det.categories == ("harassment",)
    assert det.version.startswith("tiny@")
    (sig,) = det.detect(ContentItem(id="1", text="you are a worthless idiot"))
    assert 0.0 <= sig.score <= 1.0 and sig.operating_threshold is not None
