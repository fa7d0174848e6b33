"""Evaluation: labelled datasets, metrics with confidence intervals, fairness,
functional tests, reports and regression gates."""

from referee.eval.datasets import (
    CATEGORIES,
    FORMATS,
    DatasetCard,
    Row,
    import_dataset,
    import_with_card,
    load_rows,
    split_rows,
    write_rows,
)

__all__ = [
    "CATEGORIES",
    "FORMATS",
    "DatasetCard",
    "Row",
    "import_dataset",
    "import_with_card",
    "load_rows",
    "split_rows",
    "write_rows",
]
