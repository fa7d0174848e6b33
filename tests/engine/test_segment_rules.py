"""Policy rules on audio segments: the worst segment, the share of flagged time, a count.

Decisions are built from signals constructed here, with time-coded evidence as the engine
leaves it on a transcript (``part_id`` the transcript, ``source_part`` the audio, and
``start_s``/``end_s``), and the transcript's derived part giving the audio's transcribed time.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from referee.engine import decide
from referee.model import Action, ContentItem, DetectorFailure, Evidence, Signal
from referee.model.item import Derivation, TextPart, TimeSegment
from referee.policy import Policy

POLICY = """
id: seg
version: "1"
categories:
  hate: {description: hate}
  spam: {description: spam}
detectors: {keyword: {}}
surfaces:
  default:
    rules:
      - {id: hate_share, categories: [hate], threshold: 0.8, segments: {share: 0.25}, action: remove}
      - {id: spam_count, categories: [spam], threshold: 0.5, segments: {count: 3}, action: limit_reach}
      - {id: hate_worst, categories: [hate], threshold: 0.9, segments: {worst: true}, action: hold_for_review}
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy.from_yaml(POLICY)


def episode() -> ContentItem:
    return ContentItem(id="ep1", surface="podcast_episode",
                       parts=[{"kind": "audio", "id": "ep", "data": "UklGRg=="}])


def transcript(seconds: float, source: str = "ep") -> TextPart:
    """A transcript of ``seconds`` of audio in 10-second segments of 100 characters."""
    n = int(seconds // 10)
    segments = tuple(TimeSegment(start=100 * k, end=100 * (k + 1), start_s=10.0 * k, end_s=10.0 * (k + 1))
                     for k in range(n))
    return TextPart(id=f"{source}.transcript", role="transcript", text="x" * (100 * n),
                    derived=Derivation(source_part=source, detector="transcribe", detector_version="1",
                                       segments=segments))


def timed(category: str, ranges: list[tuple[float, float, float]], detector: str = "keyword",
          source: str = "ep") -> Signal:
    """One signal with one piece of evidence per (start_s, end_s, score)."""
    evidence = tuple(Evidence(part_id=f"{source}.transcript", source_part=source, start=0, end=1,
                              start_s=a, end_s=b, detail={"score": s}) for a, b, s in ranges)
    return Signal(detector=detector, detector_version="1", category=category,
                  score=max(s for _, _, s in ranges), evidence=evidence)


def fired(decision) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r.rule_id: r.kind for r in decision.reasons}


def test_share_of_flagged_time_fires_at_the_share_and_not_below(policy: Policy) -> None:
    # 100 s of audio; hate at 0.85 for 20 s: 20% < 25%.
    low = decide(policy, episode(), [timed("hate", [(0, 10, 0.85), (50, 60, 0.85)])], derived=[transcript(100)])
    assert "hate_share" not in fired(low) and low.action is Action.allow
    # 30 s flagged (two overlapping ranges count once): 30% >= 25%.
    high = decide(policy, episode(), [timed("hate", [(0, 10, 0.85), (5, 20, 0.85), (50, 60, 0.85)])],
                  derived=[transcript(100)])
    assert high.action is Action.remove
    (reason,) = [r for r in high.reasons if r.rule_id == "hate_share"]
    assert reason.kind == "threshold" and reason.parts == ("ep",) and reason.category == "hate"
    assert "30.0% of 100.0 s flagged" in reason.message and "0:00-0:20, 0:50-1:00" in reason.message


def test_segments_below_the_threshold_are_not_flagged_time(policy: Policy) -> None:
    # 60 s of hate evidence, but only 10 s of it scores 0.8 or more.
    d = decide(policy, episode(), [timed("hate", [(0, 10, 0.95), (10, 70, 0.6)])], derived=[transcript(100)])
    assert "hate_share" not in fired(d)
    assert fired(d)["hate_worst"] == "threshold"  # the worst segment (0.95) still holds it


def test_a_count_of_flagged_segments(policy: Policy) -> None:
    two = [timed("spam", [(0, 10, 0.7), (30, 40, 0.7), (35, 38, 0.9)])]  # the third overlaps the second: 2
    assert "spam_count" not in fired(decide(policy, episode(), two, derived=[transcript(100)]))
    three = [timed("spam", [(0, 10, 0.7), (10, 20, 0.7), (30, 40, 0.6)])]  # ranges that only touch stay apart
    d = decide(policy, episode(), three, derived=[transcript(100)])
    assert d.action is Action.limit_reach and "3 flagged segments ≥ 3" in d.reasons[0].message
    weak = [timed("spam", [(0, 10, 0.7), (10, 20, 0.7), (30, 40, 0.4)])]
    assert "spam_count" not in fired(decide(policy, episode(), weak, derived=[transcript(100)]))


