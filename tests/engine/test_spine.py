"""The spine: decision identity and history, fail-closed inspection, the staged plan,
async stages, derived parts and evidence by part. Each of the faults measured in
issue 10 is a test here that failed before the redesign."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Sequence

import pytest

from referee import ids
from referee.detectors import Detector
from referee.engine import Engine
from referee.errors import ConfigError
from referee.model import (
    Action,
    ContentItem,
    Decision,
    Derivation,
    Evidence,
    Signal,
    TextPart,
    TimeSegment,
)
from referee.policy import Policy
from referee.registry import Registry
from tests.conftest import SMALL_POLICY, KeywordDetector


class ChainSink:
    """The engine's sink contract (heads + append), kept in a dict: enough to test
    the engine's use of history without a database (the store has its own tests)."""

    def __init__(self) -> None:
        self.chain: dict[str, list[Decision]] = {}
        self.lock = threading.Lock()

    def heads(self, item_ids: Sequence[str]) -> dict[str, Decision]:
        return {i: self.chain[i][-1] for i in item_ids if self.chain.get(i)}

    def append(self, pairs: Sequence[tuple[ContentItem, Decision]]) -> list[Decision]:
        out = []
        with self.lock:
            for _, d in pairs:
                chain = self.chain.setdefault(d.item_id, [])
                head = chain[-1] if chain else None
                if any(c.decision_id == d.decision_id for c in chain):
                    out.append(next(c for c in chain if c.decision_id == d.decision_id))
                elif (head.decision_id if head else None) != d.supersedes:
                    out.append(head)  # somebody superseded first: no fork
                else:
                    chain.append(d)
                    out.append(d)
        return out


def item(text: str, id: str = "i1", surface: str = "comment") -> ContentItem:
    return ContentItem(id=id, text=text, surface=surface)


def review_of(head: Decision, action: Action) -> Decision:
    return head.model_copy(update={
        "decision_id": ids.decision_id(head.input_key, head.decision_id, "review", salt="alice@t1"),
        "action": action, "source": "review", "supersedes": head.decision_id, "automated_decision": False,
    })


# -- identity and history -----------------------------------------------------
def test_editing_a_threshold_without_a_new_version_makes_a_new_decision() -> None:
    sink = ChainSink()
    before = Engine(Policy.from_yaml(SMALL_POLICY), [KeywordDetector()], sink=sink).moderate(item("buy"))
    edited = Policy.from_yaml(SMALL_POLICY.replace("threshold: 0.5, action: limit_reach", "threshold: 0.7, action: limit_reach"))
    after = Engine(edited, [KeywordDetector()], sink=sink).moderate(item("buy"))
    assert before.action is Action.limit_reach and after.action is Action.allow
    assert after.supersedes == before.decision_id and after.policy_sha256 != before.policy_sha256


def test_a_human_verdict_is_the_head_and_re_moderation_returns_it(small_policy: Policy) -> None:
    sink = ChainSink()
    engine = Engine(small_policy, [KeywordDetector()], sink=sink)
    automated = engine.moderate(item("vile vile"))
    verdict = sink.append([(item("vile vile"), review_of(automated, Action.allow))])[0]
    assert engine.moderate(item("vile vile")) == verdict


def test_reautomation_override_lets_the_engine_supersede_a_human_verdict() -> None:
    policy = Policy.from_yaml(SMALL_POLICY + "\nreautomation: override\n")
    sink = ChainSink()
    engine = Engine(policy, [KeywordDetector()], sink=sink)
    automated = engine.moderate(item("vile vile"))
    verdict = sink.append([(item("vile vile"), review_of(automated, Action.allow))])[0]
    again = engine.moderate(item("vile vile"))
    assert again.source == "automated" and again.supersedes == verdict.decision_id
    assert again.decision_id != automated.decision_id  # same inputs, another link: its own id


def test_an_edited_item_supersedes_even_a_human_verdict(small_policy: Policy) -> None:
    sink = ChainSink()
    engine = Engine(small_policy, [KeywordDetector()], sink=sink)
    verdict = sink.append([(item("fine"), review_of(engine.moderate(item("fine")), Action.allow))])[0]
    edited = engine.moderate(item("vile vile"))
    assert edited.supersedes == verdict.decision_id and edited.action is Action.hold_for_review


