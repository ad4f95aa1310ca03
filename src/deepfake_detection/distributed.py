"""The distributed roles of a hyperparameter search: keras-tuner's chief and workers over gRPC.

The chief serves the oracle, waits for the workers' trials, then fits, evaluates and registers
the best hyperparameters once, as ``train`` does; each worker runs the trials it is handed, each
as an MLflow run nested under the chief's architecture run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from unittest import mock

from deepfake_detection import tracking
from deepfake_detection.config import TrainSettings
from deepfake_detection.errors import TuningError
from deepfake_detection.training.fit import distribution_strategy
from deepfake_detection.training.run import run_training
from deepfake_detection.training.study import Search, check_settings, load_training_data, study_dir
from deepfake_detection.training.summary import ArchitectureResult

log = logging.getLogger(__name__)

ROLES = ("chief", "worker")


def run_tuning(
    settings: TrainSettings, role: str, oracle: str, worker_id: str = "", wait_seconds: float = 300.0
) -> ArchitectureResult | None:
    """One process of a distributed search, in keras-tuner's chief/worker mode over gRPC.

    The chief serves the oracle (which hands out trials), waits until the workers have run
    them all, then trains, evaluates and registers the best hyperparameters once, exactly
    as ``train`` does. A worker runs the trials it is handed, each as an MLflow run nested
    under the chief's run, and returns ``None``. Chief and workers must be given the same
    training settings; ``study`` (the tuner folder's name) ties them together.
    """
    names = check_settings(settings)
    if len(names) != 1:
        raise TuningError(f"tune searches one architecture at a time; got {', '.join(names)}")
    if role not in ROLES:
        raise TuningError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if settings.distribute == "multi-host":
        raise TuningError("tune spreads trials over machines itself; --distribute multi-host is for train")
    if settings.tuner == "none":
        raise TuningError("tune needs a tuner (random, bayesian or hyperband), not 'none'")
    if settings.budget_minutes > 0 or settings.plan:
        raise TuningError(
            "tune's trials run --epochs each on every worker; a time budget or --plan is for train "
            "(the workers could not know the chief's planned epochs)"
        )
    host, _, port = oracle.rpartition(":")
    if not host or not port.isdigit():
        raise TuningError(f"--oracle must be HOST:PORT, got {oracle!r}")
    if role == "worker" and (not worker_id or "chief" in worker_id):
        raise TuningError(
            "a worker needs --worker-id, unique among the workers and without the word 'chief' "
            "(the same id again resumes that worker's unfinished trial)"
        )
    if role == "chief":
        _check_listen(host, int(port))
    tracking.configure()
    settings, parts, digest = load_training_data(settings)
    study = study_dir(names[0], settings, digest).name
    # keras-tuner reads its role from the environment; set only while this search runs.
    role_environ = _environ(
        KERASTUNER_TUNER_ID="chief" if role == "chief" else worker_id,
        KERASTUNER_ORACLE_IP=host,
        KERASTUNER_ORACLE_PORT=port,
    )
    if role == "chief":  # run_training builds the search, which serves the oracle, then the final fit
        with role_environ:
            (result,) = run_training(settings, run_name="tune", tags={"study": study, "oracle": oracle})
        return result
    search = Search.create(names[0], settings, parts, digest)
    # Under `mlflow run` the worker's own run stays empty: its trials go under the chief's.
    with (
        role_environ,
        _environ(MLFLOW_RUN_ID=None),
        _exclusive(search.search_dir / f"{worker_id}.lock", worker_id),
    ):
        parent = _chief_run(settings.experiment, study, wait_seconds)
        tuner = search.tuner(distribution_strategy(settings.distribute), parent, tags={"study": study})
        log.info("tuning worker %s: trials go under run %s", worker_id, parent)
        tuner.search(validation_data=search.valid, epochs=settings.epochs, verbose=0)
    return None


@contextlib.contextmanager
def _environ(**values: str | None):
    """Set (or, for ``None``, remove) environment variables; everything is put back on exit."""
    with mock.patch.dict(os.environ, {name: value for name, value in values.items() if value is not None}):
        for name in [name for name, value in values.items() if value is None]:
            os.environ.pop(name, None)
        yield


@contextlib.contextmanager
def _exclusive(lock: Path, worker_id: str):
    """Refuse a second live worker with the same id: the oracle hands a tuner id's unfinished
    trial to whoever asks with that id, so two such workers would train the same trial into
    the same checkpoint (keras-tuner then fails one of them on the HDF5 file lock, trial after
    trial, until "Number of consecutive failures exceeded the limit"). The kernel drops the
    lock when the process dies, so a restarted worker takes it again and resumes its trial."""
    import fcntl

    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TuningError(
                f"worker id {worker_id!r} is taken by a running worker of this search ({lock}); "
                "give each worker its own --worker-id"
            ) from None
        yield


def _check_listen(host: str, port: int) -> None:
    """Fail before any run starts when the chief could not serve on ``host:port``."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise TuningError(f"the tuning chief cannot listen on {host}:{port}: {error.strerror or error}") from None


def _chief_run(experiment: str, study: str, wait_seconds: float) -> str:
    """The running chief's architecture run of ``study``, waited for up to ``wait_seconds``."""
    import mlflow

    deadline = time.monotonic() + wait_seconds
    while True:
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            runs = mlflow.search_runs(
                [found.experiment_id],
                output_format="list",
                max_results=1,
                filter_string=(
                    f"tags.study = '{study}' and tags.step = 'train-architecture' and attributes.status = 'RUNNING'"
                ),
            )
            if runs:
                return runs[0].info.run_id
        if time.monotonic() > deadline:
            raise TuningError(
                f"no chief is running the search {study!r} in experiment {experiment!r} at "
                f"{tracking.tracking_uri()} after {wait_seconds:.0f} s: start the chief first, "
                "with the same --arch, --data, --image-size, --seed and --augment"
            )
        time.sleep(1.0)
