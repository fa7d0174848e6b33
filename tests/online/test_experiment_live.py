"""An experiment on live HTTP traffic (``REFEREE_EXPERIMENT``): ``POST /v1/moderate`` and
``POST /v1/moderations`` decide each item by its unit's arm, log one exposure per unit and
item, and ``referee experiment report`` reads both arms back. Real lexicon engines and a
SQLite store; the experiment is a YAML file, as an operator would write it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from referee.cli import app as cli
from referee.engine.experiment import Arm, Experiment
from referee.errors import ConfigError
from referee.online.experiments import load_experiment
from referee.online.shadow import shadow_store
from referee.serve import create_app
from referee.settings import Settings
from referee.store import Store

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"
#: The lexicon scores "you are an idiot" harassment 0.85: over control's 0.8 (limit_reach),
#: under the lenient arm's 0.9 (allow). "what a lovely song" is allowed in both.
RUDE, KIND = "you are an idiot", "what a lovely song"
EXPERIMENT = Experiment(name="harassment-live", salt="live-1", arms=(
    Arm(name="control", share=0.5), Arm(name="lenient", share=0.5, thresholds={"comment.harassment": 0.9})))


def policy_copy(tmp_path: Path) -> Path:
    """The default policy in a folder of the test's own (the lenient arm's policy is written beside it)."""
    policy = tmp_path / "default.yaml"
    policy.write_text(DEFAULT_POLICY.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "default.tests.yaml").write_text((DEFAULT_POLICY.parent / "default.tests.yaml").read_text())
    (tmp_path / "lexicons").symlink_to(DEFAULT_POLICY.parent / "lexicons")
    return policy


def live_settings(tmp_path: Path, experiment: Path | None) -> Settings:
    return Settings(_env_file=None, policy=policy_copy(tmp_path), db_url=f"sqlite:///{tmp_path / 'live.db'}",
                    detectors=["lexicon"], follow_s=0, drift_every_s=0, experiment=experiment)


def item(k: int, author: str, text: str) -> dict[str, object]:
    return {"id": f"i{k}", "author_id": author, "surface": "comment", "text": text}


@pytest.mark.slow  # two lexicon engines and a report: about 10 s on the shared machine
def test_live_http_traffic_is_decided_by_each_unit_arm_and_reported(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT.model_dump(mode="json")), encoding="utf-8")
    settings = live_settings(tmp_path, path)
    store = Store(settings.db_url)
    key = {"Authorization": f"Bearer {store.create_key('live', ['moderate', 'read'])}"}
    authors = [f"a{n}" for n in range(24)]
    sent = [item(k, authors[k % 24], RUDE if k % 2 else KIND) for k in range(72)]  # 3 items per author
    decisions: dict[str, dict[str, object]] = {}
    with TestClient(create_app(settings)) as client:
        state = client.app.state.referee  # type: ignore[attr-defined]
        assert state.experiment is not None
        assert state.experiment.engines["control"] is state.engine  # the service's engine, not a second one
        for one in sent[:12]:  # single items
            r = client.post("/v1/moderate", json=one, headers=key)
            assert r.status_code == 200, r.text
            decisions[one["id"]] = r.json()  # type: ignore[index]
        for start in range(12, 72, 5):  # batches
            r = client.post("/v1/moderate", json={"items": sent[start:start + 5]}, headers=key)
            assert r.status_code == 200, r.text
            decisions.update((d["item_id"], d) for d in r.json()["decisions"])
        # Sent again: the same decisions (the heads stand), and no second exposure.
        again = client.post("/v1/moderate", json={"items": sent[:5]}, headers=key).json()["decisions"]
        assert [d["decision_id"] for d in again] == [decisions[f"i{k}"]["decision_id"] for k in range(5)]
        oai = client.post("/v1/moderations", json={"input": [RUDE + " indeed", KIND + " indeed"]}, headers=key)
        assert oai.status_code == 200, oai.text
        oai_ids = [r["referee"]["decision_id"] for r in oai.json()["results"]]
        # Every arm writes the one decision log that the read routes serve.
        for d in decisions.values():
            fetched = client.get(f"/v1/decisions/{d['decision_id']}", headers=key)
            assert fetched.status_code == 200 and fetched.json()["engine_config_id"] == d["engine_config_id"]
        control_config = state.engine.config_id

    arm_of = {a: EXPERIMENT.assign(a) for a in authors}
    assert set(arm_of.values()) == {"control", "lenient"}
    config_of: dict[str, set[str]] = {}
    policy_of: dict[str, set[str]] = {}
    for one in sent:
        d, arm = decisions[str(one["id"])], arm_of[str(one["author_id"])]
        config_of.setdefault(arm, set()).add(str(d["engine_config_id"]))
        policy_of.setdefault(arm, set()).add(str(d["policy_sha256"]))
        # Each arm decided by its own thresholds: the rude comment is limited in control only.
        expected = "limit_reach" if one["text"] == RUDE and arm == "control" else "allow"
        assert d["action"] == expected, (one, arm, d["action"])
    # Every author's items in one arm; the arms tell apart by policy content (an engine config id
    # names the detectors, which a threshold arm keeps: ``EngineConfig.id``).
    assert all(len(v) == 1 for v in config_of.values()) and all(len(v) == 1 for v in policy_of.values())
    assert config_of["control"] == config_of["lenient"] == {control_config}
    assert policy_of["control"] != policy_of["lenient"]

    exposures = shadow_store(store).exposures(EXPERIMENT.name)
    assert len(exposures) == 74 == len({(e.unit, e.item_id) for e in exposures})  # 72 items, 2 OpenAI inputs
    by_item = {e.item_id: e for e in exposures}
    assert all(by_item[str(one["id"])].unit == one["author_id"] for one in sent)
    assert all(by_item[str(one["id"])].arm == arm_of[str(one["author_id"])] for one in sent)
    assert {e.decision_id for e in exposures if e.unit.startswith("item:oai_")} == set(oai_ids)
    store.close()

    report_file = tmp_path / "report.json"
    out = CliRunner().invoke(cli, ["experiment", "report", EXPERIMENT.name, "--db-url", settings.db_url,
                                   "--json", str(report_file)])
    assert out.exit_code == 0, out.output
    assert "lenient" in out.stdout and "control" in out.stdout
    report = {a["arm"]: a for a in json.loads(report_file.read_text())["arms"]}
    units = Counter(arm_of.values())
    oai_arms = Counter(e.arm for e in exposures if e.unit.startswith("item:oai_"))
    for arm in ("control", "lenient"):
        assert report[arm]["units"] == units[arm] + oai_arms[arm]
        assert report[arm]["items"] == 3 * units[arm] + oai_arms[arm]
    rude_in_control = sum(1 for one in sent if one["text"] == RUDE and arm_of[str(one["author_id"])] == "control")
    oai_arm = [next(e.arm for e in exposures if e.decision_id == i) for i in oai_ids]
    assert [r["flagged"] for r in oai.json()["results"]] == [oai_arm[0] == "control", False]
    assert report["control"]["action_rate"]["count"] == rude_in_control + (oai_arm[0] == "control")
    assert report["lenient"]["action_rate"]["count"] == 0


def test_without_an_experiment_the_batcher_is_the_engine_own(tmp_path):
    with TestClient(create_app(live_settings(tmp_path, None))) as client:
        state = client.app.state.referee  # type: ignore[attr-defined]
        assert state.experiment is None and state.batcher is state.engine.batcher()


def test_a_bad_experiment_file_fails_the_start_naming_the_field(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x", "salt": "s", "arms": [{"name": "a", "share": 0.7},
                                                                  {"name": "b", "share": 0.7}]}))
    with pytest.raises(ConfigError, match=r"bad.json: .*arm shares must sum to 1, got 1.4"):
        create_app(live_settings(tmp_path, path))
    with pytest.raises(ConfigError, match=r"cannot read experiment file .*missing.yaml"):
        load_experiment(tmp_path / "missing.yaml")
    (tmp_path / "typo.yaml").write_text("name: x\nsalt: s\narms:\n  - {name: a, share: 1.0, thresold: {}}\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: arms.0.thresold: Extra inputs are not permitted"):
        load_experiment(tmp_path / "typo.yaml")


def test_an_arm_naming_a_rule_the_policy_lacks_fails_the_start(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(Experiment(name="typo", salt="s", arms=(
        Arm(name="a", share=0.5), Arm(name="b", share=0.5, thresholds={"comment.harasment": 0.9}))
    ).model_dump_json())
    with pytest.raises(ConfigError, match=r"arm 'b': thresholds name rule\(s\) \['comment.harasment'\]"):
        create_app(live_settings(tmp_path, path))
