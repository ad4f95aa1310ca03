"""Metrics of many rows of scores at once (one row per bootstrap resample), vectorised: the
same values as :mod:`~deepfake_detection.evaluation`'s functions row by row, in milliseconds where
a loop over scikit-learn takes seconds. Labels: ``fake`` = 1."""

from __future__ import annotations

import numpy as np
from scipy import stats


def roc_auc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row (Mann-Whitney U from mid-ranks, ties counted half), vectorised."""
    ranks = stats.rankdata(p, axis=1)
    positives = y.sum(axis=1)
    negatives = y.shape[1] - positives
    u = (ranks * y).sum(axis=1) - positives * (positives + 1) / 2
    return u / (positives * negatives)


def curve_rows(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's scores from the highest down: the fakes (true positives) and reals (false
    positives) accepted at each position, and whether the position ends a run of tied scores
    (the thresholds of the ROC and precision-recall curves, as scikit-learn places them)."""
    order = np.argsort(-p, axis=1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=1)
    tp = np.cumsum(np.take_along_axis(y, order, axis=1), axis=1)
    fp = np.arange(1, y.shape[1] + 1) - tp
    ends = np.ones(p.shape, dtype=bool)
    ends[:, :-1] = ranked[:, :-1] != ranked[:, 1:]
    return tp, fp, ends


def _before(values: np.ndarray, ends: np.ndarray, first: float) -> np.ndarray:
    """At each position, ``values`` at the last threshold before it (``first`` before any), for
    ``values`` that never fall along a row and start at ``first`` or above (counts, rates)."""
    last = np.maximum.accumulate(np.where(ends, values, first), axis=1)
    return np.concatenate([np.full((len(values), 1), first), last[:, :-1]], axis=1)


def average_precision_rows(tp: np.ndarray, fp: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Average precision of each row (its :func:`curve_rows`), as
    ``sklearn.metrics.average_precision_score``: over the thresholds, the recall each one adds
    times the precision there."""
    added = np.where(ends, tp - _before(tp, ends, 0.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (added * tp / (tp + fp)).sum(axis=1) / tp[:, -1]


def eer_rows(tp: np.ndarray, fp: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``evaluation.equal_error_rate`` of each row (its :func:`curve_rows`): the first threshold
    (from the highest score down) where FNR - FPR reaches 0, interpolated from the threshold
    before it (or from accepting nothing: FPR 0, FNR 1)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fp / fp[:, -1:]
        gap = 1 - tp / tp[:, -1:] - fpr  # FNR - FPR: falls from 1 to -1
    fpr_before = _before(fpr, ends, 0.0)
    gap_before = -_before(-gap, ends, -1.0)  # gap falls: its last value before = minus the running max of -gap
    at = np.argmax(ends & (gap <= 0), axis=1)[:, None]
    fpr_at, gap_at = np.take_along_axis(fpr, at, 1), np.take_along_axis(gap, at, 1)
    fpr_b, gap_b = np.take_along_axis(fpr_before, at, 1), np.take_along_axis(gap_before, at, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossed = fpr_b + gap_b / (gap_b - gap_at) * (fpr_at - fpr_b)
    return np.where(gap_at == 0, fpr_at, crossed)[:, 0]


def ece_rows(y: np.ndarray, p: np.ndarray, bins: int = 10) -> np.ndarray:
    """``evaluation.expected_calibration_error`` of each row: in each bin, |sum of p_fake -
    number of fakes|, summed and divided by the rows' length (the row-weighted mean gap)."""
    index = np.clip(np.digitize(p, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    flat = (index + bins * np.arange(len(p))[:, None]).ravel()
    size = len(p) * bins
    sums_p = np.bincount(flat, weights=p.ravel(), minlength=size).reshape(len(p), bins)
    sums_y = np.bincount(flat, weights=y.ravel().astype(float), minlength=size).reshape(len(p), bins)
    return np.abs(sums_p - sums_y).sum(axis=1) / p.shape[1]
