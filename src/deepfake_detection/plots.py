"""Pure plotting functions that draw what was computed elsewhere (curves from
``evaluation.roc_points`` / ``pr_points``, confusion counts, histories); each returns a
matplotlib Figure, and callers save or log it."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from deepfake_detection.evaluation import PrCurve, Reliability, RocCurve

POSITIVE = "fake (positive, 1)"


def roc_figure(curves: dict[str, RocCurve], title: str = "ROC (positive class: fake)"):
    """``curves``: name → its ROC curve. One line per curve with its AUC."""
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, curve in curves.items():
        RocCurveDisplay(fpr=curve.fpr, tpr=curve.tpr, roc_auc=curve.auc, name=name).plot(ax=axis)
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axis.set(xlabel="false positive rate (real called fake)", ylabel="true positive rate (fake caught)", title=title)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def pr_figure(curve: PrCurve, title: str = "Precision-recall (positive class: fake)"):
    figure, axis = plt.subplots(figsize=(5, 5))
    PrecisionRecallDisplay(
        precision=curve.precision, recall=curve.recall, average_precision=curve.average_precision
    ).plot(ax=axis)
    axis.axhline(curve.prevalence, linestyle=":", color="grey", label="chance")
    axis.set(xlabel="recall (fake)", ylabel="precision (fake)", title=title, xlim=(0, 1), ylim=(0, 1.02))
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    return figure


def _draw_confusion(axis, m: Mapping[str, int], title: str, fontsize: int = 12) -> None:
    """Counts ``tn, fp, fn, tp`` as a 2x2 heat map (rows true, columns predicted; fake = 1)."""
    matrix = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
    display = ConfusionMatrixDisplay(matrix, display_labels=["real (0)", "fake (1)"])
    display.plot(ax=axis, cmap="Blues", colorbar=False, text_kw={"fontsize": fontsize})  # text colour by cell shade
    axis.set(xlabel="predicted", ylabel="true", title=title)


def confusion_figure(counts: Mapping[str, int], title: str = "Confusion matrix"):
    """``counts``: ``tn, fp, fn, tp`` (e.g. ``evaluation.binary_metrics``; other keys are ignored)."""
    figure, axis = plt.subplots(figsize=(4, 4))
    _draw_confusion(axis, counts, title)
    figure.tight_layout()
    return figure


def training_curves_figure(history: dict[str, list[float]], title: str = "Training curves"):
    """Loss and every other metric, train vs validation, per epoch."""
    names = sorted({k.removeprefix("val_") for k in history if k != "learning_rate"})
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for axis, name in zip(axes[0], names):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            if key in history:
                values = history[key]
                axis.plot(range(1, len(values) + 1), values, style, marker="o", label=key)
        axis.set(xlabel="epoch", title=name)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def explained_variance_figure(curves: dict[str, np.ndarray]):
    """Cumulative explained variance of the PCA components, one line per model."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, cumulative in curves.items():
        axis.plot(range(1, len(cumulative) + 1), cumulative, marker=".", label=name)
    axis.set(
        xlabel="principal components",
        ylabel="cumulative explained variance",
        ylim=(0, 1.02),
        title="PCA on train embeddings",
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def pca_scatter_figure(points: dict[str, tuple[np.ndarray, np.ndarray]]):
    """First two principal components of the test embeddings per model, coloured by label."""
    count = max(1, len(points))
    figure, axes = plt.subplots(1, count, figsize=(4 * count, 4), squeeze=False)
    for axis, (name, (xy, labels)) in zip(axes[0], points.items()):
        for value, colour, text in ((0, "tab:blue", "real (0)"), (1, "tab:red", "fake (1)")):
            mask = labels == value
            axis.scatter(xy[mask, 0], xy[mask, 1], s=8, alpha=0.6, color=colour, label=text)
        axis.set(xlabel="PC 1", ylabel="PC 2", title=name)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def confusion_grid_figure(results: dict[str, Mapping[str, int]]):
    """Test confusion matrices, one panel per model and classifier (rows true, columns predicted)."""
    count = max(1, len(results))
    columns = min(count, 4)
    rows = int(np.ceil(count / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (name, m) in zip(axes.flat, results.items()):
        axis.axis("on")
        _draw_confusion(axis, m, name, fontsize=10)
        axis.title.set_fontsize(9)
    figure.tight_layout()
    return figure


def reliability_figure(curves: dict[str, Reliability], title: str = "Reliability (positive class: fake)"):
    """Share of fakes against mean p_fake per bin, one line per curve with its ECE; the diagonal is perfect."""
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, curve in curves.items():
        axis.plot(curve.mean_p_fake, curve.fraction_fake, marker="o", label=f"{name} (ECE {curve.ece:.3f})")
    axis.set(xlabel="mean p_fake in bin", ylabel="share of fakes in bin", xlim=(0, 1), ylim=(0, 1), title=title)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure


def valid_auc_curves_figure(curves: dict[str, list[float]], title: str = "", size=(6.5, 4)):
    """Valid ROC-AUC after each epoch, one line per model, against chance (fake = positive)."""
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=size, layout="constrained")
    for label, curve in curves.items():
        axis.plot(range(1, len(curve) + 1), curve, marker="o", label=label)
    axis.axhline(0.5, color="grey", linestyle=":", label="chance")
    axis.set(xlabel="epoch", ylabel="valid ROC-AUC (fake = positive)", ylim=(0.4, 1.0), title=title)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.legend(fontsize="small")
    return figure
