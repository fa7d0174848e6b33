"""Serving: ONNX matches torch, long texts are max-pooled over windows, the cache works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from referee.classifier import TextClassifier
from referee.errors import ModelError

torch = pytest.importorskip("torch")


def _torch_logits(model_dir: Path, encoder_dir: Path, windows: list[list[int]]) -> np.ndarray:
    from referee.classifier.export import full_module
    from referee.classifier.text import pad

    module = full_module(model_dir, encoder_dir=encoder_dir)
    ids, mask = pad(windows)
    with torch.no_grad():
        return module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()


def test_onnx_fp32_matches_torch_and_int8_is_close(tiny_model: Path, tiny_encoder_dir: Path) -> None:
    # all shorter than the model's 32-token window, so the torch side needs no windowing
    texts = ["you are a worthless idiot", "free iphone click here now", "lovely song", "a b c " * 8]
    fp32 = TextClassifier(tiny_model, variant="fp32", cache_size=0)
    int8 = TextClassifier(tiny_model, variant="int8", cache_size=0)
    windows = [[101, *fp32.tokenizer.encode(t, add_special_tokens=False).ids, 102] for t in texts]
    expected = _torch_logits(tiny_model, tiny_encoder_dir, windows)
    np.testing.assert_allclose(fp32.logits(texts), expected, atol=1e-4, rtol=1e-4)
    assert np.abs(int8.logits(texts) - expected).max() < 0.25


def test_long_text_is_max_pooled_over_windows(tiny_model: Path, tiny_encoder_dir: Path) -> None:
    clf = TextClassifier(tiny_model, variant="fp32", max_tokens=16, overlap=4, cache_size=0)
    text = "lovely song great beat " * 20 + "you are a worthless idiot nobody likes you"
    from referee.classifier.text import token_windows

    windows, _ = token_windows(clf.tokenizer, [text], 16, 4)
    per_window = _torch_logits(tiny_model, tiny_encoder_dir, windows)
    assert len(windows) > 5
    np.testing.assert_allclose(clf.logits([text])[0], per_window.max(axis=0), atol=1e-4)
    # the max really comes from different windows for different categories or at least not only the first
    assert not np.allclose(per_window[0], per_window.max(axis=0))
    # and the spans name the window each category's max came from, in the original text
    _, spans, counts = clf.predict_with_spans([text])
    assert counts[0] == len(windows)
    best = per_window.argmax(axis=0)
    for c, w in enumerate(best):
        start, end = spans[0, c]
        assert clf.tokenizer.encode(text[start:end], add_special_tokens=False).ids == windows[w][1:-1]


def test_batching_does_not_change_scores(tiny_model: Path) -> None:
    clf = TextClassifier(tiny_model, variant="fp32", batch_size=3, cache_size=0)
    texts = ["short", "a much longer text about the new album and its songs " * 3, "mid length text here", "x"]
    one_by_one = np.stack([clf.predict([t])[0] for t in texts])
    np.testing.assert_allclose(clf.predict(texts), one_by_one, atol=1e-5)


def test_int8_score_does_not_depend_on_batch_mates(tiny_model: Path) -> None:
    # Dynamic int8 scales activations per tensor: batched, a text's score would move with
    # whatever shares its batch. One window per call makes it exact, threads or not.
    texts = ["you are a worthless idiot", "free iphone click here now " * 4, "lovely song", "ok"]
    alone = TextClassifier(tiny_model, variant="int8", cache_size=0, intra_op_threads=1)
    together = TextClassifier(tiny_model, variant="int8", cache_size=0, intra_op_threads=2)
    one_by_one = np.stack([alone.predict([t])[0] for t in texts])
    np.testing.assert_array_equal(together.predict(texts), one_by_one)
    np.testing.assert_array_equal(together.predict(texts[::-1])[::-1], one_by_one)


def test_parallel_batches_match_sequential(tiny_model: Path) -> None:
    texts = [f"text number {i} " * (i % 7 + 1) for i in range(23)]
    one_core = TextClassifier(tiny_model, variant="fp32", cache_size=0, intra_op_threads=1, batch_size=4)
    two_cores = TextClassifier(tiny_model, variant="fp32", cache_size=0, intra_op_threads=2, batch_size=4)
    np.testing.assert_allclose(two_cores.predict(texts), one_core.predict(texts), atol=1e-5)


def test_cache_hits_on_normalised_text(tiny_model: Path) -> None:
    clf = TextClassifier(tiny_model, cache_size=2)
    a = clf.predict(["WIN a free iPhone"])
    b, spans, _ = clf.predict_with_spans(["win a  FREE iphone"])
    np.testing.assert_array_equal(a, b)
    assert clf.cache_hits == 1 and clf.cache_misses == 1
    assert spans[0, 0].tolist() == [0, len("win a  FREE iphone")]
    clf.predict(["two", "three"])  # evicts the oldest entry
    clf.predict(["win a free iphone"])
    assert clf.cache_misses == 4


def test_missing_graph_says_how_to_build(tmp_path: Path, tiny_model: Path) -> None:
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(tiny_model, copy)
    (copy / "model.int8.onnx").unlink()
    with pytest.raises(ModelError, match="referee model build"):
        TextClassifier(copy)


def test_served_with_the_text_recipe_its_card_records(tiny_model: Path, tmp_path: Path) -> None:
    """Trained with placeholders-v1 (the default), the model is served with it: which
    account is addressed and where a link points do not move the score."""
    import json
    import shutil

    texts = ["@alice you are a worthless idiot http://x.co/1",
             "@bob_the_builder99 you are a worthless idiot https://example.com/a/very/long/path?q=1"]
    clf = TextClassifier(tiny_model, variant="fp32", cache_size=0)
    assert clf.card.text_recipe == "placeholders-v1"
    a, b = clf.predict(texts)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # The same graph told the card says "plain" reads every word piece of the handles and links.
    plain = tmp_path / "plain"
    shutil.copytree(tiny_model, plain)
    card = json.loads((plain / "card.json").read_text(encoding="utf-8"))
    (plain / "card.json").write_text(json.dumps({**card, "text_recipe": "plain"}), encoding="utf-8")
    a_plain, b_plain = TextClassifier(plain, variant="fp32", cache_size=0).predict(texts)
    assert np.abs(a_plain - b_plain).max() > 1e-4


def test_layer_norms_stay_unfused_in_the_graph_and_the_session(tiny_model: Path, tmp_path: Path) -> None:
    # SkipLayerNormalization's scalar mean/variance loop was ~28 % of an int8 tweet (export.fuse);
    # onnxruntime re-fuses Add + LayerNormalization at load time unless told not to.
    import onnx
    import onnxruntime as ort

    from referee.classifier import artifact
    from referee.classifier.runtime import SESSION_DISABLED_OPTIMIZERS

    for variant in ("fp32", "int8"):
        graph = artifact.onnx_path(tiny_model, variant)
        ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
        assert "LayerNormalization" in ops and "SkipLayerNormalization" not in ops, variant
        assert not ops & {"EmbedLayerNormalization", "QEmbedLayerNormalization"}, variant
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # where the fusion lives
        opts.optimized_model_filepath = str(tmp_path / f"{variant}.optimized.onnx")
        ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"],
                             disabled_optimizers=SESSION_DISABLED_OPTIMIZERS)
        loaded = {node.op_type for node in onnx.load(opts.optimized_model_filepath).graph.node}
        assert "SkipLayerNormalization" not in loaded and "LayerNormalization" in loaded, variant
