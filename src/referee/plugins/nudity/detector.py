"""Nudity in images: an ONNX object detector (NudeNet's 320n by default) as region evidence.

LICENCE: the ``nudenet`` wheel (3.4) carries an AGPL-3.0 LICENSE file while its
package metadata says MIT. It is therefore NOT part of any default install: it
is the optional ``nudity`` extra, and a deployment that ships it should treat the
model as AGPL-3.0. Only the model file (``nudenet/320n.onnx``) is used; the
pre- and post-processing here are referee's own (Pillow + numpy, no OpenCV).

The seam is the model: ``model_path`` points at any ONNX detector with the same
YOLOv8-style output (``(1, 4 + classes, anchors)``: box centre, size, class
scores) and ``labels`` names its classes, so a team can run its own model;
tests pass a scripted session instead of onnxruntime's.

Each detection of a label the policy maps (``categories``: label -> category;
by default the five EXPOSED classes -> ``sexual``) at or above ``min_score``
becomes evidence with its ``region`` (x, y, width, height in the original image)
and the label as ``entry``; the category's score is the best detection's.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from referee.detectors.base import BuildContext, Detector, DetectorConfig, Example
from referee.detectors.media import decode_rgb, part_bytes
from referee.errors import ConfigError, ModelError
from referee.model import ContentItem, Evidence, ImagePart, Signal

#: NudeNet 3.4's class order for 320n.onnx.
NUDENET_LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)
DEFAULT_CATEGORIES = {label: "sexual" for label in (
    "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
    "ANUS_EXPOSED")}
_CODE_VERSION = "1"
_MAX_EVIDENCE = 5


class Session(Protocol):
    """What the detector needs of an ONNX session (onnxruntime's InferenceSession has it)."""

    def get_inputs(self) -> Any: ...

    def run(self, output_names: Any, feeds: dict[str, Any]) -> Any: ...


class NudityConfig(DetectorConfig):
    """The ``detectors.nudity`` block."""

    model_path: str | None = Field(default=None, description="An ONNX detector; default: nudenet's 320n.onnx.")
    labels: list[str] | None = Field(default=None, description="The model's class names, in output order.")
    categories: dict[str, str] | None = Field(default=None, description="Label -> policy category.")
    min_score: float = Field(default=0.4, ge=0.05, le=1.0, description="Detections below this are ignored.")
    resolution: int = Field(default=320, ge=64, le=2048, description="The model's input size.")
    threads: int = Field(default=2, ge=1, le=64)


def default_model_path() -> str:
    try:
        import importlib.resources

        path = importlib.resources.files("nudenet") / "320n.onnx"
    except ModuleNotFoundError as exc:
        raise ModelError("nudity needs the optional 'nudity' extra (nudenet; AGPL-3.0, see docs/media.md) "
                         "or detectors.nudity.model_path pointing at an ONNX detector") from exc
    return str(path)


def _image(part: ImagePart) -> Any:
    return decode_rgb(part_bytes(part), f"part {part.id}")[0]


def _bilinear(img: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """Resize a square (h, w, 3) image to (size, size) by bilinear sampling without
    antialiasing (OpenCV's INTER_LINEAR, which the model was trained with)."""
    n = img.shape[0]
    src = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0, n - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    f = (src - lo).astype(np.float32)
    rows = img[lo] * (1 - f)[:, None, None] + img[hi] * f[:, None, None]
    out: NDArray[np.float32] = rows[:, lo] * (1 - f)[None, :, None] + rows[:, hi] * f[None, :, None]
    return out


def _nms(boxes: NDArray[np.float64], scores: NDArray[np.float64], iou: float) -> list[int]:
    """Greedy non-maximum suppression over (x, y, w, h) boxes; indices kept, best first."""
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = int(order.pop(0))
        keep.append(i)
        x1, y1 = np.maximum(boxes[i, 0], boxes[order, 0]), np.maximum(boxes[i, 1], boxes[order, 1])
        x2 = np.minimum(boxes[i, 0] + boxes[i, 2], boxes[order, 0] + boxes[order, 2])
        y2 = np.minimum(boxes[i, 1] + boxes[i, 3], boxes[order, 1] + boxes[order, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        union = boxes[i, 2] * boxes[i, 3] + boxes[order, 2] * boxes[order, 3] - inter
        order = [j for j, o in zip(order, inter / np.maximum(union, 1e-9)) if o <= iou]
    return keep


class NudityDetector(Detector):
    """Image parts -> signals per category from an ONNX object detector's detections."""

    name = "nudity"
    config_model = NudityConfig
    reads = frozenset({"image"})
    timeout_s = 30.0

    def __init__(self, session: Session | None = None, model_path: str | None = None,
                 labels: Sequence[str] = NUDENET_LABELS, categories: dict[str, str] | None = None,
                 min_score: float = 0.4, resolution: int = 320, threads: int = 2,
                 policy_categories: Sequence[str] | None = None) -> None:
        self.labels = tuple(labels)
        self.label_categories = dict(DEFAULT_CATEGORIES if categories is None else categories)
        unknown = set(self.label_categories) - set(self.labels)
        if unknown:
            raise ConfigError(f"detectors.nudity.categories: unknown labels {sorted(unknown)}; "
                              f"the model's labels: {', '.join(self.labels)}")
        if policy_categories is not None:
            self.label_categories = {k: v for k, v in self.label_categories.items() if v in policy_categories}
        self.min_score = min_score
        self.resolution = resolution
        self._lock = threading.Lock()
        if session is None:
            path = model_path or default_model_path()
            if not Path(path).is_file():
                raise ModelError(f"detectors.nudity.model_path: no ONNX model at {path!r}")
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            model_name = Path(path).name
        else:
            model_name = type(session).__name__
        self.session: Session = session
        self._input = session.get_inputs()[0].name
        self.version = f"{model_name}.{_CODE_VERSION}.r{resolution}.m{min_score:g}"

    @classmethod
    def build(cls, config: DetectorConfig, context: BuildContext) -> "NudityDetector":
        assert isinstance(config, NudityConfig)
        path = config.model_path
        if path is not None and not Path(path).is_absolute():
            path = str(context.base_dir / path)
        return cls(model_path=path, labels=config.labels or NUDENET_LABELS, categories=config.categories,
                   min_score=config.min_score, resolution=config.resolution, threads=config.threads,
                   policy_categories=context.categories)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.label_categories.values())))

    def detections(self, rgb: Any) -> list[tuple[str, float, tuple[int, int, int, int]]]:
        """(label, score, (x, y, w, h)) of every detection at or above ``min_score``."""
        from PIL import Image

        w, h = rgb.size
        side = max(w, h)
        square = Image.new("RGB", (side, side))
        square.paste(rgb, (0, 0))  # padded right and bottom, as the model was trained
        # Blue, green, red: NudeNet's own preprocessing (cvtColor then swapRB) ends in that order.
        pixels = _bilinear(np.asarray(square, dtype=np.float32)[:, :, ::-1], self.resolution)
        blob = (pixels.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
        with self._lock:
            (output, *_) = self.session.run(None, {self._input: blob})
        rows = np.asarray(output, dtype=np.float64).squeeze(0).T  # (anchors, 4 + classes)
        scores_all = rows[:, 4:4 + len(self.labels)]
        best = scores_all.max(axis=1)
        mask = best >= self.min_score
        if not mask.any():
            return []
        rows, best, cls = rows[mask], best[mask], scores_all[mask].argmax(axis=1)
        scale = side / self.resolution
        boxes = np.stack([(rows[:, 0] - rows[:, 2] / 2) * scale, (rows[:, 1] - rows[:, 3] / 2) * scale,
                          rows[:, 2] * scale, rows[:, 3] * scale], axis=1)
        boxes[:, 0] = np.clip(boxes[:, 0], 0, w)
        boxes[:, 1] = np.clip(boxes[:, 1], 0, h)
        boxes[:, 2] = np.minimum(boxes[:, 2], w - boxes[:, 0])
        boxes[:, 3] = np.minimum(boxes[:, 3], h - boxes[:, 1])
        out = []
        for i in _nms(boxes, best, 0.45):
            x, y, bw, bh = (int(round(v)) for v in boxes[i])
            out.append((self.labels[int(cls[i])], float(best[i]), (x, y, max(bw, 0), max(bh, 0))))
        return out

    def detect(self, item: ContentItem) -> list[Signal]:
        found: dict[str, list[Evidence]] = {}
        top: dict[str, float] = {}
        for part in item.parts:
            if not isinstance(part, ImagePart):
                continue
            for label, score, region in self.detections(_image(part)):
                category = self.label_categories.get(label)
                if category is None:
                    continue
                found.setdefault(category, []).append(Evidence(
                    part_id=part.id, region=region, entry=label, detail={"score": round(score, 4)}))
                top[category] = max(top.get(category, 0.0), score)
        return [Signal(detector=self.name, detector_version=self.version, category=c, score=min(top[c], 1.0),
                       evidence=tuple(sorted(evs, key=lambda e: -float(e.detail["score"]))[:_MAX_EVIDENCE]))
                for c, evs in found.items()]

    @classmethod
    def examples(cls) -> list[Example]:
        return [Example(item=ContentItem(id="nudity-text", text="a text part: nothing to look at"), category=None)]
