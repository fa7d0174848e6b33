"""Leave-one-source-out evaluation and the benign look-alike false-positive tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from referee.eval import loso
from referee.eval.datasets import Row
from referee.policy import load_policy

from .conftest import DATASETS, REPO, needs_shared

POLICY = REPO / "policies" / "default.yaml"


def test_source_metrics_two_class_and_positives_only() -> None:
    rows = [Row(id=f"r{i}", text="t", labels={"hate": i % 2, **({"spam": 1} if i < 4 else {})}) for i in range(8)]
    good = np.zeros((8, 8), dtype=np.float32)
    good[:, 0] = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.1, 0.95]  # hate: perfectly ranked
    good[:4, 6] = [0.9, 0.2, 0.9, 0.9]                       # spam: 3 of 4 positives over 0.5
    bad = np.zeros((8, 8), dtype=np.float32)
    bad[:, 0] = 1 - good[:, 0]
    thr = np.full(8, 0.5, dtype=np.float32)
    out = loso.source_metrics(rows, {"good": good, "bad": bad}, {"good": thr, "bad": thr})
    assert out["hate"]["good"]["auprc"] == pytest.approx(1.0) and out["hate"]["good"]["roc_auc"] == pytest.approx(1.0)
    assert out["hate"]["bad"]["roc_auc"] == pytest.approx(0.0)
    assert out["hate"]["good"]["recall"] == pytest.approx(1.0) and out["hate"]["good"]["fpr"] == pytest.approx(0.0)
    # spam is positives only: a share caught, never an AUPRC
    assert out["spam"]["good"] == {"recall": 0.75}
    assert "auprc" not in out["spam"]["bad"]


def test_leave_one_source_out_trains_without_the_held_out_source() -> None:
    pytest.importorskip("torch")
    from referee.classifier.train import TrainConfig

    rng = np.random.default_rng(0)
    rows, vecs = [], []
    for source in ("a", "b", "c"):
        for i in range(120):
            y = i % 2
            v = rng.normal(size=16).astype(np.float32)
            v[0] += 3.0 * y  # the same signal in every source
            v[1 + "abc".index(source)] += 2.0  # and a source fingerprint
            split = "train" if i < 80 else "dev" if i < 100 else "test"
            rows.append(Row(id=f"{source}{i}", text=f"{source} text {i}", labels={"harassment": y},
                            split=split, meta={"source": source}))
            vecs.append(v / np.linalg.norm(v))
    corpus = loso.Corpus(rows, np.stack(vecs), ["a", "b", "c"])
    cfg = TrainConfig(categories=list(loso.CATEGORIES), hidden=0, lr=5e-2, epochs=30, progress=False)
    out = loso.leave_one_source_out(corpus, load_policy(POLICY), ["a", "c"], config=cfg, train_sources=["a", "b"])
    assert set(out) == {"a", "c"}
    # "a" held out: trained on b only; "c" is outside the mix: trained on a and b
    assert out["a"]["train_rows"] == 80 and out["c"]["train_rows"] == 160
    m = out["a"]["metrics"]["harassment"]
    assert m["n"] == 120 and m["referee"]["roc_auc"] > 0.75
    assert "lexicon" in m  # the baselines score the same rows
    assert loso.summary(out)["n_category"] == 2


def test_music_lookalikes_ship_with_the_package() -> None:
    sets = loso.benign_sets(None)
    texts = [r.text for r in sets["music_lookalikes"]]
    assert len(texts) >= 40 and "killer bassline on this one" in texts
    from referee.eval.corpus import BENIGN_MUSIC

    training = set(loso.read_lines(BENIGN_MUSIC))
    assert not training & set(texts), "the false-positive set must not be in the training negatives"


OBFUSCATED_INSULTS = [
    "you are an ｉｄｉｏｔ",
    "ｙｏｕ ａｒｅ ａ ｍｏｒｏｎ",
    "you are an i\u200bd\u200bi\u200bo\u200bt",
    "you are a w\u200bo\u200br\u200bt\u200bh\u200bl\u200be\u200bs\u200bs loser",
    "you are an idi\u03bft",
    "you are a st\u03c5pid loser",
    "phuck you",
    "you are a l0ser",
    "you are a m.o.r.o.n",
    "u r a moron",
    "you stupid 1d10t",
]


def test_default_policy_acts_on_obfuscated_second_person_insults() -> None:
    """Through the default policy's rules (comment surface) with the lexicon alone."""
    rows = [Row(id=str(i), text=t) for i, t in enumerate(OBFUSCATED_INSULTS)]
    out = loso.policy_flag_rates(load_policy(POLICY), {"insults": rows}, None, systems=["lexicon"])
    assert out["insults"]["lexicon"]["flag_rate"] == 1.0
    assert out["insults"]["lexicon"]["categories"].get("harassment") == 1.0


def test_default_lexicon_leaves_music_idioms_alone() -> None:
    out = loso.policy_flag_rates(load_policy(POLICY), loso.benign_sets(None), None, systems=["lexicon"])
    assert out["music_lookalikes"]["lexicon"]["flag_rate"] <= 0.05


def test_markdown_tables() -> None:
    res = {"s": {"metrics": {"any": {"n": 4, "pos": 2, "referee": {"auprc": 0.5, "roc_auc": 0.6},
                                     "lexicon": {"recall": 0.25}}}}}
    text = loso.loso_markdown(res, systems=("referee", "lexicon"))
    assert "| s | any | 4 | 2 | 0.500 / 0.60 | caught 25% |" in text
    fp = loso.fp_markdown({"music": {"n": 10, "lexicon": {"flag_rate": 0.1}}}, systems=("lexicon", "engine"))
    assert "| music | 10 | 10.0% | – |" in fp


@pytest.mark.shared
@needs_shared("coconot")
@needs_shared("hatecheck")
def test_benign_sets_from_shared() -> None:
    sets = loso.benign_sets(DATASETS)
    assert len(sets["coconot_contrast"]) > 100
    assert sets["hatecheck_benign"] and all(r.label("hate") == 0 for r in sets["hatecheck_benign"])
    assert not any(r.meta.get("functionality") in loso.HATECHECK_ABUSE_NH for r in sets["hatecheck_benign"])
    assert "hatecheck:target_indiv_nh" in sets


@pytest.mark.shared
@needs_shared("toxic_spans")
@needs_shared("convabuse")
@needs_shared("edos_sexism")
def test_new_real_comment_formats(tmp_path: Path) -> None:
    from referee.eval.datasets import import_dataset
    from referee.eval.formats import CONVABUSE_EXCLUDE

    spans = import_dataset("toxic_spans", DATASETS / "toxic_spans")
    assert len(spans) > 15_000 and all(r.labels.get("unsafe") == 1 for r in spans)
    assert sum(r.label("harassment") == 1 for r in spans) > 7_000
    conv = import_dataset("convabuse", DATASETS / "convabuse")
    assert not {float(r.id.split("-")[1]) for r in conv} & CONVABUSE_EXCLUDE
    assert {r.label("harassment") for r in conv} == {0, 1}
    edos = import_dataset("edos", DATASETS / "edos_sexism")
    assert {r.split for r in edos} == {"train", "dev", "test"} and sum(r.label("hate") == 1 for r in edos) == 4854
