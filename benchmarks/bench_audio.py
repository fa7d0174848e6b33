"""Transcription plus scoring of a generated podcast episode: how much faster than real time.

The episode is espeak-ng speech (Debian package; installed here with apt-get when missing)
of a few paragraphs separated by pauses, resampled to 16 kHz mono with sox. The engine
runs the plan [transcribe] -> [lexicon], as a policy would. Prints ``audio_s=``,
``process_s=`` (median of --repeat runs, model loaded), ``realtime_factor=`` (process
seconds per audio second: 0.1 is 10x faster than real time), ``x_realtime=`` and the
flagged time ranges found.

    .venv/bin/python benchmarks/bench_audio.py [--paragraphs 12] [--repeat 2] [--threads 2] [--word-timestamps]
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

from referee.engine import Engine
from referee.model import ContentItem
from referee.plugins.lexicon import LexiconDetector
from referee.plugins.transcribe import TranscribeDetector
from referee.policy import Policy

PARAGRAPHS = [
    "Welcome back to the podcast. Today we talk about touring, writing songs and life on the road.",
    "Our guest played forty shows last year, and she told us the van broke down twice in one week.",
    "If you want to support the show, click here to win money, or so the spam bots keep telling us.",
    "The new album was recorded in a small studio by the sea, with old microphones and a borrowed piano.",
    "We asked about the hardest part of touring. The answer was sleep, and missing the people at home.",
    "Next week we listen to the demos from the first record, and we take questions from listeners.",
]

POLICY = """
id: bench_audio
version: "1"
categories:
  spam: {description: Unsolicited commercial messages., severity: low}
detectors:
  transcribe: {}
  lexicon: {lists: {spam: ["click here", "win money"]}}
plan:
  - {id: media, detectors: [transcribe]}
  - {id: text, detectors: [lexicon]}
surfaces:
  default:
    rules:
      - {id: spam.limit, categories: spam, threshold: 0.5, action: limit_reach}
"""


def ensure_tools() -> None:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=False, capture_output=True)
    if any(shutil.which(t) is None for t in ("espeak-ng", "sox")):
        sys.exit("bench_audio needs espeak-ng and sox (apt-get install espeak-ng sox)")


def episode(folder: Path, paragraphs: int) -> Path:
    pieces = []
    for i in range(paragraphs):
        raw, wav = folder / f"p{i}.raw.wav", folder / f"p{i}.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), PARAGRAPHS[i % len(PARAGRAPHS)]], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(wav), "pad", "0", "1.5"], check=True)
        pieces.append(str(wav))
    out = folder / "episode.wav"
    subprocess.run(["sox", *pieces, str(out)], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paragraphs", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--word-timestamps", action="store_true", help="one time span per word")
    args = ap.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory() as tmp:
        path = episode(Path(tmp), args.paragraphs)
        with wave.open(str(path)) as w:
            audio_s = w.getnframes() / w.getframerate()
        data = base64.b64encode(path.read_bytes()).decode()
    transcribe = TranscribeDetector(threads=args.threads, word_timestamps=args.word_timestamps)
    lexicon = LexiconDetector({"spam": ["click here", "win money"]})
    times = []
    with Engine(Policy.from_yaml(POLICY), [transcribe, lexicon]) as engine:
        for r in range(args.repeat + 1):
            item = ContentItem(id=f"ep{r}", surface="podcast_episode",
                               parts=[{"kind": "audio", "id": "ep", "data": data}])
            began = time.perf_counter()
            decision = engine.moderate(item)
            if r:  # the first run loads the model
                times.append(time.perf_counter() - began)
            else:
                print(f"first_run_s={time.perf_counter() - began:.2f}  # includes loading the model")
    process_s = statistics.median(times)
    ranges = [(ev.start_s, ev.end_s) for s in decision.signals for ev in s.evidence]
    print(f"audio_s={audio_s:.1f}")
    print(f"process_s={process_s:.2f}")
    print(f"realtime_factor={process_s / audio_s:.3f}")
    print(f"x_realtime={audio_s / process_s:.1f}")
    print(f"action={decision.action.value} flagged_ranges={ranges}")


if __name__ == "__main__":
    main()
