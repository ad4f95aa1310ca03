"""What a trained architecture leaves in MLflow: its model, metrics, plots and test predictions,
and its registered version."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from deepfake_detection import evaluation, plots, registry, robustness, tracking
from deepfake_detection.access.client import may_release
from deepfake_detection.architectures import calibrated
from deepfake_detection.model import DetectorConfig, log_detector
from deepfake_detection.training.fit import Fit
from deepfake_detection.training.scores import Degraded, Scores
from deepfake_detection.training.study import Search

log = logging.getLogger(__name__)


def record(search: Search, fit: Fit, scores: Scores, dataset, degraded: Degraded | None = None) -> tuple[str, str, str]:
    """Log the model, metrics (attached to ``dataset``), plots, test predictions and the scores
    under degradations on the active run, then register the model and hold the election; returns
    ``(version, role, model_uri)``."""
    name = search.name
    if scores.degenerate:
        log.warning("%s is no better than chance on valid: registered, never champion (tag degenerate=true)", name)
    mlflow.set_tags(
        {"degenerate": str(scores.degenerate).lower(), "stopped_by_budget": str(fit.stopped_by_budget).lower()}
    )
    model_info = _log_model(search, fit.model, scores)
    _log_metrics(search, fit, scores, model_info.model_id, dataset)
    _log_plots(name, fit, scores)
    _log_predictions(search.parts["test"], scores)
    if degraded is not None:
        _log_degraded(degraded)
    registered = registry.registered_name(name)
    version, role = registry.register(
        model_info.model_uri,
        name,
        dataset_digest=search.digest,
        run_id=mlflow.active_run().info.run_id,
        valid=scores.valid,
        test=scores.test,
        degenerate=scores.degenerate,
        image_size=search.settings.image_size,
        may_release=may_release(registered),  # access was checked before training: this only decides the role
    )
    mlflow.set_tags({"registered_model": registered, "model_version": version, "role": role})
    return version, role, model_info.model_uri


def _log_model(search: Search, model: keras.Model, scores: Scores):
    """Log the self-contained pyfunc detector, calibrated; returns its ``ModelInfo``."""
    settings = search.settings
    example = (Path(settings.data) / search.parts["test"]["path"].iloc[0]).read_bytes()
    config = DetectorConfig(
        architecture=search.name,
        image_size=settings.image_size,
        threshold=scores.threshold,
        dataset_digest=search.digest,
        temperature=scores.temperature,
    )
    model = calibrated(model, scores.temperature)
    return log_detector(model, config, example, search.run_dir / "model", name=search.name)


def _log_metrics(search: Search, fit: Fit, scores: Scores, model_id: str, dataset) -> None:
    """The run's evaluation metrics, attached to the logged model (``model_id``) and to the
    ``dataset`` they were measured on, so the model's page shows them."""
    metrics = {
        "threshold": scores.threshold,
        "temperature": scores.temperature,
        "valid_ece_uncalibrated": evaluation.expected_calibration_error(scores.y_valid, scores.raw_valid),
        "test_ece_uncalibrated": evaluation.expected_calibration_error(scores.y_test, scores.raw_test),
        "train_images_per_second": fit.images_per_second,
        "train_seconds": fit.seconds,
        "epochs_run": fit.epochs_run,
        "stopped_by_budget": float(fit.stopped_by_budget),
        "replanned_epochs": float(fit.replanned),
        **{f"valid_{k}": v for k, v in scores.valid.items()},
        **{f"test_{k}": v for k, v in scores.test.items()},
    }
    with tracking.quiet_schema_hints():  # the dataset's schema is inferred as the metrics are logged
        mlflow.log_metrics(metrics, model_id=model_id, dataset=dataset)
    for column in ("generator", "source", "level"):
        groups = evaluation.per_group_roc_auc(search.parts["test"], scores.p_test, column)
        if len(groups) > 1 or (column == "source" and groups):
            mlflow.log_metrics({f"test_roc_auc_{column}_{group}": auc for group, auc in groups.items()})


def _log_figure(figure, name: str) -> None:
    mlflow.log_figure(figure, name)
    plt.close(figure)


def _log_plots(name: str, fit: Fit, scores: Scores) -> None:
    """ROC (test and valid), precision-recall, confusion matrix, training curves and reliability
    at the run's artifact root: the only place MLflow's compare-runs page lists files from, so
    the architecture runs' ROC curves and confusion matrices show there side by side."""
    roc = {
        f"{name} test": evaluation.roc_points(scores.y_test, scores.p_test),
        f"{name} valid": evaluation.roc_points(scores.y_valid, scores.p_valid),
    }
    _log_figure(plots.roc_figure(roc), "roc.png")
    _log_figure(plots.pr_figure(evaluation.pr_points(scores.y_test, scores.p_test)), "precision_recall.png")
    title = f"{name} test @ threshold {scores.threshold:.3f}"
    _log_figure(plots.confusion_figure(scores.test, title=title), "confusion_matrix.png")
    _log_figure(plots.training_curves_figure(fit.history, title=f"{name} final fit"), "training_curves.png")
    reliability = {
        "before calibration": evaluation.reliability_points(scores.y_test, scores.raw_test),
        f"after (temperature {scores.temperature:.2f})": evaluation.reliability_points(scores.y_test, scores.p_test),
    }
    _log_figure(plots.reliability_figure(reliability, title=f"{name} test reliability"), "reliability.png")


def _log_degraded(degraded: Degraded) -> None:
    """Valid and test under the suite: ``robustness.csv`` (every metric with its interval),
    ``<split>_<degradation>_roc_auc`` metrics and, at the root, ROC-AUC against severity."""
    tables = {split: getattr(degraded, split) for split in ("valid", "test")}
    for split, table in tables.items():
        mlflow.log_metrics(
            {
                f"{split}_{row.degradation}_roc_auc": row.roc_auc
                for row in table.itertuples()
                if row.degradation != "none"
            }
        )
    table = pd.concat([t.assign(split=split) for split, t in tables.items()], ignore_index=True)
    mlflow.log_text(table.to_csv(index=False), "robustness.csv")
    mlflow.set_tag("degradations", degraded.suite)
    _log_figure(robustness.robustness_figure(tables["test"]), "robustness.png")


def _log_predictions(rows, scores: Scores) -> None:
    """The test split's p_fake per image, with the label it was given at the threshold."""
    predictions = rows[["path", "label", "source", "generator"]].assign(
        p_fake=scores.p_test,
        threshold=scores.threshold,
        predicted=np.where(scores.p_test >= scores.threshold, "fake", "real"),
    )
    mlflow.log_table(predictions, "predictions/test.json")
