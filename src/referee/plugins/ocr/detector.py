"""OCR: the text baked into cover art and avatars, as a derived text part.

The detector reads image parts and scores nothing itself (``derives = True``):
it returns one text part per image (role ``ocr``, id ``<image id>.ocr``) whose
``derived.source_part`` names the image, so the text detectors of a LATER plan
stage read the text and the engine maps their evidence back to the image.
Put it in an early stage of the plan::

    plan:
      - {id: media, detectors: [ocr]}
      - {id: text, detectors: [lexicon, classifier]}

Recognition is RapidOCR (PP-OCRv4 detection + recognition ONNX models, shipped
inside the ``rapidocr-onnxruntime`` wheel: nothing is downloaded). Images are
downscaled so their longer side is at most ``max_side`` pixels before OCR: the
cost grows with the pixel count and cover text is large. Lines are ordered top
to bottom, left to right, and joined with newlines; lines below
``min_confidence`` are dropped. Words sometimes run together ("FREEFOLLOWERS"):
the lexicon matches on normalised text, which joins spaced-out phrases too.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from referee.detectors.base import BuildContext, Detector, DetectorConfig, Example
from referee.detectors.media import decode_rgb, derived_part_id, part_bytes
from referee.errors import ModelError
from referee.model import ContentItem, Derivation, ImagePart, Signal, TextPart

#: Bump when the same image can give different text (preprocessing, ordering).
_CODE_VERSION = "2"


class OcrConfig(DetectorConfig):
    """The ``detectors.ocr`` block."""

    max_side: int = Field(default=1280, ge=64, le=8192, description="Downscale so the longer side is at most this.")
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0, description="Drop recognised lines below this score.")
    threads: int = Field(default=2, ge=1, le=64, description="onnxruntime threads per model.")


def load_rgb(data: bytes, where: str, max_side: int | None = None) -> Any:
    """Decoded pixels as an RGB uint8 array, downscaled to ``max_side``; InputError when corrupt."""
    import numpy as np

    rgb, _ = decode_rgb(data, where, max_side, resample="lanczos")
    return np.asarray(rgb, dtype=np.uint8)


class OcrDetector(Detector):
    """Image parts -> one derived ``ocr`` text part each."""

    name = "ocr"
    config_model = OcrConfig
    reads = frozenset({"image"})
    derives = True
    timeout_s = 60.0

    def __init__(self, max_side: int = 1280, min_confidence: float = 0.5, threads: int = 2) -> None:
        self.max_side = max_side
        self.min_confidence = min_confidence
        self.threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()
        try:
            from importlib.metadata import version

            lib = version("rapidocr-onnxruntime")
        except Exception as exc:  # noqa: BLE001 - PackageNotFoundError: the optional extra is missing
            raise ModelError("ocr needs the 'media' extra (rapidocr-onnxruntime): pip install 'referee[media]'") from exc
        self.version = f"rapidocr-{lib}.{_CODE_VERSION}.s{max_side}.c{min_confidence:g}"

    @classmethod
    def build(cls, config: DetectorConfig, context: BuildContext) -> "OcrDetector":
        assert isinstance(config, OcrConfig)
        return cls(max_side=config.max_side, min_confidence=config.min_confidence, threads=config.threads)

    @property
    def categories(self) -> tuple[str, ...]:
        return ()

    def detect(self, item: ContentItem) -> list[Signal]:
        return []

    def _ocr(self) -> Any:
        with self._lock:
            if self._engine is None:
                from rapidocr_onnxruntime import RapidOCR

                self._engine = RapidOCR(intra_op_num_threads=self.threads, inter_op_num_threads=1)
            return self._engine

    def read_text(self, rgb: Any) -> str:
        """The text of one RGB image: lines top to bottom, left to right."""
        engine = self._ocr()
        bgr = rgb[:, :, ::-1].copy()  # RapidOCR follows OpenCV's channel order
        with self._lock:  # one onnxruntime session; its run() is thread-safe but we keep threads bounded
            result, _ = engine(bgr)
        boxes: list[tuple[float, float, float, str]] = []  # top, bottom, left, text
        for box, text, score in result or []:
            if float(score) < self.min_confidence or not str(text).strip():
                continue
            ys = [float(p[1]) for p in box]
            xs = [float(p[0]) for p in box]
            boxes.append((min(ys), max(ys), min(xs), str(text).strip()))
        if not boxes:
            return ""
        # A box joins a row when it overlaps the row's last box vertically by at least half
        # the smaller height (slightly rotated text still reads as one line).
        rows: list[list[tuple[float, float, float, str]]] = []
        for box in sorted(boxes, key=lambda b: (b[0] + b[1]) / 2):
            for row in rows:
                top, bottom = row[-1][0], row[-1][1]
                overlap = min(bottom, box[1]) - max(top, box[0])
                if overlap >= 0.5 * min(bottom - top, box[1] - box[0]):
                    row.append(box)
                    break
            else:
                rows.append([box])
        return "\n".join(" ".join(b[3] for b in sorted(row, key=lambda b: b[2])) for row in rows)

    def derive_many(self, items: Sequence[ContentItem]) -> list[list[TextPart]]:
        results: list[list[TextPart]] = []
        for view in items:
            parts: list[TextPart] = []
            for part in view.parts:
                if not isinstance(part, ImagePart):
                    continue
                rgb = load_rgb(part_bytes(part), f"part {part.id}", self.max_side)
                text = self.read_text(rgb)
                if not text:
                    continue
                parts.append(TextPart(
                    id=derived_part_id(part.id, "ocr"), role="ocr", text=text,
                    derived=Derivation(source_part=part.id, detector=self.name, detector_version=self.version)))
            results.append(parts)
        return results

    def close(self) -> None:
        self._engine = None

    @classmethod
    def examples(cls) -> list[Example]:
        # OCR emits no signals of its own: its example is that it scores nothing.
        return [Example(item=ContentItem(id="ocr-text", text="FREE FOLLOWERS click here"), category=None)]

