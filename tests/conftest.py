"""Shared fixtures: a small policy and fake detectors, so core tests need no model or data."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from referee.detectors.base import Detector
from referee.model import ContentItem, Signal
from referee.policy import Policy

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__import__("os").environ.get("REFEREE_SHARED", REPO.parent / "shared"))

SMALL_POLICY = """
id: small
version: "1"
categories:
  hate: {description: Attacks on protected groups., severity: high}
  spam: {description: Unsolicited commercial messages., severity: low}
detectors:
  keyword: {}
surfaces:
  default:
    rules:
      - {id: default.any, categories: "*", threshold: 0.5, action: hold_for_review}
  comment:
    rules:
      - {id: comment.hate.remove, categories: hate, threshold: 0.9, action: remove, strike: true}
      - {id: comment.hate.review, categories: hate, threshold: 0.5, action: hold_for_review}
      - {id: comment.spam, categories: spam, threshold: 0.5, action: limit_reach, on_error: allow}
jurisdictions:
  EU:
    countries: [DE, FR]
    surfaces:
      comment:
        rules:
          - {id: comment.hate.remove, categories: hate, threshold: 0.7, action: remove, strike: true}
"""


class KeywordDetector(Detector):
    """Scores 'hate' by counting the word 'vile', 'spam' by 'buy'. Deterministic, instant."""

    name = "keyword"
    version = "k1"

    def __init__(self, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.batches: list[int] = []

    @property
    def categories(self) -> tuple[str, ...]:
        return ("hate", "spam")

    def detect(self, item: ContentItem) -> list[Signal]:
        if self.fail_on and self.fail_on in item.text:
            raise RuntimeError("poisoned item")
        words = item.text.lower().split()
        return [
            Signal(detector=self.name, detector_version=self.version, category="hate",
                   score=min(1.0, 0.3 * words.count("vile"))),
            Signal(detector=self.name, detector_version=self.version, category="spam",
                   score=min(1.0, 0.6 * words.count("buy"))),
        ]

    def detect_many(self, items: Sequence[ContentItem]) -> list[list[Signal]]:
        self.batches.append(len(items))
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self.detect(i) for i in items]

    @classmethod
    def from_policy(cls, policy: object, config: dict) -> "KeywordDetector":
        return cls(**config)


@pytest.fixture
def small_policy() -> Policy:
    return Policy.from_yaml(SMALL_POLICY, source="small.yaml")


@pytest.fixture
def keyword() -> KeywordDetector:
    return KeywordDetector()


def requires_shared(path: str = "datasets") -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not (SHARED / path).exists(),
        reason=f"needs ../shared/{path} (the shared datasets folder beside the repo); not present here",
    )
