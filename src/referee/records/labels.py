"""Reviewer and appeal outcomes as training labels, in the referee dataset format.

``export_labels(desk, categories, since)`` gives one JSON row per item that a person
labelled, as ``referee.eval.datasets.Row.to_json`` writes them (``id``, ``text``, one
0/1 key per category, ``meta``), ready for ``referee train``:

- the item's **latest** labelling verdict wins (appeal outcomes and senior verdicts
  included; escalations label nothing);
- a person judged the whole item against the policy, so every category in
  ``categories`` is known: 1 if the verdict kept it and acts (not ``allow``), else 0;
  ``unsafe`` (when asked for) is 1 if the verdict's action is not ``allow``;
- items whose verdicts disagree are kept with ``meta.conflict: true`` and every label
  seen (``meta.labels``), so a trainer can drop or down-weight them;
- text is the item's text parts (one per line) from the content store; erased content
  is left out (counted in ``LabelExport.erased``).

The format's label keys live in ``referee.eval`` (a layer above this one), so the caller
passes them (``referee labels export`` passes ``LABEL_KEYS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from referee.model import Action
from referee.records.review import ReviewDesk, VerdictRecord

__all__ = ["LabelExport", "export_labels"]

UNSAFE = "unsafe"


@dataclass
class LabelExport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    conflicts: int = 0
    erased: int = 0


def _signature(v: VerdictRecord) -> tuple[str, tuple[str, ...]]:
    action = v.action.value if v.action else "none"
    return action, () if v.action is Action.allow else tuple(sorted(v.categories))


def export_labels(desk: ReviewDesk, categories: Sequence[str], since: float | None = None) -> LabelExport:
    by_item: dict[str, list[VerdictRecord]] = {}
    for v in desk.verdicts(since=since):
        if v.verdict == "escalate" or v.action is None:
            continue
        by_item.setdefault(v.item_id, []).append(v)
    out = LabelExport()
    decisions = desk.store.log.get_many([vs[-1].decision_id for vs in by_item.values()])
    for item_id, vs in sorted(by_item.items()):
        latest = vs[-1]  # verdicts come in the order they were recorded
        decision = decisions.get(latest.decision_id)
        item = desk.store.content.get(item_id, decision.content_hash) if decision else None
        if item is None:
            out.erased += 1
            continue
        text = "\n".join(getattr(p, "text", "") for p in item.parts if getattr(p, "kind", "") == "text")
        acts = latest.action is not Action.allow
        row: dict[str, Any] = {"id": item_id, "text": text}
        for c in categories:
            row[c] = int(acts) if c == UNSAFE else int(acts and c in latest.categories)
        seen = sorted({_signature(v) for v in vs})
        meta: dict[str, Any] = {
            "source": "appeal" if latest.kind == "appeal" else "review",
            "reviewer": latest.reviewer_id, "verdict": latest.verdict,
            "action": latest.action.value if latest.action else None,
            "decision_id": latest.new_decision_id or latest.decision_id,
            "labelled_at": datetime.fromtimestamp(latest.recorded_at, timezone.utc).isoformat(),
        }
        if len(seen) > 1:
            out.conflicts += 1
            meta["conflict"] = True
            meta["labels"] = [{"action": a, "categories": list(cs)} for a, cs in seen]
        row["meta"] = meta
        out.rows.append(row)
    return out
