"""The comparison as people read it: report files, MLflow runs and plots, and the terminal table."""

from __future__ import annotations

from pathlib import Path

import click
import matplotlib.pyplot as plt
import mlflow
import pandas as pd

from deepfake_detection import plots, tracking
from deepfake_detection.comparison import TABLE_METRICS, Comparison
from deepfake_detection.robustness import pivot, robustness_figure


def _markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".3f") + "\n"


def _figures(comparison: Comparison) -> dict:
    """File name → Figure."""
    figures = {
        "roc_overlay.png": plots.roc_panels_figure(comparison.roc_panels()),
        "pca_explained_variance.png": plots.explained_variance_figure(comparison.explained_variance()),
        "pca_scatter.png": plots.pca_scatter_figure(comparison.pca_points(), comparison.explained_variance()),
        "confusion_matrices.png": plots.confusion_grid_figure(comparison.confusions()),
    }
    if comparison.robustness is not None:
        figures["robustness.png"] = robustness_figure(comparison.robustness)
    return figures


def write_and_log(comparison: Comparison, differences: pd.DataFrame, report: Path, dataset=None) -> None:
    """Write the report files under ``report`` and log them, the metrics, embeddings and plots to
    the active run; one child run per model and classifier, with ``dataset`` as its input."""
    for label, folder in comparison.embedding_files:
        mlflow.log_artifacts(str(folder), artifact_path=f"embeddings/{label}/{folder.name}")
    for name, params, metrics in comparison.classifier_runs():  # long format: one run per model and classifier
        tags = {
            "step": "compare-classifier",
            "positive_class": "fake",
            **{k: str(params[k]) for k in ("architecture", "classifier")},
        }
        with tracking.run(name, tags=tags):
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            if dataset is not None:
                tracking.log_input(dataset, context="evaluation")
    table = comparison.table()
    mlflow.log_table(table.assign(version=table["version"].astype(str)), "comparison.json")
    report.mkdir(parents=True, exist_ok=True)
    table.to_csv(report / "comparison.csv", index=False)
    (report / "comparison.md").write_text(
        "Positive class: fake (1). Test split; `_ci_low` / `_ci_high`: 95 % stratified bootstrap interval.\n\n"
        + _markdown(table)
    )
    differences.to_csv(report / "differences.csv", index=False)
    (report / "differences.md").write_text(
        "Test ROC-AUC of a minus b, paired bootstrap on the same test images, 95 % interval "
        "(positive class: fake). Significant when the interval excludes 0.\n\n" + _markdown(differences)
    )
    mlflow.log_metric("significant_differences", int(differences["significant"].sum()))
    table.to_html(report / "comparison.html", index=False, float_format=lambda v: f"{v:.3f}")
    mlflow.log_artifacts(str(report), artifact_path="report")  # the whole folder, with what earlier runs left there
    if comparison.robustness is not None:
        comparison.robustness.to_csv(report / "robustness.csv", index=False)
        (report / "robustness.md").write_text(
            "Test ROC-AUC clean and under each degradation of the standard suite (positive class: fake).\n\n"
            + _markdown(pivot(comparison.robustness).reset_index())
        )
        for name in ("robustness.csv", "robustness.md"):
            mlflow.log_artifact(str(report / name), artifact_path="report")
    for name, figure in _figures(comparison).items():
        mlflow.log_figure(figure, f"plots/{name}")
        figure.savefig(report / name, dpi=100)
        plt.close(figure)


def print_table(table: pd.DataFrame) -> None:
    """The comparison table with intervals, which pairs differ, and the robustness pivot when present."""
    shown = table[["model", "version", "classifier"]].copy()
    for metric in TABLE_METRICS:
        low, high = table[f"{metric}_ci_low"], table[f"{metric}_ci_high"]
        shown[metric] = [f"{v:.3f} [{a:.3f}, {b:.3f}]" for v, a, b in zip(table[metric], low, high)]
    shown["kmeans_ari"] = table["kmeans_ari"]
    click.echo("Test split, fake = positive class; [95 % bootstrap interval]")
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        differences = table.attrs.get("differences")
        if differences is not None and len(differences):
            significant = differences[differences["significant"]]
            click.echo(
                f"\nPaired bootstrap of test ROC-AUC: {len(significant)} of {len(differences)} pairs differ "
                "significantly (95 %); every other pair: no significant difference"
            )
            for row in significant.itertuples(index=False):
                click.echo(
                    f"  {row.verdict}: {row.a} vs {row.b} {row.roc_auc_difference:+.3f} "
                    f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
                )
        if "robustness" in table.attrs:
            by_degradation = pivot(table.attrs["robustness"])
            click.echo("\nTest ROC-AUC clean and under degradations (positive class: fake):")
            click.echo(by_degradation.to_string(float_format=lambda v: f"{v:.3f}"))
