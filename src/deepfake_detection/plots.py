"""Pure plotting functions: each returns a matplotlib Figure; callers save or log it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

POSITIVE = "fake (positive, 1)"


def roc_figure(curves: dict[str, tuple], title: str = "ROC (positive class: fake)"):
    """``curves``: name → (y_true, p_fake). One line per curve with its AUC."""
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, (y_true, p_fake) in curves.items():
        fpr, tpr, _ = skm.roc_curve(y_true, p_fake)
        axis.plot(fpr, tpr, label=f"{name} (AUC {skm.roc_auc_score(y_true, p_fake):.3f})")
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axis.set(xlabel="false positive rate (real called fake)", ylabel="true positive rate (fake caught)", title=title)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def pr_figure(y_true, p_fake, title: str = "Precision-recall (positive class: fake)"):
    figure, axis = plt.subplots(figsize=(5, 5))
    precision, recall, _ = skm.precision_recall_curve(y_true, p_fake)
    axis.plot(recall, precision, label=f"AP {skm.average_precision_score(y_true, p_fake):.3f}")
    axis.axhline(np.mean(y_true), linestyle=":", color="grey", label="chance")
    axis.set(xlabel="recall (fake)", ylabel="precision (fake)", title=title, xlim=(0, 1), ylim=(0, 1.02))
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    return figure


def confusion_figure(tn: int, fp: int, fn: int, tp: int, title: str = "Confusion matrix"):
    matrix = np.array([[tn, fp], [fn, tp]])
    figure, axis = plt.subplots(figsize=(4, 4))
    axis.imshow(matrix, cmap="Blues")
    for (row, column), value in np.ndenumerate(matrix):
        colour = "white" if value > matrix.max() / 2 else "black"
        axis.text(column, row, str(value), ha="center", va="center", color=colour, fontsize=12)
    axis.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real (0)", "fake (1)"], yticklabels=["real (0)", "fake (1)"],
             xlabel="predicted", ylabel="true", title=title)  # fmt: skip
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
