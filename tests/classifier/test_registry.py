"""The model registry: names, the champion alias, and errors that list the choices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from referee.classifier import ModelRegistry
from referee.errors import ModelError


def _fake_model(root: Path, name: str) -> Path:
    from referee.classifier.artifact import ModelCard, write_card
    from referee.classifier.calibrate import Platt, Threshold

    d = root / name
    d.mkdir(parents=True)
    write_card(d, ModelCard(name=name, categories=["spam"], encoder="x@1", calibration={"spam": Platt()},
                            thresholds={"spam": Threshold(threshold=0.5, target_precision=0.9, precision=None,
                                                          recall=None, method="default")}))
    return d


def test_promote_and_resolve(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    _fake_model(tmp_path, "v1")
    _fake_model(tmp_path, "v2")
    assert reg.names() == ["v1", "v2"]
    reg.promote("v1")
    assert reg.resolve("champion") == tmp_path / "v1"
    reg.promote("v2")
    assert reg.resolve("champion") == tmp_path / "v2"
    assert json.loads((tmp_path / "champion.json").read_text())["previous"] == "v1"
    assert reg.resolve("v1") == tmp_path / "v1"
    assert reg.resolve(str(tmp_path / "v1")) == tmp_path / "v1"
    assert [e.aliases for e in reg.entries()] == [[], ["champion"]]


def test_unknown_model_lists_choices(tmp_path: Path) -> None:
    _fake_model(tmp_path, "v1")
    with pytest.raises(ModelError, match=r"model 'nope' not found .*Available: v1"):
        ModelRegistry(tmp_path).resolve("nope")
    with pytest.raises(ModelError, match="cannot promote 'nope'"):
        ModelRegistry(tmp_path).promote("nope")


def test_env_overrides_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from referee.classifier.registry import default_root

    monkeypatch.setenv("REFEREE_MODELS", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("REFEREE_MODELS")
    assert default_root() == Path("models")


def test_cli_list_promote_card(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from referee.cli import app

    _fake_model(tmp_path, "v1")
    runner = CliRunner()
    r = runner.invoke(app, ["model", "promote", "v1", "--models", str(tmp_path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["model", "list", "--models", str(tmp_path)])
    assert r.exit_code == 0 and "v1" in r.output and "champion" in r.output
    r = runner.invoke(app, ["model", "card", "champion", "--json", "--models", str(tmp_path)])
    assert r.exit_code == 0 and json.loads(r.output)["name"] == "v1"
    r = runner.invoke(app, ["model", "card", "nope", "--models", str(tmp_path)])
    assert r.exit_code == 2 and "not found" in r.output