def test_a_decision_made_under_a_timeout_is_provisional_and_superseded_after_recovery(small_policy: Policy) -> None:
    sink = ChainSink()
    slow = KeywordDetector(delay_s=0.3)
    slow.timeout_s = 0.05
    held = Engine(small_policy, [slow], sink=sink).moderate(item("lovely"))
    assert held.action is Action.hold_for_review and held.provisional and held.failures
    # Still failing the same way: the head stands, no new link.
    assert Engine(small_policy, [slow], sink=sink).moderate(item("lovely")) == held
    healthy = Engine(small_policy, [KeywordDetector()], sink=sink).moderate(item("lovely"))
    assert healthy.action is Action.allow and not healthy.provisional
    assert healthy.supersedes == held.decision_id and healthy.decision_id != held.decision_id
    assert Engine(small_policy, [KeywordDetector()], sink=sink).moderate(item("lovely")) == healthy


def test_same_inputs_return_the_head_without_running_detectors(small_policy: Policy) -> None:
    sink, det = ChainSink(), KeywordDetector()
    engine = Engine(small_policy, [det], sink=sink)
    first = engine.moderate(item("buy"))
    assert engine.moderate(item("buy")) == first and det.batches == [1]


# -- fail closed -----------------------------------------------------------------
def test_an_image_only_item_is_held_as_uninspected_not_allowed(small_policy: Policy) -> None:
    cover = ContentItem(id="c", surface="comment",
                        parts=[{"kind": "image", "id": "cover", "data": base64.b64encode(b"\x89PNG fake").decode()}])
    d = Engine(small_policy, [KeywordDetector()]).moderate(cover)
    assert d.action is Action.hold_for_review
    (reason,) = [r for r in d.reasons if r.kind == "uninspected"]
    assert reason.parts == ("cover",) and "on_uninspected" in reason.message


def test_on_uninspected_is_policy() -> None:
    policy = Policy.from_yaml(SMALL_POLICY + "\non_uninspected: remove\n")
    cover = ContentItem(id="c", parts=[{"kind": "image", "id": "cover", "sha256": "a" * 64, "path": "/x.png"}])
    assert Engine(policy, [KeywordDetector()]).moderate(cover).action is Action.remove


@pytest.mark.parametrize("data", [{"id": "e"}, {"id": "e", "text": ""}, {"id": "e", "parts": []},
                                  {"id": "e", "parts": [{"kind": "text", "text": ""}]}])
def test_an_item_with_nothing_to_inspect_is_refused(data: dict) -> None:
    with pytest.raises(ValueError, match="nothing to inspect|at least 1"):
        ContentItem.model_validate(data)


def test_an_unknown_detector_selection_is_an_error_with_a_suggestion(small_policy: Policy) -> None:
    registry = Registry.of("detector", [("keyword", KeywordDetector)], base_cls=Detector)
    with pytest.raises(ConfigError, match="unknown detector 'Keyword'.*Did you mean 'keyword'"):
        Engine.from_policy(small_policy, only=["Keyword"], registry=registry)
    with pytest.raises(ConfigError, match="empty detector selection"):
        Engine.from_policy(small_policy, only=[], registry=registry)


def test_an_engine_with_no_detector_holds_everything_it_cannot_read(small_policy: Policy) -> None:
    d = Engine(small_policy, []).moderate(item("anything at all"))
    assert d.action is Action.hold_for_review and d.reasons[0].kind == "uninspected"


# -- parts and evidence -------------------------------------------------------------
class SpanDetector(KeywordDetector):
    """Flags the word 'vile' with a span into the text it was given."""

    def detect(self, item: ContentItem) -> list[Signal]:
        at = item.text.find("vile")
        if at < 0:
            return []
        return [Signal(detector=self.name, detector_version=self.version, category="hate", score=0.95,
                       evidence=(Evidence(start=at, end=at + 4, entry="vile"),))]


def test_each_text_part_is_read_on_its_own_and_evidence_names_the_part(small_policy: Policy) -> None:
    playlist = ContentItem(id="p", surface="playlist_description", parts=[
        {"kind": "text", "id": "title", "role": "title", "text": "chill vibes"},
        {"kind": "text", "id": "desc", "role": "description", "text": "songs for vile people"},
    ])
    d = Engine(small_policy, [SpanDetector()]).moderate(playlist)
    (signal,) = d.signals
    (ev,) = signal.evidence
    assert ev.part_id == "desc" and playlist.part("desc").text[ev.start:ev.end] == "vile"
    assert d.action is not Action.allow


