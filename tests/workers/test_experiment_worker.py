"""An experiment on a real Redis stream: the worker decides with an ``ExperimentRunner``
(each item by its author's arm, one exposure per unit and item, redeliveries absorbed),
in process and as ``referee worker --experiment``; the report then counts both arms."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from referee.build import EngineConfig, build_engine
from referee.cli import app as cli
from referee.model import ContentItem
from referee.online.experiments import ExperimentRunner
from referee.online.shadow import shadow_store
from referee.store import Store
from referee.workers import ItemStream, Worker, produce
from tests.online.test_experiment_live import EXPERIMENT, KIND, RUDE, policy_copy
from tests.workers.conftest import Keys, drain, worker_process

pytestmark = pytest.mark.redis


def _items(n: int, authors: int) -> list[ContentItem]:
    return [ContentItem.model_validate({"id": f"w{k}", "author_id": f"u{k % authors}", "surface": "comment",
                                        "text": RUDE if k % 2 else KIND}) for k in range(n)]


def _out(client: Any, keys: Keys) -> list[dict[str, Any]]:
    return [json.loads(f[b"decision"]) for _, f in client.xrange(keys.out)]


def _check_arms(decisions: list[dict[str, Any]], items: list[ContentItem]) -> dict[str, str]:
    """Every item decided by its author's arm (by that arm's threshold), one policy per arm."""
    arm_of = {i.id: EXPERIMENT.assign(i.author_id or "") for i in items}
    text_of = {i.id: i.text for i in items}
    policy_of: dict[str, set[str]] = {}
    for d in decisions:
        arm = arm_of[d["item_id"]]
        policy_of.setdefault(arm, set()).add(d["policy_sha256"])
        expected = "limit_reach" if text_of[d["item_id"]] == RUDE and arm == "control" else "allow"
        assert d["action"] == expected, (d["item_id"], arm, d["action"])
    assert set(policy_of) == {"control", "lenient"} and all(len(v) == 1 for v in policy_of.values())
    assert policy_of["control"] != policy_of["lenient"]
    return arm_of


def _report(db_url: str, tmp_path: Path) -> dict[str, Any]:
    out = CliRunner().invoke(cli, ["experiment", "report", EXPERIMENT.name, "--db-url", db_url,
                                   "--json", str(tmp_path / "report.json")])
    assert out.exit_code == 0, out.output
    return {a["arm"]: a for a in json.loads((tmp_path / "report.json").read_text())["arms"]}


@pytest.mark.slow  # two lexicon engines: about 8 s on the shared machine
def test_the_worker_decides_each_entry_by_its_arm_and_logs_exposures_once(keys, client, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'exp.db'}"
    engine = build_engine(EngineConfig(policy=policy_copy(tmp_path), detectors=("lexicon",), store_url=db_url))
    assert isinstance(engine.sink, Store) and engine.config is not None
    runner = ExperimentRunner(EXPERIMENT, engine.config, engine.sink, reuse=engine)
    try:
        assert runner.engines["control"] is engine
        items = _items(60, authors=20)
        produce(client, keys.items, items)
        produce(client, keys.items, items[:10])  # delivered twice: the same decision, no second exposure
        stream = ItemStream(client, keys.config(batch=16))
        stream.ensure_group()
        worker = Worker(runner, stream)
        drain(worker, lambda: worker.finished == 70)
        decisions = _out(client, keys)
        assert len(decisions) == 70 and len({d["decision_id"] for d in decisions}) == 60
        arm_of = _check_arms(decisions, items)
        exposures = shadow_store(engine.sink).exposures(EXPERIMENT.name)
        assert len(exposures) == 60 == len({(e.unit, e.item_id) for e in exposures})
        assert all(e.arm == arm_of[e.item_id] and e.unit == f"u{int(e.item_id[1:]) % 20}" for e in exposures)
    finally:
        runner.close()
        assert engine.moderate(items[0]).item_id == "w0"  # the lent engine stays open: the caller's to close
        engine.close()

    report = _report(db_url, tmp_path)
    units = Counter(EXPERIMENT.assign(f"u{n}") for n in range(20))
    rude_control = sum(1 for i in items if i.text == RUDE and arm_of[i.id] == "control")
    for arm in ("control", "lenient"):
        assert report[arm]["units"] == units[arm] and report[arm]["items"] == 3 * units[arm]
    assert report["control"]["action_rate"]["count"] == rude_control > 0
    assert report["lenient"]["action_rate"]["count"] == 0


@pytest.mark.slow  # a worker process building two engines: about 15 s
def test_referee_worker_experiment_option(keys, client, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    policy = policy_copy(tmp_path)
    path = tmp_path / "experiment.json"
    path.write_text(EXPERIMENT.model_dump_json())
    log = tmp_path / "worker.log"
    items = _items(40, authors=16)
    produce(client, keys.items, items)
    proc = worker_process(keys, db_url, log, "--policy", str(policy), "--experiment", str(path))
    try:
        deadline = time.monotonic() + 90
        while client.xlen(keys.out) < len(items):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"the worker did not publish every decision:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert f"experiment {EXPERIMENT.name}: arms control 0.5, lenient 0.5" in log.read_text()
    arm_of = _check_arms(_out(client, keys), items)
    report = _report(db_url, tmp_path)
    assert {a: r["items"] for a, r in report.items()} == dict(Counter(arm_of.values()))


def test_a_bad_experiment_file_stops_the_worker_before_it_reads(keys, tmp_path):
    path = tmp_path / "exp.json"
    path.write_text('{"name": "x", "salt": "s", "arms": [{"name": "a", "share": 1.0}]}')
    out = CliRunner().invoke(cli, ["worker", *keys.cli_args(), "--detectors", "lexicon", "--policy",
                                   str(policy_copy(tmp_path)), "--db-url", f"sqlite:///{tmp_path / 'b.db'}",
                                   "--experiment", str(path)])
    assert out.exit_code != 0
    assert "exp.json: arms: Tuple should have at least 2 items" in " ".join(out.output.split())  # rich wraps
