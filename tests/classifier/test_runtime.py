"""Serving: ONNX matches torch, long texts are max-pooled over windows, the cache and
the micro-batcher return each caller its own answer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from referee.classifier import MicroBatcher, TextClassifier
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


def test_microbatcher_returns_each_caller_its_result_under_threads() -> None:
    sizes: list[int] = []
    lock = threading.Lock()

    def fn(items: list[int]) -> list[int]:
        with lock:
            sizes.append(len(items))
        time.sleep(0.002)
        return [i * 10 for i in items]

    results: dict[int, int] = {}
    with MicroBatcher(fn, max_batch=16, max_wait_ms=20) as batcher:
        barrier = threading.Barrier(64)

        def worker(i: int) -> None:
            barrier.wait()
            results[i] = batcher.predict(i, timeout=10)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {i: i * 10 for i in range(64)}
    assert sum(sizes) == 64 and max(sizes) <= 16
    assert len(sizes) < 64  # requests were actually gathered into batches


def test_microbatcher_flushes_after_max_wait() -> None:
    with MicroBatcher(lambda xs: [x + 1 for x in xs], max_batch=100, max_wait_ms=5) as batcher:
        t0 = time.perf_counter()
        assert batcher.predict(1, timeout=2) == 2
        assert time.perf_counter() - t0 < 1.0


def test_microbatcher_failure_reaches_every_caller_of_the_batch() -> None:
    def fn(items: list[str]) -> list[str]:
        raise ValueError("model exploded")

    with MicroBatcher(fn, max_batch=4, max_wait_ms=50) as batcher:
        futures = [batcher.submit(str(i)) for i in range(4)]
        for f in futures:
            with pytest.raises(ValueError, match="model exploded"):
                f.result(timeout=5)


def test_microbatcher_wrong_result_count_is_an_error_and_close_refuses_new_work() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda xs: [1], max_batch=4, max_wait_ms=30)
    futures = [batcher.submit(i) for i in range(3)]
    with pytest.raises(RuntimeError, match="returned 1 results for"):
        futures[-1].result(timeout=5)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(1)


def test_microbatcher_with_text_classifier(tiny_model: Path) -> None:
    # fp32: int8 uses dynamic activation scales per batch, so its scores move by ~0.01
    # with batch composition; fp32 must not move at all.
    clf = TextClassifier(tiny_model, variant="fp32", cache_size=0)
    texts = [f"text number {i} free iphone" if i % 2 else f"nice song {i}" for i in range(20)]
    expected = clf.predict(texts)
    with MicroBatcher(clf.predict, max_batch=8, max_wait_ms=10) as batcher:
        futures = [batcher.submit(t) for t in texts]
        got = np.stack([f.result(timeout=10) for f in futures])
    np.testing.assert_allclose(got, expected, atol=1e-5)
