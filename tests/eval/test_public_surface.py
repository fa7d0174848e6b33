"""The public surface of referee.eval is pinned: adding or removing a name is a deliberate change."""

import referee.eval


def test_public_names() -> None:
    assert referee.eval.__all__ == [
        "CATEGORIES", "FORMATS", "DatasetCard", "Row", "Scores", "bias_report", "binary_report",
        "build_detector", "build_result", "compare", "dedup_key", "evaluate", "functional_report", "gate",
        "import_dataset", "import_with_card", "load_rows", "read_result", "render_html", "run_suite",
        "score_detector", "score_engine", "split_rows", "write_html", "write_json", "write_rows",
    ]
    for name in referee.eval.__all__:
        assert getattr(referee.eval, name) is not None
