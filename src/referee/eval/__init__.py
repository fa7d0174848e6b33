"""Evaluation: labelled datasets, metrics with confidence intervals, fairness,
functional tests, reports and regression gates (docs/evaluation.md).

The names below load their module on first use (PEP 562): the metrics pull in
scikit-learn and SciPy, seconds of start-up that a command reading only a dataset
constant (``referee review``, the log follower that ``referee serve`` starts) should
not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Loaded now, not on first use: ``compare`` is also the name of its module, and importing a
# submodule sets the package's attribute of that name to the module, which would then shadow
# the function (``from referee.eval import compare`` returned the module). Light: NumPy only.
from referee.eval.compare import compare, gate  # noqa: E402

_MODULE_OF = {
    **dict.fromkeys(("CATEGORIES", "FORMATS", "DatasetCard", "Row", "dedup_key", "import_dataset",
                     "import_with_card", "load_rows", "split_rows", "write_rows"), "datasets"),
    "bias_report": "fairness",
    **dict.fromkeys(("functional_report", "run_suite"), "functional"),
    **dict.fromkeys(("binary_report", "evaluate"), "metrics"),
    **dict.fromkeys(("build_result", "read_result", "render_html", "write_html", "write_json"), "report"),
    **dict.fromkeys(("Scores", "build_detector", "score_detector", "score_engine"), "runner"),
}

__all__ = [
    "CATEGORIES", "FORMATS", "DatasetCard", "Row", "Scores", "bias_report", "binary_report",
    "build_detector", "build_result", "compare", "dedup_key", "evaluate", "functional_report", "gate",
    "import_dataset", "import_with_card", "load_rows", "read_result", "render_html", "run_suite",
    "score_detector", "score_engine", "split_rows", "write_html", "write_json", "write_rows",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found once, then an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
