"""The nudity detector: its pre/post-processing against NudeNet's own output on a benign
reference photo, and the mapping of detections to signals with regions through a scripted
model (the seam for a team's own ONNX detector). No explicit material is used."""

from __future__ import annotations

import base64
import importlib.util
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from referee.engine import Engine
from referee.errors import ConfigError
from referee.model import Action, ContentItem
from referee.plugins.nudity import NudityDetector
from referee.plugins.nudity.detector import NUDENET_LABELS
from referee.policy import Policy
from tests.conftest import SHARED

HAS_NUDENET = importlib.util.find_spec("nudenet") is not None
needs_nudenet = pytest.mark.skipif(not HAS_NUDENET, reason="needs the optional 'nudity' extra (nudenet, AGPL-3.0)")
PHOTO = SHARED / "datasets" / "pdq_test_vectors" / "images" / "reg-test-input" / "labelme-subset" / "q0291.jpg"


class Input:
    name = "images"


class ScriptedSession:
    """Answers every run with the given detections: (label, score, cx, cy, w, h) in model pixels."""

    def __init__(self, detections: list[tuple[str, float, float, float, float, float]], anchors: int = 50) -> None:
        self.out = np.zeros((1, 4 + len(NUDENET_LABELS), anchors), dtype=np.float32)
        for k, (label, score, cx, cy, w, h) in enumerate(detections):
            self.out[0, :4, k] = (cx, cy, w, h)
            self.out[0, 4 + NUDENET_LABELS.index(label), k] = score
        self.inputs: list[np.ndarray] = []

    def get_inputs(self) -> list[Input]:
        return [Input()]

    def run(self, output_names: object, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.inputs.append(feeds["images"])
        return [self.out]


def image_item(img: Image.Image, id: str = "a1") -> ContentItem:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return ContentItem(id=id, surface="profile_avatar", parts=[
        {"kind": "image", "id": "avatar", "data": base64.b64encode(buf.getvalue()).decode()}])


def test_detections_become_signals_with_regions_in_the_original_image() -> None:
    session = ScriptedSession([
        ("FEMALE_BREAST_EXPOSED", 0.81, 160, 80, 40, 20),   # kept
        ("FEMALE_BREAST_EXPOSED", 0.70, 162, 81, 40, 20),   # the same box again: suppressed (NMS)
        ("FEMALE_BREAST_COVERED", 0.90, 100, 100, 30, 30),  # not mapped to a category
        ("BUTTOCKS_EXPOSED", 0.30, 50, 50, 10, 10),          # below min_score
    ])
    det = NudityDetector(session=session, min_score=0.4)
    (signal,) = det.detect(image_item(Image.new("RGB", (640, 480), (90, 90, 90))))
    assert signal.category == "sexual" and signal.score == pytest.approx(0.81, abs=1e-6)
    (ev,) = signal.evidence
    # 640x480 is padded to 640x640 and scaled by 2 to the 320 model input: the box scales back.
    assert ev.part_id == "avatar" and ev.entry == "FEMALE_BREAST_EXPOSED" and ev.region == (280, 140, 80, 40)
    (blob,) = session.inputs
    assert blob.shape == (1, 3, 320, 320) and blob.dtype == np.float32 and 0.0 <= blob.min() <= blob.max() <= 1.0
    assert blob[0, :, 300, 10].max() == 0.0  # the padding (below the image) is black


def test_a_policy_maps_the_signal_to_an_action_and_a_corrupt_image_is_a_failure() -> None:
    policy = Policy.from_yaml("""
id: avatars
version: "1"
categories:
  sexual: {description: Sexual content., severity: high}
detectors:
  nudity: {}
surfaces:
  default:
    rules:
      - {id: sexual.review, categories: sexual, threshold: 0.6, action: hold_for_review}
""")
    det = NudityDetector(session=ScriptedSession([("MALE_GENITALIA_EXPOSED", 0.77, 100, 100, 20, 20)]),
                         policy_categories=policy.categories)
    with Engine(policy, [det]) as engine:
        d = engine.moderate(image_item(Image.new("RGB", (320, 320))))
        assert d.action is Action.hold_for_review and d.signals[0].evidence[0].region == (90, 90, 20, 20)
        bad = ContentItem(id="b", parts=[{"kind": "image", "id": "avatar", "data": base64.b64encode(b"junk").decode()}])
        assert any("part avatar: not a readable image" in f.message for f in engine.moderate(bad).failures)


def test_an_unknown_label_in_the_mapping_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"detectors\.nudity\.categories: unknown labels \['NOSUCH'\]"):
        NudityDetector(session=ScriptedSession([]), categories={"NOSUCH": "sexual"})


@needs_nudenet
def test_a_drawn_picture_raises_nothing_with_the_real_model() -> None:
    img = Image.new("RGB", (512, 384), (40, 120, 200))
    draw = ImageDraw.Draw(img)
    draw.ellipse([100, 80, 300, 280], fill=(250, 200, 60))
    draw.rectangle([320, 200, 480, 360], fill=(30, 160, 60))
    assert NudityDetector().detect(image_item(img)) == []


@needs_nudenet
@pytest.mark.shared
def test_preprocessing_reproduces_nudenets_own_detections_on_a_reference_photo() -> None:
    if not PHOTO.exists():
        pytest.skip(f"needs ../shared/datasets/pdq_test_vectors; not found at {PHOTO}")
    # NudeNet 3.4.2's NudeDetector().detect() on this (benign street) photo gave
    # FACE_MALE 0.62 at [118, 38, 24, 21] and FACE_MALE 0.56 at [154, 38, 25, 22].
    found = NudityDetector(min_score=0.25).detections(Image.open(PHOTO).convert("RGB"))
    assert [label for label, *_ in found] == ["FACE_MALE", "FACE_MALE"]
    for (_, score, region), (want_score, want_region) in zip(found, [(0.62, (118, 38, 24, 21)),
                                                                     (0.56, (154, 38, 25, 22))]):
        assert score == pytest.approx(want_score, abs=0.03)
        assert all(abs(a - b) <= 2 for a, b in zip(region, want_region)), region
