"""Training: unknown labels are masked, data errors name the line, a model directory is complete."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from referee.classifier import artifact  # noqa: E402
from referee.classifier.train import (  # noqa: E402
    TrainConfig,
    _fit_head,
    masked_bce,
    read_dataset,
    seed_everything,
    train,
)
from referee.errors import InputError  # noqa: E402


def test_masked_bce_ignores_unknown_labels() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    targets = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
    loss = masked_bce(logits, targets)
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[:, 1].abs().sum() == 0  # no gradient at all from unknown entries
    known = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0])
    assert torch.allclose(loss, known)  # mean over known entries only, not diluted by unknowns


def test_unknown_is_not_treated_as_negative(tmp_path: Path) -> None:
    """Category b is labelled only on 20 % of rows (all positive). Masked, the head has no
    evidence against b anywhere, so it scores the unlabelled rows high; if unknowns were
    zeros it would learn b is rare and score them low."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 16)).astype(np.float32)
    y = np.full((600, 2), np.nan, dtype=np.float32)
    y[:, 0] = (x[:, 0] > 0).astype(np.float32)
    labelled_b = rng.random(600) < 0.2
    y[labelled_b, 1] = 1.0
    cfg = TrainConfig(categories=["a", "b"], epochs=40, batch_size=64, lr=1e-2, progress=False, patience=40,
                      dropout=0.0)
    # Seeded as every caller of _fit_head seeds (train, loso.fit_head): the head's initial
    # weights come from torch's global generator, which starts from a random seed.
    seed_everything(cfg.seed)
    head, log = _fit_head(x, y, x, y, cfg, tmp_path)
    with torch.no_grad():
        p = torch.sigmoid(head(torch.from_numpy(x))).numpy()
    assert p[~labelled_b, 1].mean() > 0.9
    # and category a still learned from its own labels
    assert ((p[:, 0] > 0.5) == (y[:, 0] == 1)).mean() > 0.9
    # the same data with unknown filled as 0 gives the opposite: proves the test can fail
    y0 = np.nan_to_num(y, nan=0.0)
    seed_everything(cfg.seed)
    head0, _ = _fit_head(x, y0, x, y0, cfg, tmp_path)
    with torch.no_grad():
        p0 = torch.sigmoid(head0(torch.from_numpy(x))).numpy()
    assert p0[~labelled_b, 1].mean() < 0.5
    lines = (tmp_path / artifact.TRAIN_LOG).read_text().splitlines()
    assert json.loads(lines[0])["epoch"] == 1 and "dev_macro_auprc" in json.loads(lines[0])


def test_read_dataset_masks_missing_and_null(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "1", "text": "a", "hate": 1}\n{"id": "2", "text": "b", "hate": null, "spam": 0}\n')
    ds = read_dataset(path, ["hate", "spam"])
    assert ds.labels[0, 0] == 1 and np.isnan(ds.labels[0, 1])
    assert np.isnan(ds.labels[1, 0]) and ds.labels[1, 1] == 0
    assert ds.counts(["hate", "spam"])["spam"] == {"pos": 0, "neg": 1, "unknown": 1}


@pytest.mark.parametrize("line,message", [
    ('{"id": "1", "text": "a", "hate": 2}', "category 'hate' must be 1, 0 or null"),
    ('{"id": "1", "text": ""}', "'text' must be a non-empty string"),
    ('{"id": "1", "text": "a", "hate": "yes"}', "got 'yes'"),
    ("not json", "not valid JSON"),
])
def test_read_dataset_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "0", "text": "fine", "hate": 0}\n' + line + "\n")
    with pytest.raises(InputError, match=message) as info:
        read_dataset(path, ["hate"])
    assert f"{path}:2" in str(info.value)


def test_train_writes_a_complete_model_dir(tiny_model: Path) -> None:
    card = artifact.read_card(tiny_model)
    assert card.categories == ["harassment", "spam"]
    assert card.embed_dim == 32 and card.head_sha256 == artifact.sha256_file(tiny_model / artifact.HEAD)
    assert set(card.thresholds) == {"harassment", "spam"}
    assert card.training["data"]["train"]["labels"]["spam"]["unknown"] == 8
    assert card.training["config"]["seed"] == 13
    assert "torch" in card.library_versions
    # every category has under 100 positives: all flagged as low-data on the card
    assert set(card.low_data_categories) == {"harassment", "spam"}
    for name in (artifact.ONNX_FP32, artifact.ONNX_INT8, artifact.TOKENIZER, artifact.TRAIN_LOG):
        assert (tiny_model / name).exists(), name


