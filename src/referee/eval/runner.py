"""Runs a detector (or the whole engine) over a dataset and collects scores.

Evaluation sees a detector exactly as the engine does: built from the policy
by name, fed ``ContentItem`` batches. A category the detector did not emit a
signal for scores 0.0 ("nothing found"), so a detector is judged on every
category of the policy, including those it cannot see. With ``engine`` the
score of a category is the decision itself: 1.0 if the decision flagged it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from referee.detectors.base import Detector
from referee.detectors.base import build_detector as build_detector  # re-exported: evaluation builds detectors as the engine does
from referee.errors import ConfigError
from referee.eval.datasets import CATEGORIES, Row
from referee.eval.metrics import Labelled
from referee.model import MAX_TEXT_CHARS, ContentItem, Signal
from referee.registry import Registry

#: Threshold when neither the user nor the detector's signals name one.
DEFAULT_THRESHOLD = 0.5


@dataclass
class Scores:
    """Per-row scores of one run, plus what produced them."""

    ids: list[str]
    categories: list[str]
    scores: dict[str, np.ndarray]
    thresholds: dict[str, float]
    source: dict[str, Any] = field(default_factory=dict)

    def labelled(self, rows: Sequence[Row]) -> Labelled:
        """Pair the scores with the rows' labels (-1 = unknown) for ``metrics.evaluate``."""
        by_id = {r.id: r for r in rows}
        ordered = [by_id[i] for i in self.ids]
        labels = {c: np.array([-1 if r.label(c) is None else r.label(c) for r in ordered], dtype=np.int8)
                  for c in self.categories}
        any_labels = np.array([-1 if (v := r.any_unsafe()) is None else v for r in ordered], dtype=np.int8)
        return Labelled(ids=self.ids, categories=self.categories, scores=self.scores, labels=labels,
                        any_labels=any_labels)

    def rows_json(self) -> list[dict[str, Any]]:
        return [{"id": rid, "scores": {c: round(float(self.scores[c][i]), 6) for c in self.categories}}
                for i, rid in enumerate(self.ids)]


def to_item(row: Row, surface: str = "comment", country: str | None = None) -> ContentItem:
    """A dataset row as the item a detector sees; surface, country and language
    come from the row's meta when it has them."""
    meta = row.meta
    return ContentItem(
        id=row.id[:256],
        text=row.text[:MAX_TEXT_CHARS],
        surface=str(meta.get("surface") or surface),
        country=meta.get("country") or country,
        language=meta.get("language"),
    )


def _run_batches(
    rows: Sequence[Row],
    batch_size: int,
    surface: str,
    progress: Callable[[int], None] | None,
    run: Callable[[list[ContentItem]], Sequence[Any]],
    fill: Callable[[int, Any], None],
    who: str,
) -> None:
    """Feed rows to ``run`` batch by batch and hand each answer to ``fill`` with its row index.
    A wrong answer count is an error, not a silent zero: a broken scorer must not look cautious."""
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        outputs = run([to_item(r, surface) for r in batch])
        if len(outputs) != len(batch):
            raise ConfigError(f"{who} returned {len(outputs)} results for {len(batch)} items")
        for j, output in enumerate(outputs):
            fill(start + j, output)
        if progress:
            progress(len(batch))


def score_detector(
    detector: Detector,
    rows: Sequence[Row],
    categories: Sequence[str] = CATEGORIES,
    batch_size: int = 64,
    surface: str = "comment",
    progress: Callable[[int], None] | None = None,
) -> Scores:
    """Score every row; a failing batch is an error, not a silent zero, so a
    broken detector cannot look like a cautious one."""
    cats = list(categories)
    index = {c: i for i, c in enumerate(cats)}
    matrix = np.zeros((len(rows), len(cats)))
    thresholds: dict[str, float] = {}

    def fill(i: int, signals: list[Signal]) -> None:
        _fill(matrix[i], signals, index, thresholds)

    _run_batches(rows, batch_size, surface, progress, detector.detect_many, fill, f"detector {detector.name!r}")
    return Scores(
        ids=[r.id for r in rows],
        categories=cats,
        scores={c: matrix[:, i] for c, i in index.items()},
        thresholds={c: thresholds.get(c, DEFAULT_THRESHOLD) for c in cats},
        source={"kind": "detector", "name": detector.name, "version": detector.version,
                "categories": list(detector.categories),
                "threshold_source": {c: "detector" if c in thresholds else "default" for c in cats}},
    )


def _fill(out: np.ndarray, signals: list[Signal], index: dict[str, int], thresholds: dict[str, float]) -> None:
    for s in signals:
        i = index.get(s.category)
        if i is None:
            continue
        out[i] = max(out[i], s.score)
        if s.operating_threshold is not None:
            thresholds.setdefault(s.category, s.operating_threshold)


def score_engine(
    policy: Any,
    rows: Sequence[Row],
    categories: Sequence[str] = CATEGORIES,
    batch_size: int = 64,
    surface: str = "comment",
    progress: Callable[[int], None] | None = None,
    registry: Registry[type[Detector]] | None = None,
) -> Scores:
    """Score by decision: 1.0 for each category the engine's decision flags
    (its detectors built from ``registry``, by default the installed ones).

    The engine is imported here, not at module level, so evaluation of a
    single detector does not pull in the engine and its thread pool.
    """
    from referee.engine import Engine

    cats = list(categories)
    matrix = np.zeros((len(rows), len(cats)))
    index = {c: i for i, c in enumerate(cats)}
    versions: dict[str, str] = {}
    with Engine.from_policy(policy, registry=registry) as engine:
        versions = dict(engine.detector_versions)

        def fill(i: int, decision: Any) -> None:
            for cat in decision.categories:
                if cat in index:
                    matrix[i, index[cat]] = 1.0

        _run_batches(rows, batch_size, surface, progress, engine.moderate_many, fill, "the engine")
    return Scores(
        ids=[r.id for r in rows],
        categories=cats,
        scores={c: matrix[:, i] for c, i in index.items()},
        thresholds={c: 0.5 for c in cats},
        source={"kind": "engine", "name": "engine", "version": ",".join(f"{k}={v}" for k, v in versions.items()),
                "detector_versions": versions, "surface": surface},
    )


def load_predictions(path: Any, rows: Sequence[Row], categories: Sequence[str] = CATEGORIES) -> Scores:
    """Scores from a predictions JSONL (``{"id", "scores": {category: float}}``), e.g.
    written by another system; ids must cover the dataset."""
    import json
    from pathlib import Path

    from referee.errors import InputError

    cats = list(categories)
    by_id: dict[str, dict[str, float]] = {}
    with Path(path).open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                by_id[str(obj["id"])] = {k: float(v) for k, v in obj["scores"].items()}
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise InputError(f"expected {{\"id\": ..., \"scores\": {{category: number}}}}: {exc}",
                                 where=f"{path}:{lineno}") from exc
    missing = [r.id for r in rows if r.id not in by_id]
    if missing:
        raise InputError(f"{len(missing)} dataset rows have no prediction (first: {missing[0]!r})", where=str(path))
    matrix = {c: np.array([by_id[r.id].get(c, 0.0) for r in rows]) for c in cats}
    return Scores(ids=[r.id for r in rows], categories=cats, scores=matrix, thresholds={c: 0.5 for c in cats},
                  source={"kind": "predictions", "name": str(path), "version": ""})
