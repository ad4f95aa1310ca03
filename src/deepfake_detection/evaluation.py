"""Binary detection metrics with ``fake`` (1) as the positive class.

The decision threshold is chosen on ``valid`` and only applied to ``test``. ``roc_points`` and
``pr_points`` compute the curves that ``plots`` draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm


def choose_threshold(y_true, p_fake) -> float:
    """Threshold that maximises Youden's J (TPR - FPR) on the given (validation) data."""
    y_true, p_fake = np.asarray(y_true), np.asarray(p_fake)
    if len(np.unique(y_true)) < 2:
        return 0.5
    fpr, tpr, thresholds = skm.roc_curve(y_true, p_fake)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thresholds[best], 0.0, 1.0))


def equal_error_rate(y_true, p_fake) -> float:
    """The error rate where false-positive and false-negative rates are equal."""
    fpr, tpr, _ = skm.roc_curve(y_true, p_fake)
    fnr = 1 - tpr
    index = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[index] + fnr[index]) / 2)


def expected_calibration_error(y_true, p_fake, bins: int = 10) -> float:
    """Weighted mean gap between confidence and accuracy over equal-width probability bins."""
    y_true, p_fake = np.asarray(y_true, dtype=float), np.asarray(p_fake, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p_fake, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            error += mask.mean() * abs(p_fake[mask].mean() - y_true[mask].mean())
    return float(error)


def binary_metrics(y_true, p_fake, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC-AUC, AP, EER, ECE and the confusion matrix counts."""
    y_true = np.asarray(y_true).astype(int)
    p_fake = np.asarray(p_fake, dtype=float)
    y_pred = (p_fake >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    both = len(np.unique(y_true)) == 2
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y_true, p_fake)) if both else float("nan"),
        "average_precision": float(skm.average_precision_score(y_true, p_fake)) if both else float("nan"),
        "eer": equal_error_rate(y_true, p_fake) if both else float("nan"),
        "ece": expected_calibration_error(y_true, p_fake),
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
    }


def per_group_roc_auc(manifest, p_fake, column: str) -> dict[str, float]:
    """ROC-AUC of every group of fakes in ``column`` (e.g. generator, source) against the reals
    of the same rows' source; groups with one class only are skipped."""
    result = {}
    y = (manifest["label"] == "fake").to_numpy().astype(int)
    p_fake = np.asarray(p_fake)
    reals = y == 0
    for group in sorted(set(manifest[column]) - {""}):
        in_group = (manifest[column] == group).to_numpy()
        if column == "generator":  # generator is empty for real images: compare with all reals
            mask = in_group | reals
        else:
            mask = in_group
        if len(np.unique(y[mask])) == 2:
            result[str(group)] = float(skm.roc_auc_score(y[mask], p_fake[mask]))
    return result


@dataclass(frozen=True)
class RocCurve:
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float


@dataclass(frozen=True)
class PrCurve:
    precision: np.ndarray
    recall: np.ndarray
    average_precision: float
    prevalence: float  # share of fakes: the precision of a random scorer


def roc_points(y_true, p_fake) -> RocCurve:
    """The ROC curve (``sklearn.metrics.roc_curve``) and its area."""
    fpr, tpr, _ = skm.roc_curve(y_true, p_fake)
    return RocCurve(fpr, tpr, float(skm.roc_auc_score(y_true, p_fake)))


def pr_points(y_true, p_fake) -> PrCurve:
    """The precision-recall curve (``sklearn.metrics.precision_recall_curve``), its AP and the chance level."""
    precision, recall, _ = skm.precision_recall_curve(y_true, p_fake)
    return PrCurve(precision, recall, float(skm.average_precision_score(y_true, p_fake)), float(np.mean(y_true)))
