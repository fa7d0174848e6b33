"""The classifier also scores the lexicon's normalised spelling; the higher score wins per category."""

from __future__ import annotations

import numpy as np
import pytest

from referee.plugins.lexicon.normalize import Normalizer, readable
from referee.plugins.classifier.detector import ClassifierDetector, plain_words
from referee.model import ContentItem


class KeywordClassifier:
    """harassment 0.9 when the plain word 'idiot' is in the text it is given, else 0.1."""

    categories = ["harassment", "spam"]
    thresholds = {"harassment": 0.7, "spam": 0.4}
    version = "kw@1/int8"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def predict_with_spans(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.seen.extend(texts)
        probs = np.array([[0.9 if "idiot" in t else 0.1, 0.2] for t in texts], dtype=np.float32)
        spans = np.array([[[0, len(t)], [0, len(t)]] for t in texts])
        return probs, spans, np.ones(len(texts), dtype=np.int64)


OBFUSCATED = {
    "full-width": "you are an ｉｄｉｏｔ",
    "zero-width": "you are an i\u200bd\u200bi\u200bo\u200bt",
    "one greek letter": "you are an idi\u03bft",  # Greek small omicron
    "cyrillic": "you are an \u0456d\u0456ot",
    "leetspeak": "you are an 1d10t",
    "dotted letters": "you are an i.d.i.o.t",
    "dashed letters": "you are an i-d-i-o-t",
}


@pytest.mark.parametrize("text", OBFUSCATED.values(), ids=OBFUSCATED.keys())
def test_obfuscated_text_scores_as_its_normalised_spelling(text: str) -> None:
    det = ClassifierDetector(KeywordClassifier())
    (harassment, spam) = det.detect(ContentItem(id="1", text=text))
    assert harassment.score == pytest.approx(0.9)
    assert harassment.evidence and harassment.evidence[0].detail == {"normalised_text": True}
    assert (harassment.evidence[0].start, harassment.evidence[0].end) == (0, len(text))
    assert spam.score == pytest.approx(0.2) and spam.evidence == ()  # the raw score was as high


@pytest.mark.parametrize("text", OBFUSCATED.values(), ids=OBFUSCATED.keys())
def test_raw_only_when_switched_off(text: str) -> None:
    det = ClassifierDetector(KeywordClassifier(), normalised_text=False)
    (harassment, _) = det.detect(ContentItem(id="1", text=text))
    assert harassment.score == pytest.approx(0.1)


def test_plain_text_is_scored_once() -> None:
    clf = KeywordClassifier()
    det = ClassifierDetector(clf)
    texts = ["Great song, love it!", "I'm here for the bass", "you idiot"]
    out = det.detect_many([ContentItem(id=str(i), text=t) for i, t in enumerate(texts)])
    assert clf.seen == texts  # nothing differed from its plain words: no second pass
    assert out[2][0].score == pytest.approx(0.9) and out[2][0].evidence == ()


def test_elongation_and_numbers_alone_are_not_rescored() -> None:
    clf = KeywordClassifier()
    det = ClassifierDetector(clf)
    texts = ["sooooo good", "back in the 1950s", "@dj_k1ll3r great set", "see www.example.com/x1y2"]
    det.detect_many([ContentItem(id=str(i), text=t) for i, t in enumerate(texts)])
    assert clf.seen == texts


def test_version_says_normalised_scoring() -> None:
    assert ClassifierDetector(KeywordClassifier()).version != ClassifierDetector(
        KeywordClassifier(), normalised_text=False).version


@pytest.mark.parametrize(("text", "expected"), [
    ("You are a ｓｔｕｐｉｄ ｉｄｉｏｔ", "you are a stupid idiot"),
    ("you are a m.o.r.o.n", "you are a moron"),
    ("fuuuck you b1tch", "fuck you bitch"),
    ("I'm going to kill it at the party", "im going to kill it at the party"),
    ("see you at 3.30", "see you at 3 30"),
])
def test_readable_keeps_words_a_model_can_read(text: str, expected: str) -> None:
    assert readable(Normalizer(), text) == expected


def test_plain_words_matches_readable_on_plain_text() -> None:
    n = Normalizer()
    for text in ("Great song, love it!", "I'm here for the bass", "Check out bit.ly/xyz now"):
        assert readable(n, text) == plain_words(text)
