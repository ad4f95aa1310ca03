"""The MLflow side of runs: where they go, checking the server is there, runs and their
orphans, and logging a dataset. The Model Registry is :mod:`deepfake_detection.registry`.

Embedded default: tracking and registry in ``sqlite:///mlflow.db``, artifacts under
``./mlruns``. ``MLFLOW_TRACKING_URI`` points everything at a shared server instead.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

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
    from mlflow.exceptions import MlflowException

    location = None
    if not tracking_uri().startswith(("http://", "https://", "databricks")):
        location = Path(DEFAULT_ARTIFACT_ROOT).resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it since the look-up (two trains on a fresh server)
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


@contextlib.contextmanager
def run(name: str, experiment: str = EXPERIMENT_NAME, tags: dict | None = None) -> Iterator:
    """Start a run, nested under the active one if any.

    Under ``mlflow run`` the project run is already created (``MLFLOW_RUN_ID``) and is
    resumed as the outermost run, in whatever experiment ``mlflow run`` chose. Either way, a
    new outermost run first marks FAILED the runs that dead processes left RUNNING there.
    """
    import mlflow

    # host and pid for finding orphans
    tags = {**(tags or {}), **source_tags(), "host": socket.gethostname(), "pid": str(os.getpid())}
    parent = mlflow.active_run()
    if parent is not None:
        with mlflow.start_run(run_name=name, nested=True, tags=tags, experiment_id=parent.info.experiment_id) as active:
            yield active
        return
    if os.environ.get("MLFLOW_RUN_ID"):
        fail_orphans(mlflow.get_run(os.environ["MLFLOW_RUN_ID"]).info.experiment_id)
        with mlflow.start_run(tags=tags) as active:
            mlflow.set_tag("mlflow.runName", name)  # not the random name `mlflow run` gave it
            yield active
        return
    experiment_id = ensure_experiment(experiment)
    fail_orphans(experiment_id)
    with mlflow.start_run(run_name=name, experiment_id=experiment_id, tags=tags) as active:
        yield active


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def fail_orphans(experiment_id: str) -> list[str]:
    """Mark FAILED the runs left RUNNING by a process of this host that no longer exists (killed,
    crashed, machine restarted), with their RUNNING descendants; returns their ids."""
    from mlflow import MlflowClient

    client = MlflowClient()
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=5000)
    host = socket.gethostname()
    dead = {
        r.info.run_id
        for r in running
        if r.data.tags.get("host") == host and "pid" in r.data.tags and not _alive(r.data.tags["pid"])
    }
    children: dict[str, list[str]] = {}
    for r in running:
        children.setdefault(r.data.tags.get("mlflow.parentRunId", ""), []).append(r.info.run_id)
    failed, stack = set(), list(dead)
    while stack:
        run_id = stack.pop()
        if run_id not in failed:
            failed.add(run_id)
            stack.extend(children.get(run_id, []))
    for run_id in sorted(failed):
        client.set_tag(run_id, "failure", "orphaned: its process ended without closing the run")
        client.set_terminated(run_id, status="FAILED")
    return sorted(failed)


def log_prepared_dataset(report, context: str = "prepared") -> None:
    """Log a prepare's settings, counts, checks, manifest and the dataset itself to the active run."""
    import mlflow
    import pandas as pd

    from deepfake_detection.data.writer import MANIFEST, REJECTED, SUMMARY

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
    with quiet_schema_hints():
        dataset = mlflow.data.from_pandas(
            manifest,
            source=LocalArtifactDatasetSource(str(root.resolve())),
            targets="target",
            name=root.name,
            digest=report.digest,
        )
    log_input(dataset, context)


