"""Binary detection metrics with ``fake`` (1) as the positive class.

The decision threshold is chosen on ``valid`` and only applied to ``test``. ``roc_points`` and
``pr_points`` compute the curves that ``plots`` draws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from sklearn import metrics as skm

from deepfake_detection import row_metrics

log = logging.getLogger(__name__)


def fake_labels(rows) -> np.ndarray:
    """Manifest rows → 1 for ``fake`` (the positive class), 0 for ``real``."""
    return (rows["label"] == "fake").to_numpy().astype(int)


def choose_threshold(y_true, p_fake) -> float:
    """Threshold that maximises Youden's J (TPR - FPR) on the given (validation) data.

    Never the ``inf`` end point of the ROC curve. When no threshold beats chance (J <= 0: a
    constant or inverted scorer, or one class only) it falls back to 0.5 with a warning; such
    a model is *degenerate* (:func:`is_degenerate`).
    """
    y_true, p_fake = np.asarray(y_true), np.asarray(p_fake)
    if len(np.unique(y_true)) == 2:
        fpr, tpr, thresholds = skm.roc_curve(y_true, p_fake)
        j = np.where(np.isfinite(thresholds), tpr - fpr, -np.inf)
        best = int(np.argmax(j))
        if j[best] > 0:
            return float(np.clip(thresholds[best], 0.0, 1.0))
    log.warning("no threshold separates fake from real better than chance on these scores; using 0.5")
    return 0.5


def is_degenerate(metrics: dict) -> bool:
    """No better than chance at its threshold on the data ``metrics`` were computed on (J <= 0)."""
    return not metrics["youden_j"] > 0


def equal_error_rate(y_true, p_fake) -> float:
    """The rate where the false-positive and false-negative rates are equal: where the ROC curve
    (one point per distinct score, a run of tied scores one straight step, from accepting nothing
    to accepting all) crosses FNR = FPR, interpolated linearly along the step that crosses it.
    The same function, row by row, gives its bootstrap interval (:func:`row_metrics.eer_rows`)."""
    curve = row_metrics.curve_rows(np.asarray(y_true, dtype=int)[None], np.asarray(p_fake, dtype=float)[None])
    return float(row_metrics.eer_rows(*curve)[0])


@dataclass(frozen=True)
class Reliability:
    """Per equal-width bin of p_fake (empty bins left out): mean p_fake, share of fakes, rows."""

    mean_p_fake: np.ndarray
    fraction_fake: np.ndarray
    count: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: the row-weighted mean gap between the two."""
        gaps = np.abs(self.mean_p_fake - self.fraction_fake)
        return float(np.sum(self.count * gaps) / np.sum(self.count)) if len(self.count) else 0.0


def reliability_points(y_true, p_fake, bins: int = 10) -> Reliability:
    y_true, p_fake = np.asarray(y_true, dtype=float), np.asarray(p_fake, dtype=float)
    index = np.clip(np.digitize(p_fake, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    used = count > 0
    mean_p = np.bincount(index, weights=p_fake, minlength=bins)[used] / count[used]
    fraction = np.bincount(index, weights=y_true, minlength=bins)[used] / count[used]
    return Reliability(mean_p, fraction, count[used])


def expected_calibration_error(y_true, p_fake, bins: int = 10) -> float:
    """Weighted mean gap between confidence (mean p_fake) and the share of fakes over equal-width bins."""
    return reliability_points(y_true, p_fake, bins).ece


def binary_metrics(y_true, p_fake, threshold: float) -> dict[str, float]:
    """Accuracy (and of the reals and of the fakes alone), precision, recall, F1, ROC-AUC, AP, EER,
    ECE and the confusion matrix counts."""
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
        "youden_j": _rate(tp, tp + fn) - _rate(fp, fp + tn),
        "real_accuracy": _rate(tn, tn + fp),  # reals called real
        "fake_accuracy": _rate(tp, tp + fn),  # fakes called fake (= recall)
        "roc_auc": float(skm.roc_auc_score(y_true, p_fake)) if both else float("nan"),
        "average_precision": float(skm.average_precision_score(y_true, p_fake)) if both else float("nan"),
        "eer": equal_error_rate(y_true, p_fake) if both else float("nan"),
        "ece": expected_calibration_error(y_true, p_fake),
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
    }


def _rate(count, total) -> float:
    return float(count / total) if total else 0.0


def per_group_roc_auc(manifest, p_fake, column: str) -> dict[str, float]:
    """ROC-AUC of every group in ``column`` (e.g. generator, source, level): the group's fakes
    against the reals of the same source(s); groups that leave one class only are skipped.

    Reals have no generator or level (""), so a generator's or level's fakes are compared with
    the reals they were mixed with (e.g. ciplab "hard" fakes against ciplab reals); for
    ``source`` the group already holds both classes.
    """
    result = {}
    y = fake_labels(manifest)
    p_fake = np.asarray(p_fake)
    sources = manifest["source"].to_numpy()
    for group in sorted(set(manifest[column]) - {""}):
        in_group = (manifest[column] == group).to_numpy()
        same_source_reals = (y == 0) & np.isin(sources, np.unique(sources[in_group]))
        mask = in_group | same_source_reals
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


# -- 95 % intervals -----------------------------------------------------------------------

INTERVAL_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "eer",
    "ece",
    "real_accuracy",
    "fake_accuracy",
)


