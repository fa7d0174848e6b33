"""The committed default model: loads offline, matches its torch source, covers the default policy.

Needs the ONNX graphs exported locally (``make model`` / ``referee model build``);
skipped with that hint otherwise.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from referee.classifier import ModelRegistry
from referee.classifier.artifact import ONNX_FP32, ONNX_INT8, TOKENIZER, read_card

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def default_dir() -> Path:
    try:
        path = ModelRegistry(MODELS).resolve("champion")
    except Exception as exc:  # the registry itself is missing
        pytest.skip(f"no default model in {MODELS}: {exc}")
    if not all((path / f).exists() for f in (ONNX_FP32, ONNX_INT8, TOKENIZER)):
        pytest.skip(f"default model {path} is not built: run `make model` or `referee model build` first")
    return path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is not allowed in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_default_policy_loads_the_default_model_without_network(default_dir: Path, no_network: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from referee.plugins.classifier.detector import ClassifierDetector
    from referee.model import ContentItem
    from referee.policy import load_policy

    monkeypatch.setenv("REFEREE_MODELS", str(MODELS))
    policy = load_policy(REPO / "policies" / "default.yaml")
    det = ClassifierDetector.from_policy(policy, policy.detector_config("classifier"))
    assert set(det.categories) == set(policy.categories)
    signals = {s.category: s for s in det.detect(ContentItem(id="1", text="WIN a free iPhone!!! Click here now"))}
    assert signals["spam"].score > 0.5
    assert all(s.operating_threshold is not None for s in signals.values())


def test_card_documents_data_and_low_data_categories(default_dir: Path) -> None:
    card = read_card(default_dir)
    assert card.training["data"]["train"]["rows"] > 1000
    assert "corpus" in card.training and card.training["corpus"]["seed"] is not None
    assert "test" in card.metrics
    for cat in card.categories:
        assert cat in card.thresholds and cat in card.calibration


def test_onnx_matches_torch_on_the_default_model(default_dir: Path, no_network: None) -> None:
    """Also loads the packaged encoder through transformers with the network refused."""
    torch = pytest.importorskip("torch")
    from referee.classifier import TextClassifier
    from referee.classifier.export import full_module
    from referee.classifier.text import pad

    texts = ["I'm going to find you and stab you.", "Their new single is out on Friday, can't wait.",
             "Check out my channel and subscribe, I'll sub back!", "selling coke and molly dm for prices"]
    fp32 = TextClassifier(default_dir, variant="fp32", cache_size=0)
    int8 = TextClassifier(default_dir, variant="int8", cache_size=0)
    module = full_module(default_dir)
    windows = [[101, *fp32.tokenizer.encode(t, add_special_tokens=False).ids, 102] for t in texts]
    ids, mask = pad(windows)
    with torch.no_grad():
        expected = module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(fp32.logits(texts), expected, atol=1e-3, rtol=1e-3)
    assert np.abs(int8.predict(texts) - fp32.predict(texts)).max() < 0.1
