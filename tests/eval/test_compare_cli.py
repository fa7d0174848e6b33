"""Paired comparison, the regression gate, and the `referee data` / `referee eval` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from referee.cli import data as data_cli
from referee.cli import eval as eval_cli
from referee.eval.compare import compare, gate
from referee.eval.datasets import Row, load_rows, write_rows
from referee.eval.report import build_result
from referee.eval.runner import Scores
from tests.eval.conftest import words_registry


def _app() -> typer.Typer:
    app = typer.Typer()
    data_cli.register(app)
    eval_cli.register(app)
    return app


runner = CliRunner()
#: The installed detectors and the tests' word counter, handed to the commands as their context object.
REGISTRY = words_registry()


def _synthetic(n: int = 600, seed: int = 0) -> tuple[list[Row], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    rows = [Row(id=f"r{i}", text=f"t{i}", labels={"hate": int(y[i])}) for i in range(n)]
    return rows, y


def _result(rows: list[Row], s: np.ndarray, name: str) -> dict:
    scores = Scores(ids=[r.id for r in rows], categories=["hate"], scores={"hate": s}, thresholds={"hate": 0.5},
                    source={"kind": "detector", "name": name, "version": "1"})
    return build_result(rows, scores, n_boot=0)


def test_gate_fails_on_a_planted_regression_and_passes_on_noise() -> None:
    rows, y = _synthetic()
    rng = np.random.default_rng(1)
    good = np.clip(0.35 * y + rng.random(len(y)) * 0.65, 0, 1)
    # Candidate: same model, but a quarter of the positives lose their signal.
    broken = good.copy()
    hit = (y == 1) & (rng.random(len(y)) < 0.25)
    broken[hit] = rng.random(hit.sum()) * 0.65
    tiny = np.clip(good + rng.normal(0, 0.001, len(y)), 0, 1)
    base = _result(rows, good, "base")
    worse = compare(base, _result(rows, broken, "cand"), ("auprc",), n_boot=300)
    entry = worse["views"]["hate"]["auprc"]
    assert entry["delta"] < -0.02 and entry["hi"] < 0
    failures = gate(worse, "auprc", max_drop=0.01)
    assert {f["view"] for f in failures} >= {"hate", "macro"}
    same = compare(base, _result(rows, tiny, "cand"), ("auprc",), n_boot=300)
    assert gate(same, "auprc", max_drop=0.01) == []
    # A drop larger than tolerated is still let through when the tolerance is larger.
    assert gate(worse, "auprc", max_drop=0.5) == []


def test_gate_on_an_error_metric_flags_increases() -> None:
    rows, y = _synthetic(seed=3)
    base = np.where(y == 1, 0.9, 0.1)
    worse = base.copy()
    worse[(y == 0)] = np.where(np.arange((y == 0).sum()) % 3 == 0, 0.8, 0.1)  # a third of negatives flagged
    cmp = compare(_result(rows, base, "a"), _result(rows, worse, "b"), ("fpr",), n_boot=200)
    assert cmp["views"]["hate"]["fpr"]["delta"] > 0.3
    assert [f["view"] for f in gate(cmp, "fpr", 0.01)][:1] == ["hate"]


def test_compare_is_paired_on_ids_in_any_order() -> None:
    rows, y = _synthetic(200)
    s = np.where(y == 1, 0.7, 0.3)
    a = _result(rows, s, "a")
    b = _result(list(reversed(rows)), s[::-1].copy(), "b")
    cmp = compare(a, b, ("auprc", "f1"), n_boot=50)
    assert cmp["views"]["hate"]["auprc"]["delta"] == 0.0
    assert cmp["views"]["hate"]["f1"]["lo"] == 0.0 == cmp["views"]["hate"]["f1"]["hi"]


def _dataset(tmp_path: Path) -> Path:
    from .conftest import small_rows

    path = tmp_path / "small.jsonl"
    write_rows(small_rows(), path)
    return path


def test_cli_eval_run_compare_gate(tmp_path: Path, policy_file: Path) -> None:
    app = _app()
    data = _dataset(tmp_path)
    res = runner.invoke(app, ["eval", "run", "--data", str(data), "--detector", "words", "--policy",
                              str(policy_file), "--out", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html"),
                              "--predictions", str(tmp_path / "a.pred.jsonl"), "--bootstrap", "50"],
                        obj=REGISTRY)
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["detector"]["name"] == "words" and result["policy"]["id"] == "evaltest"
    preds = [json.loads(x) for x in (tmp_path / "a.pred.jsonl").read_text().splitlines()]
    assert preds[0] == {"id": "r0", "scores": {"hate": 1.0, "spam": 0.0}}
    assert (tmp_path / "a.html").read_text().startswith("<!doctype html>")
    # Candidate from a predictions file that zeroes every score.
    (tmp_path / "zero.jsonl").write_text("".join(json.dumps({"id": p["id"], "scores": {}}) + "\n" for p in preds))
    res = runner.invoke(app, ["eval", "run", "--data", str(data), "--scores-from", str(tmp_path / "zero.jsonl"),
                              "--policy", str(policy_file), "--out", str(tmp_path / "b.json"), "--bootstrap", "0"],
                        obj=REGISTRY)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                              "--bootstrap", "100"])
    assert res.exit_code == 0, res.output
    assert "paired bootstrap" in res.output
    res = runner.invoke(app, ["eval", "summary", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                              "--markdown", str(tmp_path / "s.md")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.md").read_text().count("| small |") == 2
    res = runner.invoke(app, ["eval", "gate", "--baseline", str(tmp_path / "a.json"), "--candidate",
                              str(tmp_path / "a.json"), "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", "gate", "--baseline", str(tmp_path / "a.json"), "--candidate",
                              str(tmp_path / "b.json"), "--metric", "recall", "--bootstrap", "200"])
    assert res.exit_code == 1, res.output


def test_cli_eval_errors_are_clean(tmp_path: Path, policy_file: Path) -> None:
    app = _app()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\nnot json\n')
    res = runner.invoke(app, ["eval", "run", "--data", str(bad), "--detector", "words", "--policy",
                              str(policy_file), "--out", str(tmp_path / "x.json")],
                        obj=REGISTRY)
    assert res.exit_code == 2 and "bad.jsonl:2" in res.output
    res = runner.invoke(app, ["eval", "run", "--data", str(_dataset(tmp_path)), "--detector", "nope",
                              "--policy", str(policy_file), "--out", str(tmp_path / "x.json")],
                        obj=REGISTRY)
    assert res.exit_code == 2 and "Unknown detector 'nope'" in res.output
    res = runner.invoke(app, ["eval", "run", "--data", str(_dataset(tmp_path)), "--split", "test",
                              "--detector", "words", "--policy", str(policy_file), "--out", str(tmp_path / "x.json")],
                        obj=REGISTRY)
    assert res.exit_code == 2 and "referee data split" in res.output


def test_cli_data_import_split_card(tmp_path: Path) -> None:
    app = _app()
    src = tmp_path / "prompts.csv"
    src.write_text("prompt,label\n" + "".join(f"prompt {chr(97 + i % 26)}{chr(97 + i // 26)},{'unsafe' if i % 3 else 'safe'}\n"
                                              for i in range(60)))
    out = tmp_path / "p.jsonl"
    res = runner.invoke(app, ["data", "import", str(src), "--format", "safe_unsafe_csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p.card.json").exists()
    res = runner.invoke(app, ["data", "split", str(out), "--seed", "13", "--ratios", "0.5,0.25,0.25"])
    assert res.exit_code == 0, res.output
    assert {r.split for r in load_rows(out)} == {"train", "dev", "test"}
    res = runner.invoke(app, ["data", "card", str(out), "--json"])
    card = json.loads(res.output)
    assert card["split_seed"] == 13 and card["licence"] and card["labels"]["unsafe"]["positive"] == 40
    assert set(card["splits"]) == {"train", "dev", "test"}
    res = runner.invoke(app, ["data", "split", str(out), "--ratios", "0.5,0.5"])
    assert res.exit_code == 2 and "three numbers" in res.output


@pytest.mark.parametrize("cmd", [["data", "formats"], ["eval", "--help"]])
def test_cli_help_and_listing(cmd: list[str]) -> None:
    res = runner.invoke(_app(), cmd)
    assert res.exit_code == 0, res.output


def test_engine_scores_by_decision_and_suite_runs(tmp_path: Path, policy_file: Path) -> None:
    app = _app()
    data = _dataset(tmp_path)
    res = runner.invoke(app, ["eval", "run", "--data", str(data), "--detector", "engine", "--policy",
                              str(policy_file), "--out", str(tmp_path / "e.json"), "--bootstrap", "0"],
                        obj=REGISTRY)
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["detector"]["kind"] == "engine" and result["detector"]["detector_versions"] == {"words": "w1"}
    scores = result["predictions"]["scores"]
    assert scores["hate"][0] == 1.0 and scores["hate"][2] == 0.0  # 'you vile vermin' flagged, 'lovely' not
    suite = tmp_path / "suite.yaml"
    suite.write_text("tests:\n"
                     "  - {name: vile is held, text: you vile vermin, surface: comment, expect: hold_for_review,"
                     " expect_categories: [hate]}\n"
                     "  - {name: lovely is allowed, text: they are lovely, expect: allow}\n")
    res = runner.invoke(app, ["eval", "suite", str(suite), "--policy", str(policy_file), "--out",
                              str(tmp_path / "s.json")], obj=REGISTRY)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s.json").read_text())["passed"] == 2
    suite.write_text("tests:\n  - {name: wrong on purpose, text: they are lovely, expect: remove}\n")
    res = runner.invoke(app, ["eval", "suite", str(suite), "--policy", str(policy_file)], obj=REGISTRY)
    assert res.exit_code == 1


def test_docs_list_every_format_and_mapping_key() -> None:
    from referee.eval.datasets import FORMATS

    docs = (Path(__file__).resolve().parents[2] / "docs" / "evaluation.md").read_text(encoding="utf-8")
    for name, fmt in FORMATS.items():
        assert f"### `{name}`" in docs, name
        assert fmt.licence in docs, name
        for key in fmt.mapping:
            assert f"| `{key}` |" in docs, (name, key)
