"""The identity sentences: every group named as often in benign as in hateful text."""

from __future__ import annotations

from collections import Counter

from referee.eval.identity import BENIGN, GROUPS, HATEFUL, identity_rows


def test_each_group_is_balanced_between_benign_and_hateful() -> None:
    rows = identity_rows(per_group=6)
    by_group = Counter((r["group"], r["labels"]["hate"]) for r in rows)
    for _, adj in GROUPS:
        assert by_group[(adj, 0)] == by_group[(adj, 1)] == 6


def test_labels_say_only_what_the_sentence_shows() -> None:
    for r in identity_rows(per_group=3):
        if r["labels"]["hate"] == 1:
            # a call for harm may be violence, abuse of a group may not target a person: unknown
            assert "violence" not in r["labels"] and "harassment" not in r["labels"]
            assert all(v == 0 for k, v in r["labels"].items() if k != "hate")
        else:
            assert set(r["labels"].values()) == {0} and len(r["labels"]) == 8


def test_generation_is_deterministic_and_templates_fill_cleanly() -> None:
    assert identity_rows(seed=5) == identity_rows(seed=5)
    assert identity_rows(seed=5) != identity_rows(seed=6)
    texts = [r["text"] for r in identity_rows(per_group=len(BENIGN))]
    assert not any("{" in t or "}" in t for t in texts)
    assert len(HATEFUL) == len(BENIGN)
    # one template's sentences share a group key, so a split never sees the wording twice
    keys = {r["group_key"] for r in identity_rows()}
    assert len(keys) <= len(BENIGN) + len(HATEFUL)
