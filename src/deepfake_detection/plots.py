"""Pure plotting functions that draw what was computed elsewhere (curves from
``evaluation.roc_points`` / ``pr_points``, confusion counts, histories); each returns a
matplotlib Figure, and callers save or log it."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from deepfake_detection.evaluation import PrCurve, Reliability, RocCurve

POSITIVE = "fake (positive, 1)"
ROC_AXES = {"xlabel": "false positive rate (real called fake)", "ylabel": "true positive rate (fake caught)"}
LINE_STYLES = ("-", "--", "-.", ":")


def line_style(index: int) -> dict:
    """The ``index``-th of 40 distinct (colour, line style) pairs: ten colours, then the next style."""
    colours = plt.get_cmap("tab10").colors
    return {"color": colours[index % 10], "linestyle": LINE_STYLES[index // 10 % len(LINE_STYLES)]}


def _roc_lines(axis, curves: dict[str, RocCurve], styles: dict[str, dict]) -> None:
    for name, curve in curves.items():
        display = RocCurveDisplay(fpr=curve.fpr, tpr=curve.tpr, roc_auc=curve.auc, name=name)
        display.plot(ax=axis, curve_kwargs=styles[name])
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axis.set(**ROC_AXES, xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))


def roc_figure(curves: dict[str, RocCurve], title: str = "ROC (positive class: fake)"):
    """``curves``: name → its ROC curve. One line per curve with its AUC, each in its own colour
    and line style; beyond four curves the legend goes outside the plot."""
    outside = len(curves) > 4
    figure, axis = plt.subplots(figsize=(8.5 if outside else 5, 5), layout="constrained")
    _roc_lines(axis, curves, {name: line_style(i) for i, name in enumerate(curves)})
    axis.set_title(title)
    if outside:
        axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    else:
        axis.legend(loc="lower right", fontsize=8)
    return figure


def roc_panels_figure(panels: dict[str, dict[str, RocCurve]], title: str = "Test ROC (positive class: fake)"):
    """One panel per classifier (``panels``: classifier → model → curve), one line per model;
    a model keeps its colour and line style in every panel."""
    models = list(dict.fromkeys(name for curves in panels.values() for name in curves))
    styles = {name: line_style(i) for i, name in enumerate(models)}
    count = max(1, len(panels))
    figure, axes = plt.subplots(1, count, figsize=(4.6 * count, 4.9), squeeze=False, layout="constrained")
    for axis, (classifier, curves) in zip(axes[0], panels.items()):
        _roc_lines(axis, curves, styles)
        axis.set_title(classifier)
        axis.legend(loc="lower right", fontsize=8)
    figure.suptitle(title)
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
    """Counts ``tn, fp, fn, tp`` as a 2x2 heat map (rows true, columns predicted; fake = 1), each
    count in black or white, whichever reads better on its cell's own colour."""
    matrix = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
    display = ConfusionMatrixDisplay(matrix, display_labels=["real (0)", "fake (1)"])
    display.plot(ax=axis, cmap="Blues", colorbar=False, text_kw={"fontsize": fontsize})
    image = display.im_
    for text, value in zip(display.text_.flat, matrix.flat):
        red, green, blue, _ = image.cmap(image.norm(value))
        text.set_color("black" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.5 else "white")
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
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
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


def pca_scatter_figure(points: dict[str, tuple[np.ndarray, np.ndarray]], variance: dict[str, np.ndarray] | None = None):
    """First two principal components of the test embeddings per model, coloured by label, in a
    grid of at most three columns; ``variance`` (model → cumulative explained variance) labels
    each axis with its component's share."""
    count = max(1, len(points))
    columns = min(count, 3)
    rows = int(np.ceil(count / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.4 * columns, 4.2 * rows), squeeze=False, layout="constrained")
    for axis in axes.flat[count:]:
        axis.axis("off")
    for axis, (name, (xy, labels)) in zip(axes.flat, points.items()):
        for value, colour, marker, text in ((0, "tab:blue", "o", "real (0)"), (1, "tab:red", "^", "fake (1)")):
            mask = labels == value
            axis.scatter(xy[mask, 0], xy[mask, 1], s=14, alpha=0.5, color=colour, marker=marker, label=text)
        shares = np.diff(np.concatenate([[0.0], variance[name][:2]])) if variance and name in variance else None
        x_label, y_label = (
            (f"PC {i} ({share:.0%} of variance)" for i, share in enumerate(shares, 1))
            if shares is not None and len(shares) == 2
            else ("PC 1", "PC 2")
        )
        axis.set(xlabel=x_label, ylabel=y_label, title=name)
        axis.legend(fontsize=8)
    figure.suptitle("Test embeddings on the first two principal components (fit on train)")
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
    figure, axis = plt.subplots(figsize=size, layout="constrained")
    for label, curve in curves.items():
        axis.plot(range(1, len(curve) + 1), curve, marker="o", label=label)
    axis.axhline(0.5, color="grey", linestyle=":", label="chance")
    axis.set(xlabel="epoch", ylabel="valid ROC-AUC (fake = positive)", ylim=(0.4, 1.0), title=title)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.legend(fontsize="small")
    return figure
