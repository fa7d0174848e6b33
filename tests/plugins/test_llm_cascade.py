"""The LLM as a stage of the plan: gated (only the band reaches the server), async (a
superseding decision), durably retried from the decision log, and the CLI around it."""

from __future__ import annotations

import json
import threading
import time

import pytest
import yaml
from typer.testing import CliRunner

from referee.cli import app
from referee.detectors.base import build_detector
from referee.engine import Engine
from referee.model import Action, ContentItem, Decision
from referee.store.memory import MemoryStore
from referee.store.sql.store import Store
from tests.plugins import chat_server as cs
from tests.plugins.chat_server import ChatServer, Reply
from tests.conftest import requires_shared
from tests.plugins.llm_fixtures import cascade_plan, make_policy, policy_doc, registry

#: (text, in the band [0.2, 0.8) of the triage stage?, labels)
ROWS = [
    ("I will stab you tonight", False, {"violence": 1}),          # clear: triage 0.95
    ("you idiot", False, {"harassment": 1}),                      # triage 0.85, out of the band
    ("I will shoot you tomorrow", True, {"violence": 1}),         # triage 0.5, judge: 'shoot' violates
    ("let's fight about the setlist", True, {"violence": 0}),     # triage 0.4, judge: no keyword
    ("what a loser, you worthless idiot", False, {"harassment": 1}),
    ("gain followers fast", True, {"spam": 0}),                   # triage 0.5, judge: no
    ("Loved the chorus", False, {"violence": 0}),
    ("this track is great", False, {"violence": 0}),
]


def items() -> list[ContentItem]:
    return [ContentItem(id=f"r{i}", text=text) for i, (text, _, _) in enumerate(ROWS)]


def cascade_engine(url: str, run_async: bool = False, sink=None, **llm) -> Engine:
    policy = make_policy({"endpoint": url, "model": "scripted", **llm}, cascade_plan(run_async=run_async))
    return Engine.from_policy(policy, sink=sink, registry=registry())


def test_only_items_in_the_band_reach_the_llm():
    with ChatServer(cs.judge) as server, cascade_engine(server.url) as engine:
        decisions = engine.moderate_many(items())
    in_band = [i for i, (_, band, _) in enumerate(ROWS) if band]
    assert server.calls == len(in_band) == 3
    sent = {cs.data_block(b)["parts"][0]["text"] for b in server.requests}
    assert sent == {ROWS[i][0] for i in in_band}
    for i, d in enumerate(decisions):
        (run,) = [s for s in d.stages if s.stage == "second_look"]
        assert run.status == ("ran" if i in in_band else "skipped"), (ROWS[i][0], run)
    assert decisions[2].action is Action.remove  # the LLM confirmed the ambiguous threat
    assert any(s.detector == "llm" and s.evidence[0].detail["rationale"] == "mentions 'shoot'"
               for s in decisions[2].signals)
    assert decisions[3].action is Action.allow and decisions[0].action is Action.remove


def test_a_band_on_one_category_and_severity():
    policy = make_policy({"endpoint": "http://127.0.0.1:9/v1"}, [
        {"id": "fast", "detectors": ["triage"]},
        {"id": "llm", "detectors": ["llm"], "when": {"band": {"categories": ["spam"], "min": 0.2, "max": 0.8},
                                                     "severities": ["high"]}}])
    with ChatServer(cs.judge) as server:
        policy = make_policy({"endpoint": server.url}, [dict(s) for s in yaml.safe_load(yaml.safe_dump(
            [{"id": "fast", "detectors": ["triage"]},
             {"id": "llm", "detectors": ["llm"], "when": {"band": {"categories": ["spam"], "min": 0.2, "max": 0.8},
                                                          "severities": ["high"]}}]))])
        with Engine.from_policy(policy, registry=registry()) as engine:
            engine.moderate_many(items())
    # spam in band (1 row) + high-severity violence/hate at or above 0.2 (3 rows: stab, shoot, fight)
    assert server.calls == 4


