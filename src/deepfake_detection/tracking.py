"""The MLflow side: where runs go, checking the server is there, and logging a dataset.

Embedded default: tracking and registry in ``sqlite:///mlflow.db``, artifacts under
``./mlruns``. ``MLFLOW_TRACKING_URI`` points everything at a shared server instead.
"""

from __future__ import annotations

import contextlib
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

    tags = {**(tags or {}), "host": socket.gethostname(), "pid": str(os.getpid())}  # for finding orphans
    parent = mlflow.active_run()
    if parent is not None:
        with mlflow.start_run(run_name=name, nested=True, tags=tags, experiment_id=parent.info.experiment_id) as active:
            yield active
        return
    if os.environ.get("MLFLOW_RUN_ID"):
        with mlflow.start_run(tags=tags) as active:
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


# -- Model Registry ---------------------------------------------------------------------

CHAMPION, CHALLENGER = "champion", "challenger"
# Registered-model tags left by a promotion by hand: the version a person made champion, and the
# newest version then; elections afterwards weigh only the first and versions after the second.
HAND_PICKED, HAND_PICKED_AMONG = "champion_promoted_by_hand", "champion_promoted_by_hand_among"


def registered_name(architecture: str) -> str:
    return f"deepfake-{architecture}"


def git_commit() -> str:
    """The project's git commit, or "" outside a git checkout."""
    import subprocess

    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def register(model_uri: str, architecture: str, metrics: dict, dataset_digest: str, run_id: str):
    """Register ``model_uri`` as ``deepfake-<arch>`` and elect the champion; undo the version on failure.

    Election: among the versions on the same dataset digest as the current champion (this
    one's when there is none), the best test ROC-AUC (the earliest on a tie) gets alias
    ``champion`` + stage ``Production`` (archiving the previous one); the newest version after
    it gets alias ``challenger`` + stage ``Staging``. A champion on other data is only replaced
    by hand (``promote``); a champion promoted by hand holds until a later version on its data
    scores better. Safe with several processes registering at once (see :func:`_elect`).

    Returns ``(version, role)``.
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    name = registered_name(architecture)
    version = mlflow.register_model(
        model_uri,
        name,
        tags={
            "architecture": architecture,
            "dataset_digest": dataset_digest,
            "positive_class": "fake",
            "test_roc_auc": f"{metrics['roc_auc']:.6f}",
            "run_id": run_id,
        },
    )
    try:
        champion = _elect(client, architecture, dataset_digest)
    except BaseException:
        client.delete_model_version(name, version.version)
        raise
    role = CHAMPION if champion == str(version.version) else CHALLENGER
    return str(version.version), role


def _elect(client, architecture: str, dataset_digest: str, rounds: int = 20) -> str:
    """Put the registry in the election's state; return the champion's version.

    The state is a function of the set of versions alone: champion = best test ROC-AUC
    (earliest on a tie) among the versions on the champion's dataset digest, from the last
    one promoted by hand on; challenger = the newest version after the champion. Each process
    ends with a read confirming that state for every version it sees; a version created after
    that read belongs to a process that reads (and corrects) later, and both compute the same
    state from the same versions. So concurrent registrations converge, without a lock the
    registry does not offer.
    """
    import random
    import time

    from mlflow.exceptions import MlflowException

    name = registered_name(architecture)
    last_error: Exception | str = "the registry kept changing"
    for _ in range(rounds):
        model = client.get_registered_model(name)  # its aliases and tags, then every version
        aliases = {alias: str(version) for alias, version in model.aliases.items()}
        picked, among = model.tags.get(HAND_PICKED, ""), int(model.tags.get(HAND_PICKED_AMONG, 0))
        everything = {str(v.version): v for v in client.search_model_versions(f"name='{name}'", max_results=10000)}
        champion = everything.get(aliases.get(CHAMPION, ""))
        digest = champion.tags.get("dataset_digest") if champion is not None else dataset_digest
        comparable = [
            v
            for v in everything.values()
            if v.tags.get("dataset_digest") == digest
            and "test_roc_auc" in v.tags
            and (str(v.version) == picked or int(v.version) > among)
        ]
        if champion is not None:
            comparable.append(champion)  # may be unscored: promoted by hand
        best = max(comparable, key=lambda v: (float(v.tags.get("test_roc_auc", "-inf")), -int(v.version)))
        newer = [v for v in everything.values() if int(v.version) > int(best.version)]
        challenger = max(newer, key=lambda v: int(v.version)) if newer else None
        champion_ok = champion is best and best.current_stage == "Production"
        challenger_ok = challenger is None or (
            aliases.get(CHALLENGER) == str(challenger.version) and challenger.current_stage == "Staging"
        )
        if champion_ok and challenger_ok:
            return str(best.version)
        try:
            if not champion_ok:
                promote(architecture, best.version, CHAMPION)
            if not challenger_ok:
                promote(architecture, challenger.version, CHALLENGER)
        except MlflowException as error:  # e.g. two processes setting one alias at once: read again
            last_error = error
        time.sleep(random.uniform(0.02, 0.2))
    raise TrackingError(f"could not settle the champion of {name} in {rounds} rounds: {last_error}")


def promote(architecture: str, version: str | int, role: str, by_hand: bool = False) -> None:
    """Give a version the alias ``role`` and its stage (champion → Production, challenger → Staging).
    ``by_hand``: a person chose it; older versions no longer take part in elections."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if role not in (CHAMPION, CHALLENGER):
        raise TrackingError(f"role must be {CHAMPION!r} or {CHALLENGER!r}, got {role!r}")
    client = MlflowClient()
    name = registered_name(architecture)
    stage = "Production" if role == CHAMPION else "Staging"
    other = CHALLENGER if role == CHAMPION else CHAMPION
    try:
        if str(client.get_model_version_by_alias(name, other).version) == str(version):
            client.delete_registered_model_alias(name, other)  # one role per version
    except MlflowException:
        pass  # no version holds the other alias
    with warnings.catch_warnings():  # stages are deprecated in MLflow 3 but still supported
        warnings.simplefilter("ignore", FutureWarning)
        client.set_registered_model_alias(name, role, str(version))
        client.transition_model_version_stage(name, str(version), stage, archive_existing_versions=role == CHAMPION)
    if by_hand and role == CHAMPION:
        newest = max(int(v.version) for v in client.search_model_versions(f"name='{name}'", max_results=10000))
        client.set_registered_model_tag(name, HAND_PICKED, str(version))
        client.set_registered_model_tag(name, HAND_PICKED_AMONG, str(newest))


def log_dataset_input(root: str, parts: dict, digest: str) -> None:
    """Log the rows a training run used (train/valid/test) as an MLflow dataset input."""
    import mlflow
    import pandas as pd
    from mlflow.data.sources import LocalArtifactDatasetSource

    rows = pd.concat(parts.values(), ignore_index=True).drop(columns=["file"], errors="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            rows,
            source=LocalArtifactDatasetSource(str(Path(root).resolve())),
            targets="target",
            name=Path(root).name,
            digest=digest,
        )
        mlflow.log_input(dataset, context="training")


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