def test_training_is_reproducible(tmp_path: Path, tiny_data, tiny_factory) -> None:  # type: ignore[no-untyped-def]
    cfg = TrainConfig(categories=["harassment", "spam"], epochs=5, batch_size=8, progress=False,
                      cache_dir=str(tmp_path / "cache"), max_tokens=32)
    a = train(tiny_data["train"], tiny_data["dev"], tmp_path / "a", cfg, encoder_factory=tiny_factory)
    b = train(tiny_data["train"], tiny_data["dev"], tmp_path / "b", cfg, encoder_factory=tiny_factory)
    np.testing.assert_allclose(a.dev_logits, b.dev_logits, atol=1e-6)
    assert a.card.head_sha256 == b.card.head_sha256


def test_finetune_mode_trains_the_encoder(tmp_path: Path, tiny_data, tiny_factory) -> None:  # type: ignore[no-untyped-def]
    cfg = TrainConfig(categories=["harassment", "spam"], mode="finetune", epochs=2, batch_size=8, progress=False,
                      max_tokens=32, encoder_lr=1e-3)
    res = train(tiny_data["train"], tiny_data["dev"], tmp_path / "ft", cfg, encoder_factory=tiny_factory)
    assert res.card.finetuned_encoder
    assert (tmp_path / "ft" / artifact.ENCODER_WEIGHTS).exists()
    assert len(res.log) >= 1


def test_partial_finetune_stores_only_its_layers_and_export_rebuilds_them(  # type: ignore[no-untyped-def]
        tmp_path: Path, tiny_data, tiny_factory, tiny_encoder_dir: Path) -> None:
    """``train_layers=1`` on the two-layer tiny BERT: the lower layer and the embeddings stay the
    packaged weights, the file holds the top layer alone (fp16), and the exported graph scores
    as the trained torch model does."""
    from safetensors.torch import load_file

    from referee.classifier.encoder import build_encoder, partial_weights
    from referee.classifier.export import export, full_module
    from referee.classifier.text import load_tokenizer
    from referee.classifier.train import _model_logits

    cfg = TrainConfig(categories=["harassment", "spam"], mode="finetune", epochs=2, batch_size=8, progress=False,
                      max_tokens=32, encoder_lr=1e-2, train_layers=1)
    out = tmp_path / "ft"
    res = train(tiny_data["train"], tiny_data["dev"], out, cfg, encoder_factory=tiny_factory)
    weights = out / artifact.ENCODER_WEIGHTS
    assert res.card.finetuned_encoder and partial_weights(weights)
    stored = load_file(str(weights))
    assert stored and all(k.startswith("encoder.layer.1.") for k in stored)
    assert {v.dtype for v in stored.values()} == {torch.float16}

    packaged = build_encoder(tiny_encoder_dir).bert.state_dict()
    rebuilt = build_encoder(tiny_encoder_dir, weights=weights).bert.state_dict()
    for key, value in rebuilt.items():
        if key.startswith("encoder.layer.1."):
            assert torch.equal(value, stored[key].float()), key
        else:
            assert torch.equal(value, packaged[key]), key
    assert any(not torch.equal(rebuilt[k], packaged[k]) for k in stored)  # the top layer did train
    # the weights are part of the model: in its version, and checked before an export
    assert res.card.encoder_sha256 == artifact.sha256_file(weights)
    assert res.card.version.endswith("." + res.card.encoder_sha256[:8])

    module = full_module(out, encoder_dir=tiny_encoder_dir)
    texts = ["shut up idiot", "free money click link now", "lovely track"]
    torch_logits = _model_logits(module.encoder, module.head, load_tokenizer(tiny_encoder_dir / "tokenizer.json"),
                                 texts, cfg)
    export(out, int8=False, encoder_dir=tiny_encoder_dir)
    from referee.classifier.runtime import TextClassifier

    clf = TextClassifier(out, variant="fp32")
    np.testing.assert_allclose(clf.logits(texts), torch_logits, atol=1e-4)
    clf.close()


