"""The result of each architecture, and which is best: on the parent run and in the terminal."""

from __future__ import annotations

from dataclasses import dataclass

import click
import mlflow

from deepfake_detection.evaluation import is_degenerate, with_interval
from deepfake_detection.registry import VALID_SCORE, VALID_WORST, robust_score


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

    def score(self, robust: bool = True) -> float:
        """What the election compares (:func:`registry.robust_score`), on valid."""
        tags = {VALID_SCORE: self.valid["roc_auc"]}
        if "worst_degraded_roc_auc" in self.valid:
            tags[VALID_WORST] = self.valid["worst_degraded_roc_auc"]
        return robust_score(tags, robust)

    def degraded(self, key: str) -> str:
        """Test ``mean`` or ``worst`` degraded ROC-AUC with its interval, or ``-`` when not scored."""
        name = f"{key}_degraded_roc_auc"
        return with_interval(self.test, name) if f"{name}_ci_low" in self.test else "-"


def log_summary(results: list[ArchitectureResult]) -> ArchitectureResult | None:
    """On the active run: which architecture is best (chosen on valid ROC-AUC, degenerate ones
    excluded) with its test ROC-AUC and interval, as a description (``mlflow.note.content``),
    metrics ``best_valid_roc_auc`` / ``best_test_roc_auc`` (+ interval) and tag
    ``best_architecture``; a table of every architecture below it. Returns the best."""
    candidates = [r for r in results if not r.degenerate]
    if not candidates:
        return None
    robust = all("worst_degraded_roc_auc" in r.valid for r in candidates)
    best = max(candidates, key=lambda r: r.score(robust))
    chosen_on = "mean of clean and worst-degraded valid ROC-AUC" if robust else "valid ROC-AUC"

    rows = "\n".join(
        f"| {r.architecture} | {r.version} | {r.role} | {r.valid['roc_auc']:.3f} | {r.score(robust):.3f} | "
        f"{with_interval(r.test, 'roc_auc')} | {r.degraded('mean')} | {r.degraded('worst')} |"
        for r in sorted(results, key=lambda r: -r.score(robust))
    )
    mlflow.set_tag(
        "mlflow.note.content",
        f"**Best: {best.architecture}** (chosen on the {chosen_on}, {best.score(robust):.3f}), "
        f"test ROC-AUC {with_interval(best.test, 'roc_auc')}, under the degradation suite mean "
        f"{best.degraded('mean')}, worst {best.degraded('worst')} (95 % bootstrap intervals; positive class: "
        f"fake). Registered as `models:/deepfake-{best.architecture}/{best.version}`.\n\n"
        "| architecture | version | role | valid ROC-AUC | valid score | test ROC-AUC [95 % CI] | "
        "test mean degraded | test worst degraded |\n|---|---|---|---|---|---|---|---|\n" + rows,
    )
    mlflow.set_tag("best_architecture", best.architecture)
    keys = [
        f"{k}{end}"
        for k in ("roc_auc", "mean_degraded_roc_auc", "worst_degraded_roc_auc")
        for end in ("", "_ci_low", "_ci_high")
    ]
    mlflow.log_metrics(
        {"best_valid_roc_auc": best.valid["roc_auc"], "best_valid_score": best.score(robust)}
        | {f"best_test_{k}": best.test[k] for k in keys if k in best.test}
    )
    return best


def print_results(results: list[ArchitectureResult]) -> None:
    """The terminal's table of every architecture trained, fake = positive class."""
    click.echo(
        "fake = positive class; test metrics with their 95 % bootstrap interval; champion chosen on valid "
        "(the mean of clean and worst-degraded ROC-AUC); degraded = under the degradation suite"
    )
    click.echo(
        f"{'architecture':<13} {'version':>7}  {'role':<10} {'valid AUC':>9}  {'test ROC-AUC [95 % CI]':<22}  "
        f"{'test mean degraded':<22}  {'test worst degraded':<22}  {'test accuracy [95 % CI]':<23}  "
        f"{'ECE':>5}  {'img/s':>7}"
    )
    for r in results:
        click.echo(
            f"{r.architecture:<13} {r.version:>7}  {r.role:<10} {r.valid['roc_auc']:>9.3f}  "
            f"{with_interval(r.test, 'roc_auc'):<22}  {r.degraded('mean'):<22}  {r.degraded('worst'):<22}  "
            f"{with_interval(r.test, 'accuracy'):<23}  {r.test['ece']:>5.3f}  {r.train_images_per_second:>7.1f}"
        )
        if r.degenerate:
            click.echo(f"  warning: {r.architecture} is no better than chance on valid (degenerate): never champion")
