"""Fixtures for evaluation tests: small hand-made datasets and a fake detector."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("REFEREE_SHARED", REPO / ".." / "shared")).resolve()
DATASETS = SHARED / "datasets"


def needs_shared(folder: str) -> pytest.MarkDecorator:
    """Mark a test that reads ../shared/datasets/<folder>; skipped with a reason when absent."""
    return pytest.mark.skipif(
        not (DATASETS / folder).exists(),
        reason=f"needs {DATASETS / folder} (set REFEREE_SHARED to the shared folder); not present here",
    )



from referee.detectors.base import Detector, detector_registry  # noqa: E402
from referee.eval.datasets import Row  # noqa: E402
from referee.model import ContentItem, Signal  # noqa: E402
from referee.registry import Registry  # noqa: E402


class WordDetector(Detector):
    """Scores a category by the fraction of its cue words present; deterministic and instant.

    ``hate`` cues: vile, vermin; ``spam``: buy, free. It never emits other
    categories, which the runner must then score 0.0.
    """

    name = "words"
    version = "w1"
    CUES = {"hate": ("vile", "vermin"), "spam": ("buy", "free")}

    def __init__(self, operating_threshold: float | None = None) -> None:
        self.operating_threshold = operating_threshold

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.CUES)

    def detect(self, item: ContentItem) -> list[Signal]:
        words = set(item.text.lower().split())
        return [
            Signal(detector=self.name, detector_version=self.version, category=cat,
                   score=sum(c in words for c in cues) / len(cues), operating_threshold=self.operating_threshold)
            for cat, cues in self.CUES.items()
        ]

    @classmethod
    def from_policy(cls, policy: object, config: dict) -> "WordDetector":
        return cls(**config)


def small_rows() -> list[Row]:
    """Twelve rows: hate and spam labels, some unknown, identity groups, functionalities."""
    spec = [
        ("you vile vermin", {"hate": 1}, ("women",), "derog_h"),
        ("vile people those", {"hate": 1}, ("muslims",), "derog_h"),
        ("they are lovely", {"hate": 0}, ("women",), "ident_pos_nh"),
        ("vile weather today", {"hate": 0}, ("muslims",), "target_obj_nh"),
        ("i hate them all", {"hate": 1}, ("women",), "derog_h"),
        ("muslims are neighbours", {"hate": 0}, ("muslims",), "ident_pos_nh"),
        ("buy free stuff now", {"spam": 1}, (), None),
        ("buy my album", {"spam": 1}, (), None),
        ("great album", {"spam": 0}, (), None),
        ("free concert tonight", {"spam": 0}, (), None),
        ("hello there", {"hate": 0, "spam": 0}, (), None),
        ("no labels at all", {}, (), None),
    ]
    return [Row(id=f"r{i}", text=t, labels=l, groups=g, meta={"functionality": f} if f else {})
            for i, (t, l, g, f) in enumerate(spec)]


@pytest.fixture
def rows() -> list[Row]:
    return small_rows()


@pytest.fixture
def words() -> WordDetector:
    return WordDetector()


POLICY = """
id: evaltest
version: "7"
categories:
  hate: {description: Attacks on protected groups.}
  spam: {description: Unsolicited commercial messages.}
detectors:
  words: {}
surfaces:
  default:
    rules:
      - {id: default.any, categories: "*", threshold: 0.5, action: hold_for_review}
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def words_registry() -> Registry[type[Detector]]:
    """The installed detectors and ``words``: what the eval commands are handed as their context object."""
    return detector_registry({"words": WordDetector})
