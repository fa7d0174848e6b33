"""``referee experiment moderate|report`` and ``referee shadow report|candidates`` from the command line,
with the real lexicon detector and a SQLite store."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from referee.cli import app
from referee.engine.experiment import Arm, Experiment
from referee.online.shadow import shadow_store
from referee.store import Store
from referee.store.protocols import Exposure
from tests.online.test_experiment import experiment_and_policy
from tests.online.test_shadow_report import constructed
from tests.records.conftest import T0

runner = CliRunner()


@pytest.mark.slow  # two lexicon engines and three charts: about 20 s on the shared machine
def test_moderate_under_an_experiment_then_report_it(tmp_path):
    exp, base = experiment_and_policy(tmp_path)
    config = tmp_path / "exp.json"
    config.write_text(exp.model_dump_json())
    items = tmp_path / "items.jsonl"
    texts = ["what a lovely song", "you are an idiot", "buy cheap followers now"]
    items.write_text("".join(json.dumps({"id": f"i{k}", "author_id": f"a{k % 40}", "text": texts[k % 3]}) + "\n"
                             for k in range(120)) + "{not json\n")
    result = runner.invoke(app, ["experiment", "moderate", str(config), str(items), "--policy", str(base.policy),
                                 "--db-url", base.store_url, "--detectors", "lexicon"])
    assert result.exit_code == 1, result.output  # the bad line is reported, the rest moderated
    decisions = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(decisions) == 120
    assert "line 121" in result.stderr
    arm_of = {f"i{k}": exp.assign(f"a{k % 40}") for k in range(120)}
    sha_of_arm: dict[str, set[str]] = {}
    for d in decisions:  # each arm ran its own policy content, and every item its unit's arm
        sha_of_arm.setdefault(arm_of[d["item_id"]], set()).add(d["policy_sha256"])
    assert set(sha_of_arm) == {"control", "strict"} and all(len(v) == 1 for v in sha_of_arm.values())
    assert sha_of_arm["control"] != sha_of_arm["strict"]
    out = runner.invoke(app, ["experiment", "report", exp.name, "--db-url", base.store_url,
                              "--html", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")])
    assert out.exit_code == 0, out.output
    assert "sample ratio:" in out.stdout and "differences against control" in out.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert sum(a["items"] for a in report["arms"]) == 120 and sum(a["units"] for a in report["arms"]) == 40
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "Sample ratio" in page


def test_a_broken_split_fails_the_report(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    store = Store(url)
    exp = Experiment(name="skew", salt="s", arms=[Arm(name="a", share=0.5), Arm(name="b", share=0.5)])
    records = shadow_store(store)
    records.register_experiment(exp.name, exp.model_dump(mode="json"))
    records.log_exposures([Exposure(experiment="skew", unit=f"u{k}", arm="a" if k % 10 else "b", item_id=f"i{k}",
                                    decision_id=f"d{k}", ts=T0) for k in range(500)])
    store.close()
    out = runner.invoke(app, ["experiment", "report", "skew", "--db-url", url])
    assert out.exit_code == 1 and "MISMATCH" in out.stdout
    missing = runner.invoke(app, ["experiment", "report", "nope", "--db-url", url])
    assert missing.exit_code == 2 and "no experiment 'nope'" in missing.stderr


def test_shadow_report_from_the_command_line(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    store = constructed(Store(url))
    store.close()
    out = runner.invoke(app, ["shadow", "report", "--candidate", "v2", "--db-url", url, "--json",
                              str(tmp_path / "s.json")])
    assert out.exit_code == 0, out.output
    assert "agreement with the champion: 60.00%" in out.stdout
    assert json.loads((tmp_path / "s.json").read_text())["changed"] == 2
    since = (T0 + timedelta(minutes=2)).isoformat()
    assert "3 items" in runner.invoke(app, ["shadow", "report", "--candidate", "v2", "--db-url", url,
                                            "--since", since]).stdout
    assert runner.invoke(app, ["shadow", "candidates", "--db-url", url]).stdout.split() == ["v2"]
    bad = runner.invoke(app, ["shadow", "report", "--candidate", "v2", "--db-url", url, "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since: expected an ISO time" in bad.stderr
    other = runner.invoke(app, ["shadow", "report", "--candidate", "v3", "--db-url", url])
    assert "no shadow decisions" in other.stdout and "candidates with shadow decisions: v2" in other.stderr