def test_async_stage_returns_at_once_and_supersedes():
    store = MemoryStore()
    got: list[Decision] = []
    arrived = threading.Event()
    with ChatServer(lambda body: cs.judge(body, delay_s=0.3)) as server:
        engine = cascade_engine(server.url, run_async=True, sink=store)
        engine.on_decision.append(lambda d: (got.append(d), arrived.set()))
        begun = time.monotonic()
        first = engine.moderate(ContentItem(id="a1", text="I will shoot you tomorrow"))
        took = time.monotonic() - begun
        assert took < 0.2, took  # did not wait for the 300 ms model
        assert first.provisional and first.pending_stages == ("second_look",)
        assert first.action is Action.allow  # triage 0.5 alone is below the rule
        assert arrived.wait(5.0)
        engine.close()
    (later,) = got
    assert later.supersedes == first.decision_id and later.action is Action.remove and not later.provisional
    assert store.log.head("a1").decision_id == later.decision_id
    assert store.pending_heads() == []


def test_a_failed_async_call_leaves_the_decision_pending_and_is_retried_after_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with ChatServer(lambda body: Reply(status=503)) as down:
        store = Store(url)
        settings = {"max_retries": 1, "backoff_s": 0.01, "max_backoff_s": 0.01}  # the same policy after the restart
        engine = cascade_engine(down.url, run_async=True, sink=store, **settings)
        first = engine.moderate(ContentItem(id="b1", text="I will shoot you tomorrow"))
        engine.wait_async()
        engine.close()
        store.close()
    assert down.calls == 2  # the call and its one retry
    # "Restart": a new store object over the same file, a new engine, a healthy server.
    store = Store(url)
    assert [d.decision_id for d in store.pending_heads()] == [first.decision_id]
    assert store.log.head("b1").decision_id == first.decision_id  # the synchronous decision stands
    with ChatServer(cs.judge, port=down.port) as up:  # the same endpoint, so the same policy content
        with cascade_engine(up.url, run_async=True, sink=store, **settings) as engine:
            assert engine.resume_pending(limit=10) == 1
        assert up.calls == 1
    head = store.log.head("b1")
    assert head.supersedes == first.decision_id and head.action is Action.remove
    assert [s.status for s in head.stages] == ["ran", "ran"]
    assert store.pending_heads() == []
    store.close()


def test_resume_pending_redecides_under_a_new_policy():
    store = MemoryStore()
    with ChatServer(lambda body: Reply(status=500)) as down:
        with cascade_engine(down.url, run_async=True, sink=store, max_retries=0) as engine:
            first = engine.moderate(ContentItem(id="c1", text="I will shoot you tomorrow"))
    policy = make_policy({"endpoint": "http://127.0.0.1:9/v1"}, cascade_plan(run_async=False), version="2")
    with ChatServer(cs.judge) as up:
        policy = make_policy({"endpoint": up.url}, cascade_plan(run_async=False), version="2")
        with Engine.from_policy(policy, sink=store, registry=registry()) as engine:
            assert engine.resume_pending() == 1
    head = store.log.head("c1")
    assert head.supersedes == first.decision_id and head.policy_version == "2" and head.action is Action.remove


# -- the CLI ------------------------------------------------------------------------------------

def write_inputs(tmp_path, url: str, run_async: bool = False) -> tuple[str, str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_doc({"endpoint": url, "model": "scripted"},
                                                cascade_plan(run_async=run_async)), sort_keys=False))
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "text": t, **labels}) + "\n"
                            for i, (t, _, labels) in enumerate(ROWS)))
    return str(policy), str(data)


def test_eval_cascade_prints_the_table(tmp_path):
    with ChatServer(cs.judge) as server:
        policy, data = write_inputs(tmp_path, server.url)
        out = tmp_path / "cascade.json"
        result = CliRunner().invoke(app, ["eval", "cascade", "--data", data, "--policy", policy,
                                          "--band", "0.2-0.8", "--band", "0.45-0.55", "--out", str(out)],
                                    terminal_width=200, obj=registry())
    assert result.exit_code == 0, result.output
    print(result.output)
    for col in ("band", "escalated", "llm calls", "tokens", "precision", "recall", "F1", "ΔF1"):
        assert col in result.output
    table = json.loads(out.read_text())["table"]
    assert [r["band"] for r in table] == ["earlier stages only", "0.2-0.8", "0.45-0.55"]
    assert table[1]["escalated"] == pytest.approx(3 / 8) and table[1]["llm_calls"] == 3
    assert table[2]["escalated"] == pytest.approx(2 / 8) and table[2]["llm_calls"] == 2
    assert table[1]["tokens"] > 0 and server.calls == 5
    assert table[1]["f1"] > table[0]["f1"]  # the LLM caught the threat the triage stage was unsure of


