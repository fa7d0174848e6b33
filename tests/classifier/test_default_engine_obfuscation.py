"""The default policy with the shipped model (lexicon + classifier, as the engine combines them):
obfuscated second-person insults are acted on; benign idioms with violent words are not held."""

from __future__ import annotations

from pathlib import Path

import pytest

from referee.classifier import ModelRegistry
from referee.classifier.artifact import ONNX_INT8, TOKENIZER
from referee.eval import loso
from referee.eval.datasets import Row
from referee.policy import load_policy

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.model

#: One per kind the issue lists (full-width, zero-width splits, one Greek letter, ph-for-f, dotted
#: letters) plus leetspeak, Cyrillic and spaced-out variants.
OBFUSCATED = [
    "you are an ｉｄｉｏｔ", "ｙｏｕ ａｒｅ ａ ｍｏｒｏｎ", "you are an i\u200bd\u200bi\u200bo\u200bt",
    "you are an idi\u03bft", "you are a st\u03c5pid loser", "phuck you", "you are a l0ser", "you are a m.o.r.o.n",
    "u r a moron", "you stupid 1d10t", "y o u  a r e  p a t h e t i c", "you worthless piece of tr\u0430sh",
    "go die in a fire you ugly cow",
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    try:
        path = ModelRegistry(REPO / "models").resolve("champion")
    except Exception as exc:
        pytest.skip(f"no default model: {exc}")
    if not ((path / ONNX_INT8).exists() and (path / TOKENIZER).exists()):
        pytest.skip("default model not built: run `referee model build`")
    return path


def _rates(model_dir: Path, texts: list[str]) -> dict[str, object]:
    rows = [Row(id=str(i), text=t) for i, t in enumerate(texts)]
    return loso.policy_flag_rates(load_policy(REPO / "policies" / "default.yaml"), {"set": rows}, model_dir,
                                  systems=["engine"])["set"]["engine"]


def test_obfuscated_second_person_insults_are_acted_on(model_dir: Path) -> None:
    out = _rates(model_dir, OBFUSCATED)
    assert out["flag_rate"] >= 0.9  # the goal: >= 90 % of such variants acted on
    assert out["categories"].get("harassment", 0) >= 0.9


def test_music_lookalikes_are_allowed(model_dir: Path) -> None:
    out = _rates(model_dir, [r.text for r in loso.benign_sets(None)["music_lookalikes"]])
    assert out["flag_rate"] <= 0.05


@pytest.mark.xfail(strict=True, reason="known gap (issue 11): the shipped head scores violence 0.92 on this "
                   "idiom; no measured candidate fixed it (docs/classifier.md, leave-one-source-out)")
def test_benign_idiom_with_a_violent_verb_is_not_held(model_dir: Path) -> None:
    out = _rates(model_dir, ["I'm going to kill it at the party tonight"])
    assert out["flag_rate"] == 0.0
