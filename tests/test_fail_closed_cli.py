"""The fail-open paths measured in issue 10, through the CLI and the HTTP app: each
one used to allow content that nothing inspected, with exit code 0."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from referee.cli import app
from referee.errors import ConfigError
from referee.settings import Settings
from tests.conftest import REPO

runner = CliRunner()
POLICY = str(REPO / "policies" / "default.yaml")


def _moderate(tmp_path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "I will k1ll you"}) + "\n", encoding="utf-8")
    return runner.invoke(app, ["moderate", str(src), "--policy", POLICY, "--no-store", *args], env=env or {})


def test_a_misspelt_detector_flag_is_an_error_not_an_engine_that_allows_everything(tmp_path) -> None:
    result = _moderate(tmp_path, "--detectors", "Lexicon")
    assert result.exit_code == 2, result.output
    assert "unknown detector 'Lexicon'" in result.output and "Did you mean 'lexicon'" in result.output


def test_a_misspelt_detector_in_the_environment_is_an_error(tmp_path) -> None:
    result = _moderate(tmp_path, env={"REFEREE_DETECTORS": '["lexicn"]'})
    assert result.exit_code == 2 and "unknown detector 'lexicn'" in result.output


def test_the_http_app_refuses_to_start_on_a_misspelt_detector(tmp_path) -> None:
    from referee.serve.app import create_app

    settings = Settings(policy=REPO / "policies" / "default.yaml", db_url=f"sqlite:///{tmp_path}/r.db",
                        detectors=["lexicn"])
    with pytest.raises(ConfigError, match="unknown detector 'lexicn'"):
        create_app(settings)


@pytest.mark.parametrize("block, key", [("    allowe: lexicons/allow.txt\n", "allowe"),
                                        ("    variant: fp16\n", "variant")])
def test_lint_checks_detector_settings_with_a_line(tmp_path, block: str, key: str) -> None:
    text = (REPO / "policies" / "default.yaml").read_text(encoding="utf-8")
    owner = "  lexicon:\n" if key == "allowe" else "  classifier:\n"
    path = tmp_path / "p.yaml"
    text = text.replace("    variant: int8\n", "") if key == "variant" else text
    path.write_text(text.replace(owner, owner + block, 1), encoding="utf-8")
    (tmp_path / "lexicons").symlink_to(REPO / "policies" / "lexicons")
    (tmp_path / "default.tests.yaml").symlink_to(REPO / "policies" / "default.tests.yaml")
    result = runner.invoke(app, ["policy", "lint", str(path)])
    assert result.exit_code == 1
    name = owner.strip().rstrip(":")
    assert "p.yaml:" in result.output and f"detectors.{name}.{key}" in result.output, result.output


def test_history_lists_the_chain_with_its_head(tmp_path) -> None:
    db = f"sqlite:///{tmp_path}/h.db"
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "h1", "text": "free followers click here"}) + "\n", encoding="utf-8")
    assert runner.invoke(app, ["moderate", str(src), "--policy", POLICY, "--db-url", db,
                               "--detectors", "lexicon"]).exit_code == 0
    result = runner.invoke(app, ["decisions", "history", "h1", "--db-url", db])
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(x) for x in result.output.splitlines() if x.startswith("{")]
    assert line["seq"] >= 1 and line["head"] is True and line["source"] == "automated"
    missing = runner.invoke(app, ["decisions", "history", "nope", "--db-url", db])
    assert missing.exit_code == 1


def test_an_unreadable_media_file_skips_its_item_and_the_rest_are_moderated(tmp_path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "hello"}) + "\n" + json.dumps(
        {"id": "b", "parts": [{"kind": "text", "id": "t", "text": "hi"},
                              {"kind": "image", "id": "c", "path": str(tmp_path / "missing.png")}]}) + "\n")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["moderate", str(src), "--no-store", "--detectors", "lexicon", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert [json.loads(line)["item_id"] for line in out.read_text().splitlines()] == ["a"]
    assert "item 'b' parts[1].path" in result.output and "missing.png" in result.output
