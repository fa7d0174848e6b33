"""Shared pieces of the LLM tests and the cascade benchmark: a policy with an llm stage and a
cheap first-stage detector whose scores are easy to place in or out of a band."""

from __future__ import annotations

from typing import Any

import yaml

from referee.detectors.base import Detector, DetectorConfig, detector_registry
from referee.model import ContentItem, Evidence, Signal
from referee.policy import Policy
from referee.registry import Registry

CATEGORIES = {
    "violence": {"description": "Threats or incitement of violence against people.", "severity": "high",
                 "examples": ["I will kill you tonight."], "counter_examples": ["This track kills, what a banger."]},
    "hate": {"description": "Attacks on people for a protected characteristic.", "severity": "high",
             "examples": ["[group] are vermin."], "counter_examples": ["Calling people vermin is vile."]},
    "harassment": {"description": "Insults and bullying aimed at a person.", "severity": "medium",
                   "examples": ["You worthless idiot."], "counter_examples": ["The chorus is stupidly catchy."]},
    "spam": {"description": "Unsolicited commercial messages.", "severity": "low",
             "examples": ["FREE FOLLOWERS click here"], "counter_examples": ["Link to the tour dates in bio."]},
}

#: The triage detector's word scores: clear words score high, ambiguous ones land in the band.
TRIAGE_WORDS = {
    "violence": {"stab": 0.95, "murder": 0.95, "shoot": 0.5, "hurt": 0.5, "fight": 0.4},
    "hate": {"vermin": 0.95, "parasites": 0.5},
    "harassment": {"idiot": 0.85, "loser": 0.5},
    "spam": {"click here": 0.95, "followers": 0.5},
}


class TriageConfig(DetectorConfig):
    pass


class TriageDetector(Detector):
    """A keyword first stage (stands in for lexicon/classifier): instant, deterministic."""

    name = "triage"
    version = "t1"
    config_model = TriageConfig
    runs_inline = True

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(TRIAGE_WORDS)

    def detect(self, item: ContentItem) -> list[Signal]:
        text = item.text.lower()
        out = []
        for cat, words in TRIAGE_WORDS.items():
            hits = [(w, s) for w, s in words.items() if w in text]
            if hits:
                word, score = max(hits, key=lambda h: h[1])
                start = text.index(word)
                out.append(Signal(detector=self.name, detector_version=self.version, category=cat, score=score,
                                  evidence=(Evidence(start=start, end=start + len(word), entry=word),)))
        return out

    @classmethod
    def build(cls, config: DetectorConfig, context: Any) -> "TriageDetector":
        return cls()


def registry() -> Registry[type[Detector]]:
    """The installed detectors (the LLM among them) and ``triage``."""
    return detector_registry({"triage": TriageDetector})


def policy_doc(llm: dict[str, Any] | None, plan: list[dict[str, Any]] | None = None,
               on_error: str = "hold_for_review", version: str = "1") -> dict[str, Any]:
    rules = [
        {"id": "violence.remove", "categories": ["violence", "hate"], "threshold": 0.8, "action": "remove",
         "on_error": on_error},
        {"id": "harassment.limit", "categories": "harassment", "threshold": 0.8, "action": "limit_reach",
         "on_error": on_error},
        {"id": "spam.limit", "categories": "spam", "threshold": 0.8, "action": "limit_reach", "on_error": on_error},
    ]
    doc: dict[str, Any] = {
        "id": "llm-test", "version": version, "categories": CATEGORIES,
        "detectors": {"triage": {}, **({"llm": llm} if llm is not None else {})},
        "surfaces": {"default": {"rules": rules}},
        "on_uninspected": "hold_for_review",
    }
    if plan is not None:
        doc["plan"] = plan
    return doc


def make_policy(llm: dict[str, Any] | None, plan: list[dict[str, Any]] | None = None, **kw: Any) -> Policy:
    return Policy.from_yaml(yaml.safe_dump(policy_doc(llm, plan, **kw), sort_keys=False), source="llm-test.yaml")


def cascade_plan(band: tuple[float, float] = (0.2, 0.8), run_async: bool = False,
                 categories: list[str] | str = "*") -> list[dict[str, Any]]:
    return [{"id": "fast", "detectors": ["triage"]},
            {"id": "second_look", "detectors": ["llm"], "async": run_async,
             "when": {"band": {"categories": categories, "min": band[0], "max": band[1]}}}]
