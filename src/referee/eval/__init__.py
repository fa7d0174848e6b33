"""Evaluation: labelled datasets, metrics with confidence intervals, fairness,
functional tests, reports and regression gates (docs/evaluation.md)."""

from referee.eval.compare import compare, gate
from referee.eval.datasets import (
    CATEGORIES,
    FORMATS,
    DatasetCard,
    Row,
    dedup_key,
    import_dataset,
    import_with_card,
    load_rows,
    split_rows,
    write_rows,
)
from referee.eval.fairness import bias_report
from referee.eval.functional import functional_report, run_suite
from referee.eval.metrics import binary_report, evaluate
from referee.eval.report import build_result, read_result, render_html, write_html, write_json
from referee.eval.runner import Scores, build_detector, score_detector, score_engine

__all__ = [
    "CATEGORIES",
    "FORMATS",
    "DatasetCard",
    "Row",
    "Scores",
    "bias_report",
    "binary_report",
    "build_detector",
    "build_result",
    "compare",
    "dedup_key",
    "evaluate",
    "functional_report",
    "gate",
    "import_dataset",
    "import_with_card",
    "load_rows",
    "read_result",
    "render_html",
    "run_suite",
    "score_detector",
    "score_engine",
    "split_rows",
    "write_html",
    "write_json",
    "write_rows",
]