class FakeOCR(Detector):
    """Reads images; 'derives' their text (here: the bytes themselves) as a transcript-like part."""

    name = "ocr"
    reads = frozenset({"image", "audio"})
    derives = True

    @property
    def categories(self) -> tuple[str, ...]:
        return ()

    def detect(self, item: ContentItem) -> list[Signal]:
        return []

    def derive_many(self, items: Sequence[ContentItem]) -> list[list[TextPart]]:
        out = []
        for view in items:
            (part,) = view.parts
            text = part.data.decode() if part.data else ""
            out.append([TextPart(id=f"{part.id}.text", role="ocr", text=text, derived=Derivation(
                source_part=part.id, detector=self.name, detector_version=self.version,
                segments=(TimeSegment(start=0, end=len(text), start_s=12.0, end_s=14.5),)))])
        return out


PLAN_POLICY = SMALL_POLICY.replace("detectors:\n  keyword: {}", """detectors:
  ocr: {}
  keyword: {}
  second: {}
plan:
  - {id: media, detectors: [ocr]}
  - {id: text, detectors: [keyword]}
  - id: second_look
    detectors: [second]
    when: {band: {categories: [hate], min: 0.2, max: 0.8}}""")


class Second(KeywordDetector):
    """A second opinion that records the earlier signals it was given."""

    name = "second"
    uses_prior_signals = True

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(delay_s=delay_s)
        self.seen: list[list[str]] = []

    def detect_many(self, items, prior=None):  # type: ignore[no-untyped-def,override]
        time.sleep(self.delay_s)
        self.seen.extend([f"{s.detector}:{s.category}" for s in p] for p in (prior or []))
        return [[Signal(detector=self.name, detector_version="s1", category="hate", score=0.99)] for _ in items]


def test_derived_text_is_read_by_text_detectors_and_evidence_maps_back_to_the_source() -> None:
    policy = Policy.from_yaml(PLAN_POLICY)
    cover = ContentItem(id="c", parts=[{"kind": "image", "id": "cover", "data": base64.b64encode(b"so vile").decode()}])
    d = Engine(policy, [FakeOCR(), SpanDetector(), Second()]).moderate(cover)
    assert not any(r.kind == "uninspected" for r in d.reasons)
    ev = next(s for s in d.signals if s.detector == "keyword").evidence[0]
    assert (ev.part_id, ev.source_part, ev.start_s, ev.end_s) == ("cover.text", "cover", 12.0, 14.5)


def test_a_gated_stage_runs_only_in_its_band_and_sees_earlier_signals() -> None:
    policy = Policy.from_yaml(PLAN_POLICY)
    second = Second()
    engine = Engine(policy, [FakeOCR(), KeywordDetector(), second])
    unsure, clear = engine.moderate_many([item("vile", id="a"), item("lovely", id="b")])  # hate 0.3 vs 0.0
    assert second.seen == [["keyword:hate", "keyword:spam"]]
    assert unsure.action is Action.remove  # the second look scored 0.99
    runs = {r.stage: r for r in clear.stages}
    assert runs["second_look"].status == "skipped" and "[0.2, 0.8)" in runs["second_look"].why
    assert {r.stage: r.status for r in unsure.stages} == {"media": "ran", "text": "ran", "second_look": "ran"}


def test_an_async_stage_returns_first_and_supersedes_when_it_finishes() -> None:
    policy = Policy.from_yaml(PLAN_POLICY.replace("detectors: [second]", "detectors: [second]\n    async: true"))
    sink, second = ChainSink(), Second(delay_s=0.2)
    engine = Engine(policy, [FakeOCR(), KeywordDetector(), second], sink=sink)
    written: list[Decision] = []
    engine.on_decision.append(written.append)
    began = time.monotonic()
    first = engine.moderate(item("vile"))
    assert time.monotonic() - began < 0.15, "the synchronous answer must not wait for the async stage"
    assert first.provisional and first.pending_stages == ("second_look",)
    assert first.action is Action.allow  # hate 0.3 alone: no rule yet
    engine.wait_async()
    (final,) = written
    assert final.supersedes == first.decision_id and final.action is Action.remove and not final.provisional
    assert sink.heads(["i1"])["i1"] == final
    assert engine.moderate(item("vile")) == final  # same inputs: the head stands
    engine.close()


