"""Serving: onnxruntime + fast tokenizer, no torch.

``TextClassifier`` scores texts with calibrated per-category probabilities:
long texts are split into overlapping windows and max-pooled per category
(a threat anywhere in a podcast transcript counts), windows are batched by
length so short comments do not pay for long ones' padding, and an LRU cache
keyed by normalised text absorbs spam waves.

Concurrent single requests are gathered into batches one level up, by the
HTTP service's coalescer (``referee.serve.coalesce``), so every detector —
not only this one — sees batches.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from referee.classifier import artifact
from referee.classifier.calibrate import apply_platt
from referee.classifier.text import length_batches, load_tokenizer, normalise, pad, token_windows
from referee.errors import ModelError

# onnxruntime would fuse each residual Add + LayerNormalization back into
# SkipLayerNormalization at load time; its scalar mean/variance loop was the
# largest single cost of an int8 tweet (see export.fuse).
SESSION_DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]



class TextClassifier:
    """A loaded model directory, ready to score text.

    Thread-safe for concurrent ``predict`` calls (onnxruntime sessions are;
    the cache takes a lock). ``batch_size`` is windows per onnxruntime call, not
    texts per ``predict``: windows are sorted by length and cut into small
    batches, because padding a 32-tweet batch to its longest tweet doubles the
    tokens computed (measured on Davidson tweets: 96 % padding at 32, 9 % at 4).

    int8 runs one window per onnxruntime call unless told otherwise: dynamic
    quantisation scales activations per tensor, so in a batch a text's score
    moved with its batch-mates (up to 4 logits on tweets, measured), and a
    decision must not depend on what else arrived in the same millisecond.
    fp32 is batch-independent and batches by ``batch_size`` (default 4).

    Two ways to use the cores, picked per call. A call that is one batch (a
    single comment) runs on a session whose operators are split across
    ``intra_op_threads`` cores: lowest latency. A call of several batches runs them side
    by side, one core each, on a single-threaded session: small int8 operators
    split across cores spend much of their time waiting on each other, so
    batch-level parallelism gave ~15 % more tweets/s on 2 cores (and held up
    better when the host was noisy). ``intra_op_threads`` defaults to the
    machine's cores; one process per core wants ``intra_op_threads=1``.
    """

    def __init__(
        self,
        model_dir: str | Path,
        variant: str = "int8",
        max_tokens: int | None = None,
        overlap: int = 32,
        batch_size: int | None = None,
        intra_op_threads: int | None = None,
        cache_size: int = 10_000,
        max_windows: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.model_dir = Path(model_dir)
        self.card = artifact.read_card(self.model_dir)
        graph = artifact.onnx_path(self.model_dir, variant)
        tok = self.model_dir / artifact.TOKENIZER
        if not graph.exists() or not tok.exists():
            missing = graph.name if not graph.exists() else tok.name
            raise ModelError(f"{self.model_dir}: {missing} not found; {artifact.BUILD_HINT} "
                             f"(`referee model build {self.model_dir}`)")
        self.variant = variant
        self.categories = list(self.card.categories)
        self.max_tokens = max_tokens or self.card.max_tokens
        self.overlap = min(overlap, self.max_tokens - 3)
        self.batch_size = batch_size or (1 if variant == "int8" else 4)
        self.max_windows = max_windows
        self.tokenizer = load_tokenizer(tok)
        self._platt = [self.card.calibration[c] for c in self.categories]
        self.thresholds = {c: self.card.thresholds[c].threshold for c in self.categories}
        self.threads = intra_op_threads or os.cpu_count() or 1
        self.session = self._session(ort, graph, self.threads)
        self._batch_session = self._session(ort, graph, 1) if self.threads > 1 else self.session
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="referee-onnx") if self.threads > 1 else None
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray, int, str]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    def close(self) -> None:
        """Shut the session pool down (idempotent); the detector's ``close`` calls it."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    @staticmethod
    def _session(ort: Any, graph: Path, threads: int) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            return ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"],
                                        disabled_optimizers=SESSION_DISABLED_OPTIMIZERS)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"{graph}: onnxruntime cannot load it: {exc} (fix: {artifact.BUILD_HINT})") from exc

    @property
    def version(self) -> str:
        return f"{self.card.version}/{self.variant}"

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits per text: the max over its windows, per category."""
        return self._score(texts)[0]

    def _score(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Max-pooled logits, the character span of the window that gave each
        category its max (shape n x C x 2), and the number of windows per text."""
        n, c = len(texts), len(self.categories)
        out = np.full((n, c), -np.inf, dtype=np.float32)
        where = np.zeros((n, c, 2), dtype=np.int64)
        counts = np.zeros(n, dtype=np.int64)
        if not texts:
            return out, where, counts
        spans: list[tuple[int, int]] = []
        windows, owner = token_windows(self.tokenizer, texts, self.max_tokens, self.overlap, self.max_windows, spans,
                                       self.card.text_recipe)
        per_window = np.empty((len(windows), c), dtype=np.float32)
        batches = length_batches(windows, self.batch_size)
        if len(batches) == 1 or self._pool is None:
            for idx in batches:
                per_window[idx] = self._run(self.session, [windows[i] for i in idx])
        else:
            # One task per core, each a share of the batches dealt out in length order so the
            # shares cost about the same: a future per batch cost ~8 % of throughput (measured).
            shares = [batches[k :: self.threads] for k in range(self.threads)]

            def run_share(share: list[np.ndarray]) -> list[np.ndarray]:
                return [self._run(self._batch_session, [windows[i] for i in idx]) for idx in share]

            for share, results in zip(shares, self._pool.map(run_share, shares)):
                for idx, logits in zip(share, results):
                    per_window[idx] = logits
        span_arr = np.asarray(spans, dtype=np.int64).reshape(len(windows), 2)
        # token_windows emits each text's windows contiguously and in order.
        bounds = np.searchsorted(owner, np.arange(n + 1))
        for i in range(n):
            lo, hi = bounds[i], bounds[i + 1]
            counts[i] = hi - lo
            if hi > lo:
                best = per_window[lo:hi].argmax(axis=0) + lo
                out[i] = per_window[best, np.arange(c)]
                where[i] = span_arr[best]
        return out, where, counts

    @staticmethod
    def _run(session: Any, windows: list[list[int]]) -> np.ndarray:
        ids, mask = pad(windows)
        (logits,) = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(logits)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, shape (len(texts), len(categories))."""
        return self.predict_with_spans(texts)[0]

    def predict_with_spans(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities plus, per category, the ``[start, end)`` characters of the window
        that scored highest (the whole text when it fits one window) and the number of
        windows per text: the evidence for "where in the transcript"."""
        n, c = len(texts), len(self.categories)
        result = np.zeros((n, c), dtype=np.float32)
        where = np.zeros((n, c, 2), dtype=np.int64)
        counts = np.zeros(n, dtype=np.int64)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                hit = self._cache.get(normalise(text)) if self._cache_size else None
                # Window spans index the text as written: a cached multi-window entry of a
                # differently spaced variant would point at the wrong characters.
                if hit is not None and (hit[2] <= 1 or hit[3] == text):
                    self._cache.move_to_end(normalise(text))
                    result[i], where[i], counts[i] = hit[0], hit[1], hit[2]
                    self.cache_hits += 1
                else:
                    todo.setdefault(text, []).append(i)
                    self.cache_misses += 1
        if todo:
            unique = list(todo)
            logits, spans, nwin = self._score(unique)
            probs = apply_platt(logits, self._platt)
            with self._lock:
                for j, text in enumerate(unique):
                    span = spans[j] if nwin[j] > 1 else np.tile([0, len(text)], (c, 1))
                    rows = todo[text]
                    result[rows], where[rows], counts[rows] = probs[j], span, nwin[j]
                    if self._cache_size:
                        key = normalise(text)
                        self._cache[key] = (probs[j].copy(), span.copy(), int(nwin[j]), text)
                        self._cache.move_to_end(key)
                        while len(self._cache) > self._cache_size:
                            self._cache.popitem(last=False)
        for i, text in enumerate(texts):  # a cached single-window entry: span is this text
            if counts[i] <= 1:
                where[i] = (0, len(text))
        return result, where, counts

    def predict_one(self, text: str) -> np.ndarray:
        row: np.ndarray = self.predict([text])[0]
        return row
