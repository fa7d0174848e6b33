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


def test_the_package_loads_its_modules_on_first_use() -> None:
    """``referee review``, the log follower and the rest of the CLI read dataset constants from
    here; importing the package must not pull in scikit-learn (seconds of start-up)."""
    import subprocess
    import sys

    code = ("import sys, referee.cli, referee.eval.datasets; "
            "print(sorted(m for m in ('sklearn', 'scipy', 'pandas', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert referee.eval.bias_report.__module__ == "referee.eval.fairness"  # and loads it when asked


def test_a_name_that_is_also_a_module_is_the_function() -> None:
    """``compare`` names a function and its module: importing the module (as the loop and the
    CLI do) must not make ``from referee.eval import compare`` the module."""
    import subprocess
    import sys

    code = ("import referee.eval.compare, referee.eval.report, referee.eval.runner; "
            "from referee.eval import compare, gate, build_result; "
            "print(callable(compare), callable(gate), callable(build_result))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True"]
