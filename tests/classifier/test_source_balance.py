"""Source-balanced row weights: no single large source sets the boundary alone."""

from __future__ import annotations

import numpy as np
import pytest

from referee.classifier.train import masked_bce, source_weights

torch = pytest.importorskip("torch")


def test_weights_balance_sources_and_keep_mean_one() -> None:
    sources = ["big"] * 90 + ["small"] * 10
    flat = source_weights(sources, 0.0)
    assert np.allclose(flat, 1.0)
    full = source_weights(sources, 1.0)
    assert full.mean() == pytest.approx(1.0)
    assert full[:90].sum() == pytest.approx(full[90:].sum())  # each source weighs the same in total
    half = source_weights(sources, 0.5)
    assert full[0] < half[0] < 1.0 < half[-1] < full[-1]


def test_row_weight_scales_the_loss_of_known_labels_only() -> None:
    logits = torch.zeros(2, 2)
    targets = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    base = masked_bce(logits, targets)
    same = masked_bce(logits, targets, row_weight=torch.ones(2))
    assert float(same) == pytest.approx(float(base))
    heavy_first = masked_bce(logits, targets, row_weight=torch.tensor([3.0, 0.0]))
    # only row 0's one known label counts (x3), over the 3 known entries
    assert float(heavy_first) == pytest.approx(3 * np.log(2) / 3, rel=1e-5)
