"""Each shared dataset converts with the documented counts and label mapping.

These read ../shared/datasets (or $REFEREE_SHARED/datasets) and skip when it is
absent; each takes well under a few seconds.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import pytest

from referee.eval.datasets import FORMATS, DatasetCard, Row, import_with_card, label_distribution

from .conftest import DATASETS, needs_shared

pytestmark = pytest.mark.shared


@lru_cache(maxsize=None)
def _imported(fmt: str) -> tuple[list[Row], DatasetCard]:
    """Each source converted once per test session (Jigsaw alone is 76k rows)."""
    return import_with_card(fmt, DATASETS / FORMATS[fmt].shared_path)

# format -> (rows, {label key: (positives, negatives)}) as documented in each SOURCE.md
# (after the documented filtering, merging of duplicates and dropping of out-of-policy records).
EXPECTED = {
    "hatecheck": (3728, {"hate": (2563, 1165)}),
    "multilingual_hatecheck": (36582, {"hate": (25511, 11071)}),
    "davidson": (24783, {"hate": (1430, 23353), "harassment": (0, 4163)}),
    "tweeteval_hate": (12970, {"hate": (1252 + 427 + 3783, 1718 + 573 + 5217)}),
    "tweeteval_offensive": (14100, {"harassment": (0, 620 + 865 + 7975)}),
    "toxigen": (991, {"hate": (546, 445)}),
    "ethos": (998, {"hate": (433, 565), "violence": (142, 291)}),
    "jigsaw_templates": (76564, {"unsafe": (38282, 38282)}),
    "youtube_spam": (1953, {"spam": (1003, 950)}),
    "sms_spam": (5160, {"spam": (642, 4518)}),
    "toxicchat": (2801, {"unsafe": (384, 2417)}),
    "coconot": (802, {"unsafe": (182, 620)}),
    "do_not_answer": (285, {"sexual": (30, 0), "self_harm": (20, 0), "hate": (56, 0)}),
    "ailuminate": (1600, {"sexual_minors": (200, 0), "sexual": (400, 0), "self_harm": (200, 0)}),
    "advbench": (1094, {"unsafe": (1094, 0)}),
    "strongreject": (263, {"illegal_goods": (109, 0), "sexual": (50, 0), "violence": (54, 0)}),
    "reddit_cssrs": (500, {"self_harm": (171 + 77 + 45, 108)}),
    "germeval_violence": (18352, {"violence": (814, 17408)}),
    "do_not_answer_responses": (4972, {"sexual": (20, 4900), "harassment": (16, 4900), "any": (72, 4900)}),
    "wiki_identity": (1492, {"unsafe": (248, 1244)}),
    "wiki_context": (20000, {"unsafe": (210, 19790)}),
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_shared_dataset_imports(fmt: str) -> None:
    spec = FORMATS[fmt]
    folder = DATASETS / spec.shared_path
    if not folder.exists():
        pytest.skip(f"needs {folder} (set REFEREE_SHARED to the shared folder); not present here")
    rows, card = _imported(fmt)
    n, labels = EXPECTED[fmt]
    assert len(rows) == n
    dist = label_distribution(rows)
    for key, (pos, neg) in labels.items():
        assert (dist[key]["positive"], dist[key]["negative"]) == (pos, neg), key
    assert card.source_files and all(len(h) == 64 for h in card.source_files.values())
    assert len({r.id for r in rows}) == len(rows)
    # Never invent labels: every category a format's mapping cannot produce stays unknown.
    reachable = {k for target in card.mapping.values() for k in target}
    assert {k for k, d in dist.items() if k != "any" and (d["positive"] or d["negative"])} <= reachable


@needs_shared("hatecheck")
def test_hatecheck_keeps_functionality_and_groups() -> None:
    rows, _ = _imported("hatecheck")
    first = rows[0]
    assert first.text == "I hate women. " and first.labels == {"hate": 1}
    assert first.groups == ("women",) and first.meta["functionality"] == "derog_neg_emote_h"
    assert Counter(r.meta["functionality"] for r in rows)["slur_reclaimed_nh"] == 81
    assert sum(not r.groups for r in rows) == 292


@needs_shared("tweeteval")
def test_tweeteval_keeps_official_splits() -> None:
    rows, _ = _imported("tweeteval_hate")
    assert Counter(r.split for r in rows) == {"train": 9000, "dev": 1000, "test": 2970}


@needs_shared("toxigen")
def test_toxigen_is_deduplicated_with_groups() -> None:
    rows, card = _imported("toxigen")
    assert len({r.text.strip() for r in rows}) == len(rows)
    assert all(r.groups for r in rows)
    assert "women" in {g for r in rows for g in r.groups}


@needs_shared("jigsaw_sentence_templates")
def test_jigsaw_groups_match_longest_identity_first() -> None:
    rows, _ = _imported("jigsaw_templates")
    groups = Counter(g for r in rows for g in r.groups)
    assert "african american" in groups and "middle aged" in groups
    # Only the 864 "you_occupation" templates name no identity.
    assert sum(1 for r in rows if not r.groups) == 864