def test_the_worst_segment_reads_only_time_coded_evidence(policy: Policy) -> None:
    text_only = Signal(detector="keyword", detector_version="1", category="hate", score=0.99,
                       evidence=(Evidence(part_id="title", start=0, end=4),))
    assert "hate_worst" not in fired(decide(policy, episode(), [text_only], derived=[transcript(100)]))
    d = decide(policy, episode(), [timed("hate", [(751, 765, 0.93)])], derived=[transcript(800)])
    (reason,) = [r for r in d.reasons if r.rule_id == "hate_worst"]
    assert "worst segment 12:31-12:45 scored 0.93" in reason.message


def test_a_share_that_cannot_be_measured_is_on_error_never_an_allow(policy: Policy) -> None:
    d = decide(policy, episode(), [timed("hate", [(0, 50, 0.85)])])  # no transcript timing passed
    assert fired(d)["hate_share"] == "on_error" and d.action is Action.hold_for_review
    # Nothing flagged: no share to measure, nothing to hold.
    assert "hate_share" not in fired(decide(policy, episode(), [timed("hate", [(0, 50, 0.5)])]))


def test_a_failed_detector_is_on_error_for_segment_rules_too(policy: Policy) -> None:
    failure = DetectorFailure(detector="keyword", detector_version="1", kind="timeout", message="slow")
    d = decide(policy, episode(), [], [failure], derived=[transcript(100)])
    assert {fired(d)[r] for r in ("hate_share", "spam_count", "hate_worst")} == {"on_error"}


def test_each_audio_part_is_measured_on_its_own_time(policy: Policy) -> None:
    # 20 s flagged in a 40 s clip (50%) fires, though it would be 20% of both clips together.
    signals = [timed("hate", [(0, 20, 0.85)], source="b")]
    d = decide(policy, episode(), signals, derived=[transcript(60, "a"), transcript(40, "b")])
    (reason,) = [r for r in d.reasons if r.rule_id == "hate_share"]
    assert reason.parts == ("b",) and "50.0% of 40.0 s" in reason.message


def test_a_segment_score_never_exceeds_its_signal_and_the_lexicon_weight_counts_as_one(policy: Policy) -> None:
    ev = (Evidence(part_id="ep.transcript", source_part="ep", start_s=0, end_s=30, detail={"weight": 0.95}),)
    capped = Signal(detector="keyword", detector_version="1", category="hate", score=0.7, evidence=ev)
    assert "hate_share" not in fired(decide(policy, episode(), [capped], derived=[transcript(100)]))
    weighted = Signal(detector="keyword", detector_version="1", category="hate", score=0.95, evidence=ev)
    assert fired(decide(policy, episode(), [weighted], derived=[transcript(100)]))["hate_share"] == "threshold"


def test_a_policy_without_segment_rules_compiles_without_them() -> None:
    plain = Policy.from_yaml(POLICY.split("      - {id: hate_share")[0]
                             + "      - {id: h, categories: [hate], threshold: 0.8, action: remove}\n")
    assert plain.compiled_rules("default").needs_segments is False  # type: ignore[attr-defined]
    seg = Policy.from_yaml(POLICY)
    assert seg.compiled_rules("default").needs_segments is True  # type: ignore[attr-defined]
    # The plain rule on a time-coded signal acts on its score, as before.
    d = decide(plain, episode(), [timed("hate", [(0, 1, 0.9)])])
    assert d.action is Action.remove


@pytest.mark.slow
def test_end_to_end_on_an_espeak_clip(tmp_path: Path) -> None:
    """Real speech through transcription and the lexicon: a count rule on the spam segments."""
    pytest.importorskip("faster_whisper", reason="needs the media extra (pip install 'referee[media]')")
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    from referee.engine import Engine

    wav = tmp_path / "ep.wav"
    words = ("Welcome to the show. Click here to win money. Today we talk about gardens. "
             "Click here to win money. Tomatoes need sun. Click here to win money.")
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), words], check=True, timeout=60)
    (tmp_path / "spam.txt").write_text("click here\nwin money\n")
    policy = Policy.from_yaml(f"""
id: seg-e2e
version: "1"
categories:
  spam: {{description: spam}}
detectors:
  transcribe: {{}}
  lexicon: {{lists: {{spam: {tmp_path / 'spam.txt'}}}}}
plan:
  - {{id: media, detectors: [transcribe]}}
  - {{id: text, detectors: [lexicon]}}
surfaces:
  default:
    rules:
      - {{id: spam_thrice, categories: [spam], threshold: 0.5, segments: {{count: 3}}, action: remove}}
      - {{id: spam_once, categories: [spam], threshold: 0.5, segments: {{worst: true}}, action: label}}
""")
    item = ContentItem(id="e2e", surface="podcast_episode", parts=[{"kind": "audio", "id": "ep", "path": str(wav)}])
    with Engine.from_policy(policy) as engine:
        d = engine.moderate(item)
    ranges = sorted({(e.start_s, e.end_s) for s in d.signals for e in s.evidence if e.start_s is not None})
    assert len(ranges) >= 3 and all(a < b for a, b in ranges), d.signals
    assert {r.rule_id for r in d.reasons} == {"spam_thrice", "spam_once"} and d.action is Action.remove
    assert "3 flagged segments" in d.reasons[0].message
