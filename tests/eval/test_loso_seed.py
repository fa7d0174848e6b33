"""The head's seed (scripts/quality_experiments.py --seed): it moves the head, not the data."""

from __future__ import annotations

import numpy as np
import pytest

from referee.eval import loso


def test_head_config_seed_defaults_to_the_recipe() -> None:
    pytest.importorskip("torch")
    assert loso.head_config().seed == 13
    cfg = loso.head_config(seed=14)
    assert cfg.seed == 14 and cfg.hidden == 256 and cfg.epochs == 150


def test_fit_head_is_repeatable_per_seed_and_differs_between_seeds() -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.full((300, len(loso.CATEGORIES)), np.nan, dtype=np.float32)
    y[:, 0] = (x[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(np.float32)
    tr, dv = slice(0, 200), slice(200, 300)

    def probs(seed: int) -> np.ndarray:
        cfg = loso.head_config(hidden=8, lr=1e-2, seed=seed).model_copy(update={"epochs": 5})
        predict, _, _ = loso.fit_head(x[tr], y[tr], x[dv], y[dv], cfg)
        return predict(x[dv])[:, 0]

    a, b, c = probs(13), probs(13), probs(14)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