def test_lint_finds_plan_mistakes_with_lines() -> None:
    from referee.errors import PolicyError

    bad = PLAN_POLICY.replace("min: 0.2, max: 0.8", "min: 0.8, max: 0.2").replace(
        "{id: text, detectors: [keyword]}", "{id: text, detectors: [keyword, nosuch]}")
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(bad, source="p.yaml")
    text = str(info.value)
    assert "nosuch" in text and "is empty" in text and "p.yaml:" in text


def test_close_closes_every_detector_once_and_is_idempotent(small_policy: Policy) -> None:
    closed: list[str] = []

    class Closing(KeywordDetector):
        def close(self) -> None:
            closed.append(self.name)

    engine = Engine(small_policy, [Closing()])
    engine.close()
    engine.close()
    assert closed == ["keyword"]
    with pytest.raises(ConfigError, match="closed"):
        engine.moderate(item("x"))


def test_media_by_path_is_hashed_by_its_bytes_and_urls_are_not_fetched_by_default(small_policy: Policy, tmp_path) -> None:
    from referee.errors import InputError

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    engine = Engine(small_policy, [KeywordDetector()])
    da = engine.moderate(ContentItem(id="m", parts=[{"kind": "image", "id": "cover", "path": str(a)}]))
    db = engine.moderate(ContentItem(id="m", parts=[{"kind": "image", "id": "cover", "path": str(b)}]))
    assert da.content_hash == db.content_hash  # bytes, not paths
    with pytest.raises(InputError, match="parts\\[0\\].url.*not allowed"):
        engine.moderate(ContentItem(id="u", parts=[{"kind": "image", "id": "c", "url": "https://cdn.example/x.png"}]))


def test_an_engine_is_rebuilt_from_its_config_in_another_process(tmp_path) -> None:
    import json
    import subprocess
    import sys

    from referee.build import EngineConfig, build_engine
    from tests.conftest import REPO

    config = EngineConfig(policy=REPO / "policies" / "default.yaml", detectors=("lexicon",))
    text = "I will find you and k1ll you"
    with build_engine(config) as engine:
        here = engine.moderate(ContentItem(id="x", text=text))
    script = (
        "import sys, json\n"
        "from referee.build import EngineConfig, build_engine\n"
        "from referee.model import ContentItem\n"
        "config = EngineConfig.model_validate_json(sys.stdin.read())\n"
        f"d = build_engine(config).moderate(ContentItem(id='x', text={text!r}))\n"
        "print(json.dumps([d.decision_id, d.action.value, d.engine_config_id]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], input=config.model_dump_json(), capture_output=True,
                         text=True, check=True, cwd=REPO, timeout=120)
    assert json.loads(out.stdout) == [here.decision_id, here.action.value, config.id]


def test_media_fetching_is_bounded_and_only_from_allowed_hosts(tmp_path) -> None:
    """A real HTTP server on loopback: an allowed host is fetched and hashed by its bytes;
    a body over the cap is refused naming the part."""
    import http.server
    import threading as th

    from referee.engine.media import MediaResolver
    from referee.errors import InputError

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"x" * (100 if self.path == "/small.png" else 5000)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        resolver = MediaResolver(allow_hosts=["127.0.0.1"], max_bytes=1000, timeout_s=2)
        item = ContentItem(id="u", parts=[{"kind": "image", "id": "c", "url": f"{base}/small.png"}])
        resolved = resolver.resolve(item)
        import hashlib
        assert resolved.parts[0].sha256 == hashlib.sha256(b"x" * 100).hexdigest()
        big = ContentItem(id="u", parts=[{"kind": "image", "id": "c", "url": f"{base}/big.png"}])
        with pytest.raises(InputError, match=r"parts\[0\].url.*over 1000 bytes"):
            resolver.resolve(big)
    finally:
        server.shutdown()


def test_an_async_stage_gate_is_checked_at_once_so_skipped_items_are_final() -> None:
    policy = Policy.from_yaml(PLAN_POLICY.replace("detectors: [second]", "detectors: [second]\n    async: true"))
    sink, second = ChainSink(), Second()
    with Engine(policy, [FakeOCR(), KeywordDetector(), second], sink=sink) as engine:
        unsure, clear = engine.moderate_many([item("vile", id="a"), item("lovely", id="b")])
        engine.wait_async()
    assert unsure.provisional and unsure.pending_stages == ("second_look",)
    assert not clear.provisional and {r.stage: r.status for r in clear.stages}["second_look"] == "skipped"
    assert sink.heads(["b"])["b"] == clear  # nothing superseded the clear item
    assert sink.heads(["a"])["a"].supersedes == unsure.decision_id
