"""Scoring a detector over rows, functional tables, the result JSON and the HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from referee.eval.datasets import CATEGORIES, Row
from referee.eval.functional import functional_report, row_correct
from referee.eval.report import build_result, read_result, render_html, write_json
from referee.eval.runner import load_predictions, score_detector, to_item
from referee.errors import InputError
from referee.policy import Policy

from .conftest import POLICY, WordDetector


def test_missing_signals_score_zero_and_thresholds_come_from_the_detector(rows: list[Row]) -> None:
    scores = score_detector(WordDetector(operating_threshold=0.4), rows, CATEGORIES, batch_size=5)
    assert scores.ids == [r.id for r in rows]
    assert scores.scores["hate"][0] == 1.0 and scores.scores["spam"][6] == 1.0
    assert not scores.scores["violence"].any()  # never emitted -> 0.0
    assert scores.thresholds["hate"] == 0.4 and scores.thresholds["violence"] == 0.5
    assert scores.source["threshold_source"]["violence"] == "default"


def test_to_item_uses_row_meta() -> None:
    row = Row(id="x", text="hallo", meta={"language": "de", "surface": "message", "country": "de"})
    item = to_item(row)
    assert (item.language, item.surface, item.country) == ("de", "message", "DE")


def test_row_correct_checks_every_known_label() -> None:
    t = {"hate": 0.5, "spam": 0.5}
    assert row_correct(Row(id="a", text="", labels={"hate": 1, "spam": 0}), {"hate": 0.9, "spam": 0.1}, t)
    assert not row_correct(Row(id="a", text="", labels={"hate": 1, "spam": 0}), {"hate": 0.9, "spam": 0.9}, t)
    assert row_correct(Row(id="a", text="", labels={}), {"hate": 0.9}, t) is None
    assert row_correct(Row(id="a", text="", labels={"unsafe": 1}), {"hate": 0.1, "spam": 0.7}, t)


def test_functional_report_separates_contrast(rows: list[Row]) -> None:
    scores = score_detector(WordDetector(), rows, CATEGORIES)
    rep = functional_report(rows, scores.scores, scores.thresholds)
    assert rep["grouped_by"] == "functionality"
    func = {e["key"]: e for e in rep["functionalities"]}
    contrast = {e["key"]: e for e in rep["contrast"]}
    assert func["derog_h"]["n"] == 3 and func["derog_h"]["accuracy"] == pytest.approx(2 / 3)
    assert contrast["ident_pos_nh"]["accuracy"] == 1.0
    # 'vile weather today' has one of two hate cues: 0.5 reaches the threshold, a false positive.
    assert contrast["target_obj_nh"]["accuracy"] == 0.0
    assert rep["groups"]["women"]["positive"]["n"] == 2


def test_result_json_and_html(rows: list[Row], tmp_path: Path) -> None:
    policy = Policy.from_yaml(POLICY)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r.to_json()) + "\n" for r in rows), encoding="utf-8")
    scores = score_detector(WordDetector(), rows, ["hate", "spam"])
    result = build_result(rows, scores, data, policy, n_boot=50)
    assert result["dataset"]["sha256"] and result["policy"]["version"] == "7"
    assert result["detector"]["version"] == "w1"
    assert set(result["metrics"]["per_category"]) == {"hate", "spam"}
    assert result["predictions"]["labels"]["hate"][6] == -1
    assert "hate" in result["fairness"]
    write_json(result, tmp_path / "r.json")
    again = read_result(tmp_path / "r.json")
    assert again["metrics"] == json.loads(json.dumps(result["metrics"]))
    page = render_html(again)
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page
    assert "Fairness per identity group" in page and "Contrast: should not flag" in page
    assert "http" not in page.split("<style>")[0]  # self-contained: no external resources


def test_read_result_refuses_other_json(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="not a referee evaluation result"):
        read_result(tmp_path / "x.json")


def test_load_predictions(rows: list[Row], tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": r.id, "scores": {"hate": 0.25}}) + "\n" for r in rows))
    scores = load_predictions(path, rows, ["hate", "spam"])
    assert np.all(scores.scores["hate"] == 0.25) and np.all(scores.scores["spam"] == 0.0)
    path.write_text('{"id": "r0", "scores": {"hate": 0.2}}\n')
    with pytest.raises(InputError, match="11 dataset rows have no prediction"):
        load_predictions(path, rows, ["hate"])
    path.write_text('{"id": "r0"}\n')
    with pytest.raises(InputError, match="p.jsonl:1"):
        load_predictions(path, rows, ["hate"])