def test_eval_cascade_refuses_a_bad_band(tmp_path):
    policy, data = write_inputs(tmp_path, "http://127.0.0.1:9/v1")
    result = CliRunner().invoke(app, ["eval", "cascade", "--data", data, "--policy", policy, "--band", "0.8-0.2"],
                                obj=registry())
    assert result.exit_code == 2 and "MIN < MAX" in result.output


def test_eval_run_detector_llm(tmp_path):
    with ChatServer(cs.judge) as server:
        policy, data = write_inputs(tmp_path, server.url)
        out = tmp_path / "run.json"
        result = CliRunner().invoke(app, ["eval", "run", "--data", data, "--policy", policy, "--detector", "llm",
                                          "--out", str(out), "--bootstrap", "0"], obj=registry())
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["detector"]["name"] == "llm"
    assert server.calls == len(ROWS)


def test_moderate_with_the_llm_from_the_cli(tmp_path):
    with ChatServer(cs.judge) as server:
        policy, _ = write_inputs(tmp_path, server.url)
        src = tmp_path / "items.jsonl"
        src.write_text(json.dumps({"id": "m1", "text": "I will shoot you tomorrow"}) + "\n")
        result = CliRunner().invoke(app, ["moderate", str(src), "--policy", policy, "--no-store",
                                          "--detectors", "triage,llm"], obj=registry())
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout.splitlines()[0])
    assert decision["action"] == "remove" and server.calls == 1


def test_build_detector_is_the_registered_llm():
    detector = build_detector("llm", make_policy({"endpoint": "http://127.0.0.1:9/v1"}))
    assert detector.name == "llm" and detector.per_part is False and detector.uses_prior_signals
    detector.close()


@pytest.mark.shared
@requires_shared("datasets/ethos")
def test_eval_cascade_on_a_shared_dataset(tmp_path):
    """The lexicon of the default policy, then the (keyword toy) judge, on ETHOS: the calls the
    server counts are exactly the items each band escalates."""
    from pathlib import Path

    from tests.conftest import REPO, SHARED

    data = tmp_path / "ethos.jsonl"
    imported = CliRunner().invoke(app, ["data", "import", str(SHARED / "datasets" / "ethos"), "-f", "ethos",
                                        "-o", str(data)])
    assert imported.exit_code == 0, imported.output
    doc = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    lex = doc["detectors"]["lexicon"]
    lex["lists"] = {k: str(REPO / "policies" / v) for k, v in lex["lists"].items()}
    lex["allow"] = str(REPO / "policies" / lex["allow"])
    doc.pop("tests_file", None)
    with ChatServer(cs.judge) as server:
        doc["detectors"] = {"lexicon": lex, "llm": {"endpoint": server.url, "model": "scripted"}}
        doc["plan"] = [{"id": "fast", "detectors": ["lexicon"]},
                       {"id": "second_look", "detectors": ["llm"],
                        "when": {"band": {"categories": "*", "min": 0.2, "max": 0.8}}}]
        policy = Path(tmp_path / "policy.yaml")
        policy.write_text(yaml.safe_dump(doc, sort_keys=False))
        out = tmp_path / "cascade.json"
        result = CliRunner().invoke(app, ["eval", "cascade", "--data", str(data), "--policy", str(policy),
                                          "--band", "0.2-0.8", "--band", "0.4-0.6", "--limit", "300",
                                          "--out", str(out)], obj=registry())
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())["table"]
    calls = [r["llm_calls"] for r in table[1:]]
    assert server.calls == sum(calls) and calls[0] >= calls[1] > 0
    assert [round(r["escalated"] * 300) for r in table[1:]] == calls
