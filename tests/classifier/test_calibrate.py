"""Calibration must make scores mean what they say on data it was not fitted on."""

from __future__ import annotations

import numpy as np

from referee.classifier.calibrate import apply_platt, choose_threshold, fit_platt, sigmoid
from referee.classifier.metrics import auprc, ece


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits 3x too sharp and shifted, as pos_weight and a long training run produce."""
    rng = np.random.default_rng(seed)
    true = rng.normal(-1.0, 1.5, size=n)
    y = (rng.random(n) < sigmoid(true)).astype(np.float32)
    return (3.0 * true + 1.5).astype(np.float32), y


def test_calibrated_ece_on_held_back_data_is_lower_than_raw() -> None:
    fit_logits, fit_y = _overconfident(3000, seed=1)
    test_logits, test_y = _overconfident(3000, seed=2)
    params = fit_platt(fit_logits, fit_y)
    raw = ece(sigmoid(test_logits), test_y)
    calibrated = ece(apply_platt(test_logits[:, None], [params])[:, 0], test_y)
    assert params.fitted
    assert raw > 0.08
    assert calibrated < raw / 2
    assert calibrated < 0.03
    # monotone: ranking (and so AUPRC) is untouched
    assert abs(auprc(sigmoid(test_logits), test_y) - auprc(apply_platt(test_logits[:, None], [params])[:, 0], test_y)) < 1e-4  # float32 ties only


def test_calibration_ignores_unknown_labels() -> None:
    logits, y = _overconfident(2000, seed=3)
    y_with_unknown = y.copy()
    y_with_unknown[::2] = np.nan
    a = fit_platt(logits, y_with_unknown)
    b = fit_platt(logits[1::2], y[1::2])
    assert abs(a.a - b.a) < 1e-6 and abs(a.b - b.b) < 1e-6


def test_too_few_positives_keeps_identity() -> None:
    params = fit_platt(np.array([0.1, 0.2, 3.0]), np.array([0.0, 0.0, 1.0]))
    assert not params.fitted and params.a == 1.0 and params.b == 0.0


def test_threshold_reaches_target_precision() -> None:
    probs = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    y = np.array([1, 1, 1, 0, 1, 1, 0, 0, 1, 0], dtype=np.float32)
    t = choose_threshold(probs, y, target_precision=0.8)
    assert t.threshold == 0.6 and t.precision == round(5 / 6, 4) and t.recall == round(5 / 6, 4)
    unreachable = choose_threshold(probs, y, target_precision=1.005)
    assert unreachable.threshold == 0.6 and "unreachable" in unreachable.method
    none = choose_threshold(probs, np.zeros(10, dtype=np.float32))
    assert none.threshold == 0.5 and "no dev positives" in none.method
