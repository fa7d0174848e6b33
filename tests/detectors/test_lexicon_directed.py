"""The lexicon's ``directed`` rule: an insult aimed at the reader scores the rule's weight."""

from __future__ import annotations

import pytest

from referee.plugins.lexicon.detector import Directed, LexiconDetector
from referee.errors import ConfigError
from referee.model import ContentItem

LISTS = {"harassment": [("idiot", 0.5), ("moron", 0.5), ("loser", 0.4), ("fuck*", 0.3), ("fuck you", 0.9)],
         "violence": [("kill you", 0.8)]}


def score(det: LexiconDetector, text: str, category: str = "harassment") -> float:
    return max((s.score for s in det.detect(ContentItem(id="1", text=text)) if s.category == category), default=0.0)


@pytest.fixture
def det() -> LexiconDetector:
    return LexiconDetector(LISTS, directed=Directed())


@pytest.mark.parametrize("text", [
    "you are an idiot",
    "You're such a stupid idiot",
    "ur a loser",
    "shut up you idiot, nobody asked",
    "idiot u",
    "you are an ｉｄｉｏｔ",                      # full-width
    "you are an i\u200bd\u200bi\u200bo\u200bt",  # zero-width splits
    "you are an idi\u03bft",                     # one Greek letter
    "you are a l0ser",                           # leetspeak
    "you are a m.o.r.o.n",                       # dotted letters (joined with the article)
    "ｙｏｕ ａｒｅ ａ ｍｏｒｏｎ",
])
def test_aimed_insults_score_the_rule_weight(det: LexiconDetector, text: str) -> None:
    assert score(det, text) == pytest.approx(0.85)


@pytest.mark.parametrize(("text", "expected"), [
    ("what an idiot move by the referee", 0.5),  # not aimed at the reader: the list weight
    ("you are not an idiot", 0.5),              # negated
    ("you fucking rock", 0.3),                  # profanity stays under min_term_weight
    ("thank you for the song", 0.0),
])
def test_other_uses_keep_their_list_weight(det: LexiconDetector, text: str, expected: float) -> None:
    assert score(det, text) == pytest.approx(expected)


def test_ph_for_f_spelling_matches() -> None:
    det = LexiconDetector(LISTS)
    assert score(det, "phuck you") == pytest.approx(0.9)


def test_only_the_rule_categories_are_boosted(det: LexiconDetector) -> None:
    assert score(det, "i will kill you", "violence") == pytest.approx(0.8)


def test_directed_evidence_is_marked(det: LexiconDetector) -> None:
    (signal,) = det.detect(ContentItem(id="1", text="you idiot"))
    assert signal.evidence[0].detail.get("directed") is True


def test_without_the_rule_nothing_is_boosted() -> None:
    assert score(LexiconDetector(LISTS), "you are an idiot") == pytest.approx(0.5)


def test_rule_changes_the_version() -> None:
    assert LexiconDetector(LISTS).version != LexiconDetector(LISTS, directed=Directed()).version


@pytest.mark.parametrize(("value", "message"), [
    ({"categories": ["harassment"], "weight": 1.5}, "directed.weight"),
    ({"categories": ["nope"]}, "directed.categories"),
    ({"colour": 1}, "directed.colour"),
    ("yes", "directed"),
])
def test_bad_config_names_the_field(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        Directed.from_config(value, "detectors.lexicon.directed", list(LISTS))
