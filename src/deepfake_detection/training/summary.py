"""The result of each architecture, and which is best: on the parent run and in the terminal."""

from __future__ import annotations

from dataclasses import dataclass

import click
import mlflow

from deepfake_detection.evaluation import is_degenerate, with_interval


@dataclass
class ArchitectureResult:
    architecture: str
    run_id: str
    model_uri: str
    version: str
    role: str
    threshold: float
    valid: dict
    test: dict
    train_images_per_second: float
    best_hyperparameters: dict

    @property
    def degenerate(self) -> bool:
        """No better than chance on valid: registered, never champion."""
        return is_degenerate(self.valid)


def log_summary(results: list[ArchitectureResult]) -> ArchitectureResult | None:
    """On the active run: which architecture is best (chosen on valid ROC-AUC, degenerate ones
    excluded) with its test ROC-AUC and interval, as a description (``mlflow.note.content``),
    metrics ``best_valid_roc_auc`` / ``best_test_roc_auc`` (+ interval) and tag
    ``best_architecture``; a table of every architecture below it. Returns the best."""
    candidates = [r for r in results if not r.degenerate]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: r.valid["roc_auc"])

    rows = "\n".join(
        f"| {r.architecture} | {r.version} | {r.role} | {r.valid['roc_auc']:.3f} | {with_interval(r.test, 'roc_auc')} |"
        for r in sorted(results, key=lambda r: -r.valid["roc_auc"])
    )
    mlflow.set_tag(
        "mlflow.note.content",
        f"**Best: {best.architecture}** (chosen on valid ROC-AUC {best.valid['roc_auc']:.3f}), "
        f"test ROC-AUC {with_interval(best.test, 'roc_auc')} (95 % bootstrap interval; positive class: fake). "
        f"Registered as `models:/deepfake-{best.architecture}/{best.version}`.\n\n"
        "| architecture | version | role | valid ROC-AUC | test ROC-AUC [95 % CI] |\n|---|---|---|---|---|\n" + rows,
    )
    mlflow.set_tag("best_architecture", best.architecture)
    mlflow.log_metrics(
        {"best_valid_roc_auc": best.valid["roc_auc"]}
        | {f"best_test_{k}": best.test[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high") if k in best.test}
    )
    return best


def print_results(results: list[ArchitectureResult]) -> None:
    """The terminal's table of every architecture trained, fake = positive class."""
    click.echo("fake = positive class; test metrics with their 95 % bootstrap interval; champion chosen on valid")
    click.echo(
        f"{'architecture':<13} {'version':>7}  {'role':<10} {'valid AUC':>9}  {'test ROC-AUC [95 % CI]':<22}  "
        f"{'test accuracy [95 % CI]':<23}  {'ECE':>5}  {'img/s':>7}"
    )
    for r in results:
        click.echo(
            f"{r.architecture:<13} {r.version:>7}  {r.role:<10} {r.valid['roc_auc']:>9.3f}  "
            f"{with_interval(r.test, 'roc_auc'):<22}  {with_interval(r.test, 'accuracy'):<23}  "
            f"{r.test['ece']:>5.3f}  {r.train_images_per_second:>7.1f}"
        )
        if r.degenerate:
            click.echo(f"  warning: {r.architecture} is no better than chance on valid (degenerate): never champion")
