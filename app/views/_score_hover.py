"""Which unit's score curve passes nearest the cursor, for the score plot's hover readout."""

from __future__ import annotations

import numpy as np

from learndrop.core.monitor import RunHistory

from ._score_curves import LOG_FLOOR

__all__ = ["HOVER_REACH", "nearest_curve"]

#: how near the cursor a curve must be to be named, as a share of the plot's height
HOVER_REACH = 0.08


def nearest_curve(history: RunHistory, x: float, y: float, smoothed: bool, log: bool,
                  height: float) -> tuple[int, float, float] | None:
    """The unit whose curve (smoothed or raw, on a log axis or not) passes nearest (``x``,
    ``y``) in plot coordinates, with its epoch and score at the check nearest ``x``; None when
    no curve is within :data:`HOVER_REACH` of the plot's ``height``."""
    h = history
    n = h.n_checks()
    if n == 0:
        return None
    epochs = h.check_epochs()
    k = int(np.clip(np.searchsorted(epochs, x), 0, n - 1))
    if k > 0 and abs(epochs[k - 1] - x) < abs(epochs[k] - x):
        k -= 1
    rows = h.smoothed_score_matrix() if smoothed else h.score_matrix()
    scores = np.array(rows[k], dtype=np.float64)
    for i, d in h.drop_of.items():  # a dropped unit's curve ends at its drop
        if k >= d.check:
            scores[i] = np.nan
    shown = np.log10(np.maximum(scores, LOG_FLOOR)) if log else scores
    if not np.isfinite(shown).any():
        return None
    i = int(np.nanargmin(np.abs(shown - y)))
    if abs(shown[i] - y) > HOVER_REACH * max(height, 1e-9):
        return None
    return i, float(epochs[k]), float(scores[i])
