"""The MLflow side: where runs go, checking the server is there, and logging a dataset.

Embedded default: tracking and registry in ``sqlite:///mlflow.db``, artifacts under
``./mlruns``. ``MLFLOW_TRACKING_URI`` points everything at a shared server instead.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Iterator

from deepfake_detection.errors import TrackingError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns"
EXPERIMENT_NAME = "deepfake-detection"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the embedded SQLite default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def configure(check: bool = True) -> str:
    """Point MLflow at the tracking URI and, if ``check``, fail fast when it is unreachable."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if check:
        ensure_reachable(uri)
    return uri


def ensure_reachable(uri: str, timeout: float = 10.0) -> None:
    """Raise :class:`TrackingError` naming ``uri`` if the tracking store cannot be used."""
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            response = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
        except requests.RequestException as error:
            raise TrackingError(f"cannot reach the MLflow tracking server at {uri}: {error}") from None
        if response.status_code >= 400:
            raise TrackingError(f"the MLflow tracking server at {uri} answered HTTP {response.status_code}")
        return
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as error:  # any store error: bad URI, locked or unreadable database
        raise TrackingError(f"cannot use the MLflow tracking store at {uri}: {error}") from None


def ensure_experiment(name: str = EXPERIMENT_NAME) -> str:
    """Create ``name`` if needed (artifacts under ``./mlruns`` for a local store); return its id."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if not tracking_uri().startswith(("http://", "https://", "databricks")):
        location = Path(DEFAULT_ARTIFACT_ROOT).resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


@contextlib.contextmanager
def run(name: str, experiment: str = EXPERIMENT_NAME, tags: dict | None = None) -> Iterator:
    """Start a run, nested under the active one if any.

    Under ``mlflow run`` the project run is already created (``MLFLOW_RUN_ID``) and is
    resumed as the outermost run, in whatever experiment ``mlflow run`` chose.
    """
    import mlflow

    parent = mlflow.active_run()
    if parent is not None:
        with mlflow.start_run(
            run_name=name, nested=True, tags=tags, experiment_id=parent.info.experiment_id
        ) as active:
            yield active
        return
    if os.environ.get("MLFLOW_RUN_ID"):
        with mlflow.start_run(tags=tags) as active:
            yield active
        return
    experiment_id = ensure_experiment(experiment)
    with mlflow.start_run(run_name=name, experiment_id=experiment_id, tags=tags) as active:
        yield active


def log_prepared_dataset(report, context: str = "prepared") -> None:
    """Log a prepare's settings, counts, checks, manifest and the dataset itself to the active run."""
    import mlflow
    import pandas as pd

    from deepfake_detection.data.prepare import MANIFEST, REJECTED, SUMMARY

    root = Path(report.output)
    mlflow.log_params({f"prepare.{k}": v for k, v in {"source": report.source, **report.settings}.items()})
    metrics = {
        "images_total": report.total,
        "images_rejected": report.rejected,
        "duplicates_dropped": report.duplicates_dropped,
        "cross_split_duplicates": report.cross_split_duplicates,
        "images_normalised": report.normalised,
        "build_seconds": report.seconds,
        **{f"images_{split}_{label}": n for split, by_label in report.counts.items() for label, n in by_label.items()},
        **report.checks,
    }
    mlflow.log_metrics(metrics)
    mlflow.set_tags({"dataset_digest": report.digest, "positive_class": "fake", "dataset_path": str(root.resolve())})
    for name in (MANIFEST, REJECTED, SUMMARY):
        mlflow.log_artifact(str(root / name), artifact_path="dataset")
    from mlflow.data.sources import LocalArtifactDatasetSource

    manifest = pd.read_csv(root / MANIFEST, keep_default_na=False)
    with warnings.catch_warnings():  # schema inference hints about integer columns
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            manifest,
            source=LocalArtifactDatasetSource(str(root.resolve())),
            targets="target",
            name=root.name,
            digest=report.digest,
        )
        mlflow.log_input(dataset, context=context)