def test_export_refuses_encoder_weights_the_card_does_not_name(  # type: ignore[no-untyped-def]
        tmp_path: Path, tiny_data, tiny_factory, tiny_encoder_dir: Path) -> None:
    from referee.classifier.export import full_module
    from referee.errors import ModelError

    cfg = TrainConfig(categories=["harassment", "spam"], mode="finetune", epochs=1, batch_size=8, progress=False,
                      max_tokens=32, train_layers=1)
    a = tmp_path / "a"
    train(tiny_data["train"], tiny_data["dev"], a, cfg, encoder_factory=tiny_factory)
    b = tmp_path / "b"
    train(tiny_data["train"], tiny_data["dev"], b, cfg.model_copy(update={"seed": 14, "encoder_lr": 1e-2}),
          encoder_factory=tiny_factory)
    (a / artifact.ENCODER_WEIGHTS).write_bytes((b / artifact.ENCODER_WEIGHTS).read_bytes())
    with pytest.raises(ModelError, match="not the encoder weights this model was trained with"):
        full_module(a, encoder_dir=tiny_encoder_dir)


def test_partial_weights_of_another_encoder_are_refused(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    from safetensors.torch import save_file

    from referee.classifier.encoder import build_encoder
    from referee.errors import ModelError

    path = tmp_path / "encoder.safetensors"
    save_file({"encoder.layer.7.output.dense.weight": torch.zeros(2, 2, dtype=torch.float16)}, str(path),
              metadata={"partial": "1"})
    with pytest.raises(ModelError, match="tensors the encoder does not have: encoder.layer.7"):
        build_encoder(tiny_encoder_dir, weights=path)


def test_partial_weights_must_hold_whole_layers(tmp_path: Path, tiny_encoder_dir: Path) -> None:
    from safetensors.torch import save_file

    from referee.classifier.encoder import build_encoder
    from referee.errors import ModelError

    layer = {k: v.half() for k, v in build_encoder(tiny_encoder_dir).bert.state_dict().items()
             if k.startswith("encoder.layer.1.")}
    path = tmp_path / "encoder.safetensors"
    save_file(layer, str(path), metadata={"partial": "1"})
    build_encoder(tiny_encoder_dir, weights=path)  # a whole layer loads
    dropped = sorted(layer)[0]
    save_file({k: v for k, v in layer.items() if k != dropped}, str(path), metadata={"partial": "1"})
    with pytest.raises(ModelError, match=f"must hold whole layers; missing {dropped}"):
        build_encoder(tiny_encoder_dir, weights=path)
    save_file({}, str(path), metadata={"partial": "1"})
    with pytest.raises(ModelError, match="it holds no tensor"):
        build_encoder(tiny_encoder_dir, weights=path)


def test_train_layers_without_finetune_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="train_layers=2 needs mode='finetune'"):
        TrainConfig(categories=["hate"], train_layers=2)


def test_real_encoder_finetunes_on_a_handful_of_texts(tmp_path: Path, tiny_data) -> None:  # type: ignore[no-untyped-def]
    """The packaged MiniLM, all layers, one short epoch: the path `--mode finetune` takes."""
    cfg = TrainConfig(categories=["harassment", "spam"], mode="finetune", epochs=1, batch_size=12, progress=False,
                      max_tokens=16)
    res = train(tiny_data["train"], tiny_data["dev"], tmp_path / "ft", cfg)
    assert res.card.encoder.startswith("all-MiniLM-L6-v2@") and res.card.embed_dim == 384
    assert res.card.metrics["dev"]["macro_auprc"] > 0.5
    assert (tmp_path / "ft" / artifact.ENCODER_WEIGHTS).stat().st_size > 50_000_000


def test_config_names_the_known_text_recipes_when_given_another() -> None:
    from pydantic import ValidationError

    from referee.classifier.text import TEXT_RECIPES

    assert TrainConfig(categories=["hate"]).text_recipe in TEXT_RECIPES
    with pytest.raises(ValidationError, match="text_recipe must be one of plain, placeholders-v1"):
        TrainConfig(categories=["hate"], text_recipe="emoji-v9")
