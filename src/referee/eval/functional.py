"""Functional tests: does the detector get each *kind* of case right?

One accuracy number hides that a model may catch "I hate [group]" and also
flag "Saying 'I hate [group]' is disgusting" (counter-speech). HateCheck
organises cases by functionality for this reason; we report accuracy per
functionality, with the non-hateful contrast functionalities (counter-speech,
reclaimed slurs, negated hate, neutral identity mentions ...) in their own
table, and per target group.

The same table works for any dataset: rows are grouped by
``meta.functionality`` when present, else by their source labels (an
AILuminate hazard, a Do-Not-Answer harm), and a row counts as right when
every label it has is predicted right at the operating thresholds.

Referee-native suites (``referee eval suite``) reuse the policy test format
(``PolicyTest``: text, surface, country, expect, expect_categories, name) and
run through the engine, so a case means the same in ``referee policy test``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from referee.detectors.base import Detector
from referee.eval.datasets import CATEGORIES, UNSAFE, Row
from referee.registry import Registry

#: Human names of HateCheck functionalities, for reports.
HATECHECK_NAMES = {
    "derog_neg_emote_h": "Strong negative emotions (explicit)",
    "derog_neg_attrib_h": "Description using very negative attributes",
    "derog_dehum_h": "Dehumanisation (explicit)",
    "derog_impl_h": "Implicit derogation",
    "threat_dir_h": "Direct threat",
    "threat_norm_h": "Threat as normative statement",
    "slur_h": "Hate expressed using slur",
    "slur_homonym_nh": "Non-hateful homonyms of slurs",
    "slur_reclaimed_nh": "Reclaimed slurs",
    "profanity_h": "Hate expressed using profanity",
    "profanity_nh": "Non-hateful use of profanity",
    "ref_subs_clause_h": "Hate expressed through reference in subsequent clauses",
    "ref_subs_sent_h": "Hate expressed through reference in subsequent sentences",
    "negate_pos_h": "Hate expressed using negated positive statement",
    "negate_neg_nh": "Non-hate expressed using negated hateful statement",
    "phrase_question_h": "Hate phrased as a question",
    "phrase_opinion_h": "Hate phrased as an opinion",
    "ident_neutral_nh": "Neutral statements using protected group identifiers",
    "ident_pos_nh": "Positive statements using protected group identifiers",
    "counter_quote_nh": "Denouncements of hate that quote it",
    "counter_ref_nh": "Denouncements of hate that make direct reference to it",
    "target_obj_nh": "Abuse targeted at objects",
    "target_indiv_nh": "Abuse targeted at individuals (not as member of a protected group)",
    "target_group_nh": "Abuse targeted at non-protected groups",
    "spell_char_swap_h": "Swaps of adjacent characters",
    "spell_char_del_h": "Missing characters",
    "spell_space_del_h": "Missing word boundaries",
    "spell_space_add_h": "Added spaces between chars",
    "spell_leet_h": "Leet speak spellings",
}


def row_correct(row: Row, scores: Mapping[str, float], thresholds: Mapping[str, float]) -> bool | None:
    """True if every known label of the row is predicted right; None if it has none."""
    verdicts = []
    for cat in CATEGORIES:
        label = row.label(cat)
        if label is not None and cat in scores:
            verdicts.append((scores[cat] >= thresholds.get(cat, 0.5)) == bool(label))
    if UNSAFE in row.labels:
        flagged = any(scores[c] >= thresholds.get(c, 0.5) for c in scores)
        verdicts.append(flagged == bool(row.labels[UNSAFE]))
    return all(verdicts) if verdicts else None


def _key(row: Row) -> str:
    if row.meta.get("functionality"):
        return str(row.meta["functionality"])
    return " + ".join(row.meta.get("source_labels") or ["(none)"])


def functional_report(
    rows: Sequence[Row], scores: Mapping[str, np.ndarray], thresholds: Mapping[str, float]
) -> dict[str, Any]:
    """Accuracy per functionality (or source label), per target group and per language."""
    by_key: dict[str, list[bool]] = defaultdict(list)
    expected: dict[str, set[str]] = defaultdict(set)
    by_group: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    by_lang: dict[str, list[bool]] = defaultdict(list)
    for i, row in enumerate(rows):
        ok = row_correct(row, {c: float(v[i]) for c, v in scores.items()}, thresholds)
        if ok is None:
            continue
        key = _key(row)
        by_key[key].append(ok)
        gold = row.any_unsafe()
        kind = "positive" if (row.label("hate") == 1 or gold == 1) else "negative"
        expected[key].add(kind)
        for g in row.groups or ("(none)",):
            by_group[g][kind].append(ok)
            by_group[g]["all"].append(ok)
        if row.meta.get("language"):
            by_lang[str(row.meta["language"])].append(ok)
    table = []
    for key in sorted(by_key):
        oks = by_key[key]
        kind = "/".join(sorted(expected[key]))
        contrast = key.endswith("_nh") or kind == "negative"
        table.append({"key": key, "name": HATECHECK_NAMES.get(key, key), "n": len(oks),
                      "accuracy": sum(oks) / len(oks), "expected": kind, "contrast": contrast})
    groups = {
        g: {kind: {"n": len(v), "accuracy": sum(v) / len(v)} for kind, v in kinds.items()}
        for g, kinds in sorted(by_group.items())
    }
    langs = {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(by_lang.items())}
    all_ok = [ok for oks in by_key.values() for ok in oks]
    return {
        "grouped_by": "functionality" if any(r.meta.get("functionality") for r in rows) else "source_labels",
        "n": len(all_ok),
        "accuracy": sum(all_ok) / len(all_ok) if all_ok else None,
        "functionalities": [t for t in table if not t["contrast"]],
        "contrast": [t for t in table if t["contrast"]],
        "groups": groups,
        "languages": langs if len(langs) > 1 else {},
    }


def run_suite(path: str | Path, policy: Any, detectors: Sequence[str] | None = None,
              registry: Registry[type[Detector]] | None = None) -> dict[str, Any]:
    """Run a YAML suite of policy test cases through the engine built from ``policy``
    (its detectors from ``registry``, by default the installed ones).

    ``detectors`` restricts the engine to those detectors, to see what one of
    them alone gets right.
    """
    from referee.engine import Engine
    from referee.engine.suite import run_cases
    from referee.policy.load import load_tests

    cases = load_tests(Path(path))
    with Engine.from_policy(policy, only=list(detectors) if detectors else None, registry=registry) as engine:
        versions = dict(engine.detector_versions)
        results = run_cases(engine, cases)
    return {
        "suite": str(path),
        "policy": {"id": policy.id, "version": policy.version},
        "detector_versions": versions,
        "n": len(results),
        "passed": sum(r.passed for r in results),
        "cases": [{"name": r.label, "text": r.case.text, "surface": r.case.surface, "country": r.case.country,
                   "expect": r.case.expect.value if r.case.expect else None,
                   "expect_categories": list(r.case.expect_categories) if r.case.expect_categories is not None
                   else None,
                   "action": r.decision.action.value, "categories": list(r.decision.categories),
                   "passed": r.passed, "why": r.why} for r in results],
    }