BOOTSTRAP_ELEMENTS = 4_000_000  # resampled rows held at once (a chunk of resamples); bounds memory


def _stratified(y_true: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    columns = [rng.choice(np.flatnonzero(y_true == c), (n_resamples, int(np.sum(y_true == c)))) for c in (0, 1)]
    return np.concatenate(columns, axis=1)


def bootstrap_indices(y_true, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """``(n_resamples, n)`` row indices, each row a resample with replacement that keeps the
    number of fakes and of reals (stratified), so every resample has both classes."""
    return _stratified(np.asarray(y_true), n_resamples, np.random.default_rng(seed))


def bootstrap_index_chunks(y_true, n_resamples: int = 1000, seed: int = 0):
    """:func:`bootstrap_indices` in chunks of resamples of at most ``BOOTSTRAP_ELEMENTS`` indices
    (one chunk, the same indices, when they fit), so a large test split needs bounded memory."""
    y_true = np.asarray(y_true)
    per_chunk = max(1, BOOTSTRAP_ELEMENTS // max(len(y_true), 1))
    if per_chunk >= n_resamples:
        yield bootstrap_indices(y_true, n_resamples, seed)
        return
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, per_chunk):
        yield _stratified(y_true, min(per_chunk, n_resamples - start), rng)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    @classmethod
    def percentile(cls, samples: np.ndarray, level: float) -> Interval:
        """The central ``level`` share of bootstrap ``samples``."""
        tail = 100 * (1 - level) / 2
        return cls(*map(float, np.percentile(samples, [tail, 100 - tail])))


def bootstrap_intervals(
    y_true, p_fake, threshold: float, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> dict[str, Interval]:
    """Percentile intervals of :data:`INTERVAL_METRICS` over stratified bootstrap resamples of
    the rows (fake = positive), at a fixed threshold."""
    y_true, p_fake = np.asarray(y_true).astype(int), np.asarray(p_fake, dtype=float)
    chunks = [
        _resampled_metrics(y_true[i], p_fake[i], threshold) for i in bootstrap_index_chunks(y_true, n_resamples, seed)
    ]
    return {name: Interval.percentile(np.concatenate([c[name] for c in chunks]), level) for name in chunks[0]}


def _resampled_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Each metric of each resample (one row of ``y`` and ``p`` per resample)."""
    predicted = p >= threshold
    curve = row_metrics.curve_rows(y, p)
    tp = (predicted & (y == 1)).sum(axis=1)
    fp = (predicted & (y == 0)).sum(axis=1)
    fn = (~predicted & (y == 1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return {
        "accuracy": (predicted == (y == 1)).mean(axis=1),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": row_metrics.roc_auc_rows(y, p),
        "average_precision": row_metrics.average_precision_rows(*curve),
        "eer": row_metrics.eer_rows(*curve),
        "ece": row_metrics.ece_rows(y, p),
        "real_accuracy": (~predicted & (y == 0)).sum(axis=1) / np.maximum((y == 0).sum(axis=1), 1),
        "fake_accuracy": recall,
    }


def with_interval(metrics: dict, name: str) -> str:
    """``metrics[name]`` and its 95 % interval as text: ``0.982 [0.972, 0.990]``."""
    return f"{metrics[name]:.3f} [{metrics[name + '_ci_low']:.3f}, {metrics[name + '_ci_high']:.3f}]"


def metrics_with_intervals(y_true, p_fake, threshold: float, *, seed: int = 0) -> dict[str, float]:
    """:func:`binary_metrics` plus ``<metric>_ci_low`` / ``<metric>_ci_high`` (95 %) for each of
    :data:`INTERVAL_METRICS`."""
    metrics = binary_metrics(y_true, p_fake, threshold)
    for name, interval in bootstrap_intervals(y_true, p_fake, threshold, seed=seed).items():
        metrics |= {f"{name}_ci_low": interval.low, f"{name}_ci_high": interval.high}
    return metrics


def roc_auc_interval(y_true, p_fake, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """The ROC-AUC's percentile interval alone, over the same stratified resamples as
    :func:`bootstrap_intervals` (vectorised: milliseconds where the full set takes seconds)."""
    y_true, p_fake = np.asarray(y_true).astype(int), np.asarray(p_fake, dtype=float)
    samples = [
        row_metrics.roc_auc_rows(y_true[i], p_fake[i]) for i in bootstrap_index_chunks(y_true, n_resamples, seed)
    ]
    return Interval.percentile(np.concatenate(samples), level)


def mean_roc_auc_interval(
    y_true, p_by_condition: list, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, Interval]:
    """The mean ROC-AUC over several scorings of the same rows (e.g. one per degradation) and
    its interval: each resample draws the rows once for every scoring (stratified), so what
    varies is the mean itself."""
    y_true = np.asarray(y_true).astype(int)
    scores = [np.asarray(p, dtype=float) for p in p_by_condition]
    point = float(np.mean([skm.roc_auc_score(y_true, p) for p in scores]))
    means = np.concatenate(
        [
            np.mean([row_metrics.roc_auc_rows(y_true[i], p[i]) for p in scores], axis=0)
            for i in bootstrap_index_chunks(y_true, n_resamples, seed)
        ]
    )
    return point, Interval.percentile(means, level)


@dataclass(frozen=True)
class PairedDifference:
    """ROC-AUC of A minus that of B on the same test rows, with its bootstrap interval."""

    difference: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_roc_auc_difference(
    y_true, p_a, p_b, *, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Paired bootstrap: both scorers are scored on the same resampled rows each time, so what
    varies is the difference itself; significant when its interval excludes 0."""
    y_true = np.asarray(y_true).astype(int)
    p_a, p_b = np.asarray(p_a, dtype=float), np.asarray(p_b, dtype=float)
    differences = np.concatenate(
        [
            row_metrics.roc_auc_rows(y_true[i], p_a[i]) - row_metrics.roc_auc_rows(y_true[i], p_b[i])
            for i in bootstrap_index_chunks(y_true, n_resamples, seed)
        ]
    )
    interval = Interval.percentile(differences, level)
    point = skm.roc_auc_score(y_true, p_a) - skm.roc_auc_score(y_true, p_b)
    return PairedDifference(float(point), interval.low, interval.high)


# -- calibration ---------------------------------------------------------------------------

P_CLIP = 1e-7  # p_fake is clipped to [P_CLIP, 1 - P_CLIP] before its logit (here and in TemperatureScaling)


def _logit(p_fake) -> np.ndarray:
    return special.logit(np.clip(np.asarray(p_fake, dtype=float), P_CLIP, 1 - P_CLIP))


def fit_temperature(y_true, p_fake) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 that minimises the log loss of
    ``sigmoid(logit(p_fake) / T)`` on the given (validation) data. Monotone: ROC-AUC unchanged."""
    y_true = np.asarray(y_true, dtype=float)
    logits = _logit(p_fake)

    def log_loss(log_t: float) -> float:
        z = logits / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, z) - y_true * z))

    result = optimize.minimize_scalar(log_loss, bounds=(np.log(1e-2), np.log(1e3)), method="bounded")
    return float(np.exp(result.x))


def apply_temperature(p_fake, temperature: float) -> np.ndarray:
    """``sigmoid(logit(p_fake) / temperature)``, as the registered model's last layer computes it."""
    logits = _logit(p_fake)
    return special.expit(logits / temperature)