@functools.cache
def source_tags() -> dict[str, str]:
    """MLflow's own ``mlflow.source.git.commit`` tag for this code's checkout (none outside git).

    MLflow sets it from ``sys.argv[0]``, which is no checkout under ``python -m``, pytest workers
    or an installed console script; this names the package's own checkout instead."""
    from mlflow.utils.git_utils import get_git_commit
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

    commit = get_git_commit(str(Path(__file__).resolve()))
    return {MLFLOW_GIT_COMMIT: commit} if commit else {}


def dataset_of(root: str, parts: dict, digest: str):
    """The rows a run used (train/valid/test) as an MLflow dataset named after the folder."""
    import mlflow
    import pandas as pd
    from mlflow.data.sources import LocalArtifactDatasetSource

    rows = pd.concat(parts.values(), ignore_index=True).drop(columns=["file"], errors="ignore")
    with quiet_schema_hints():
        return mlflow.data.from_pandas(
            rows,
            source=LocalArtifactDatasetSource(str(Path(root).resolve())),
            targets="target",
            name=Path(root).name,
            digest=digest,
        )


@contextlib.contextmanager
def quiet_schema_hints():
    """MLflow infers a dataset's schema when it is logged and hints about integer columns
    (``width``, ``target``) that cannot hold missing values; a manifest never has any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def log_input(dataset, context: str = "training") -> None:
    """Log ``dataset`` (see :func:`dataset_of`) as an input of the active run, ``context``
    ``training`` or ``evaluation``."""
    import mlflow

    with quiet_schema_hints():
        mlflow.log_input(dataset, context=context)


def log_dataset_input(root: str, parts: dict, digest: str, context: str = "training"):
    """Log the rows a run used (train/valid/test) as an MLflow dataset input; returns the
    dataset, to log on other runs or attach metrics to."""
    dataset = dataset_of(root, parts, digest)
    log_input(dataset, context)
    return dataset


def dataset_digest_of(root) -> str:
    """The digest ``prepare`` recorded in ``dataset.json`` (a hash of the manifest if absent)."""
    import hashlib
    import json

    summary = Path(root) / "dataset.json"
    if summary.is_file():
        digest = json.loads(summary.read_text()).get("digest", "")
        if digest:
            return digest
    return hashlib.sha256((Path(root) / "manifest.csv").read_bytes()).hexdigest()[:16]


def epoch_metric_names(logs: dict) -> dict[str, float]:
    """Keras' per-epoch logs under this project's names, one prefix per split: ``loss`` →
    ``train_epoch_loss``, ``val_auc`` → ``valid_epoch_auc`` (Keras' approximate AUC after each
    epoch; the final, exact ``valid_roc_auc`` is logged apart); ``learning_rate`` stays."""
    names = {}
    for key, value in logs.items():
        if key == "learning_rate":
            names[key] = float(value)
        elif key.startswith("val_"):
            names[f"valid_epoch_{key.removeprefix('val_')}"] = float(value)
        else:
            names[f"train_epoch_{key}"] = float(value)
    return names


def epoch_metrics_callback():
    """MLflow's Keras callback, limited to one metric per name: each epoch's metrics (renamed by
    :func:`epoch_metric_names`, step = epoch from 1) and the model summary. It skips the
    ``optimizer_*`` params (the run's hyperparameters already say them) and the step-less
    ``validation_*`` copies it would log after every validation pass."""
    import mlflow

    class EpochMetrics(mlflow.keras.MlflowCallback):
        def on_train_begin(self, logs=None):
            lines: list[str] = []
            self.model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
            mlflow.log_text("\n".join(lines), "model_summary.txt")

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch + 1, epoch_metric_names(logs or {}))

        def on_test_end(self, logs=None):
            return None

    return EpochMetrics()


def hyperparameter_params(values: dict, prefix: str) -> dict:
    """Hyperparameters as MLflow params: ``<prefix><name>``, floats to 6 significant digits
    (a tuner's 0.1 steps give 0.30000000000000004), so equal values read and compare equal."""
    return {f"{prefix}{k}": f"{v:.6g}" if isinstance(v, float) else v for k, v in values.items()}
