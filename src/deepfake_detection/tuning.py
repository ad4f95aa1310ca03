"""keras-tuner search with one nested MLflow run per trial.

Tuner state lives on disk (``directory/project_name``) and is never overwritten, so a killed
search started again with the same arguments resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import keras_tuner as kt
import mlflow
from keras_tuner.src.distribute import utils as dist_utils

from deepfake_detection.architectures import Architecture
from deepfake_detection.errors import SettingsError, TuningError
from deepfake_detection.tracking import epoch_metric_names, hyperparameter_params

log = logging.getLogger(__name__)

TUNERS = ("hyperband", "bayesian", "random", "none")
OBJECTIVE = kt.Objective("val_auc", direction="max")


def _tracked(base: type[kt.Tuner]) -> type[kt.Tuner]:
    class TrackedTuner(base):
        """Logs every trial as a nested MLflow run: hyperparameters and validation metrics.

        The parent is the active run, or ``parent_run_id`` (a distributed worker has no run of
        its own: its trials hang under the chief's). A trial run again (a retry, a worker
        restarted after a crash) goes on in the run of its first attempt: one run per trial.
        """

        def __init__(
            self, *args, run_prefix: str = "trial", tags: dict | None = None, parent_run_id: str | None = None, **kwargs
        ):
            super().__init__(*args, **kwargs)
            self.run_prefix = run_prefix
            self.run_tags = tags or {}
            self.parent_run_id = parent_run_id

        def run_trial(self, trial, *args, **kwargs):
            active = mlflow.active_run()
            parent_id = active.info.run_id if active else self.parent_run_id
            if active is not None:
                experiment_id = active.info.experiment_id
            else:
                experiment_id = mlflow.get_run(parent_id).info.experiment_id if parent_id else None
            tags = {
                **self.run_tags,
                "step": "trial",
                "trial_id": trial.trial_id,
                "tuner_id": self.tuner_id,
                "host": socket.gethostname(),
                "pid": str(os.getpid()),
            }
            earlier = _trial_run_id(experiment_id, parent_id, trial.trial_id) if parent_id else None
            with mlflow.start_run(
                run_id=earlier,
                run_name=f"{self.run_prefix}-{trial.trial_id}",
                nested=True,
                parent_run_id=parent_id,
                experiment_id=experiment_id,
                tags=tags,
            ):
                if earlier:
                    mlflow.set_tags(tags)
                mlflow.log_params(hyperparameter_params(trial.hyperparameters.values, "hp."))
                histories = super().run_trial(trial, *args, **kwargs)
                _log_trial_metrics(histories)
            return histories

        def search(self, *fit_args, **fit_kwargs):
            if dist_utils.is_chief_oracle():  # serve the oracle to the workers until the search is over
                self.save()
                serve_oracle(self.oracle)
                return
            super().search(*fit_args, **fit_kwargs)

    TrackedTuner.__name__ = f"Tracked{base.__name__}"
    return TrackedTuner


def _trial_run_id(experiment_id: str, parent_id: str, trial_id: str) -> str | None:
    runs = mlflow.search_runs(
        [experiment_id],
        output_format="list",
        max_results=1,
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.trial_id = '{trial_id}'",
    )
    return runs[0].info.run_id if runs else None


def serve_oracle(oracle, poll_seconds: float = 0.5) -> None:
    """keras-tuner's chief: answer the workers' gRPC calls until every trial has ended.

    The protocol and servicer are keras-tuner's own; only the wait differs from
    ``oracle_chief.start_server`` (which checks every 20 s and never stops its server).
    A chief restarted after the search ended returns at once.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    finished = [t for t in oracle.trials.values() if t.status not in ("RUNNING", "IDLE")]
    if oracle.max_trials and len(finished) >= oracle.max_trials and not oracle.ongoing_trials:
        return
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"

    class Servicer(oracle_chief.OracleServicer):
        error: Exception | None = None

        def EndTrial(self, request, context):
            try:
                return super().EndTrial(request, context)
            except Exception as error:  # e.g. too many failed trials: the search is over
                self.error = error
                raise

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = Servicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # newer gRPC raises where older returned 0
        bound = 0
    if bound == 0:
        raise TuningError(f"the tuning chief cannot listen on {address} (in use, or not an address of this host)")
    server.start()
    log.info("tuning chief: oracle listening on %s", address)
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            if servicer.error is not None:
                raise TuningError(f"the distributed search stopped: {servicer.error}")
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=5).wait()


def _log_trial_metrics(histories) -> None:
    """Validation metrics of the best epoch (by val_auc) of each execution, averaged over
    executions, under the names the final fit's curves use (``valid_epoch_auc`` …), and ``epochs``."""

    best: dict[str, list[float]] = {}
    for history in histories if isinstance(histories, list) else [histories]:
        logs = getattr(history, "history", history) or {}
        if not logs.get("val_auc"):
            continue
        epoch = max(range(len(logs["val_auc"])), key=lambda i: logs["val_auc"][i])
        at_best = {k: v[epoch] for k, v in logs.items() if k.startswith("val_") and epoch < len(v)}
        for key, value in epoch_metric_names(at_best).items():
            best.setdefault(key, []).append(value)
        best.setdefault("epochs", []).append(float(len(logs["val_auc"])))
    mlflow.log_metrics({k: sum(v) / len(v) for k, v in best.items()})


class AugmentedHyperModel(kt.HyperModel):
    """Wraps an architecture so each trial trains on data augmented with its ``augment`` value."""

    def __init__(self, architecture: Architecture, train_data: Callable[[float], object]):
        super().__init__(name=architecture.name)
        self.architecture = architecture
        self.train_data = train_data

    def build(self, hp):
        return self.architecture.build(hp)

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(self.train_data(hp.get("augment")), *args, **kwargs)


def make_tuner(
    kind: str,
    hypermodel: kt.HyperModel,
    *,
    directory: Path,
    project_name: str,
    max_trials: int,
    epochs: int,
    executions_per_trial: int = 1,
    seed: int = 42,
    tags: dict | None = None,
    fixed: kt.HyperParameters | None = None,
    parent_run_id: str | None = None,
    distribution_strategy=None,
) -> kt.Tuner:
    """A keras-tuner tuner of ``kind`` whose trials are logged to MLflow; resumes from disk.
    ``fixed`` holds hyperparameters pinned to one value (the rest are searched)."""
    common = dict(
        hypermodel=hypermodel,
        objective=OBJECTIVE,
        directory=str(directory),
        project_name=project_name,
        hyperparameters=fixed,
        tune_new_entries=True,
        overwrite=False,
        seed=seed,
        run_prefix=f"{hypermodel.name}-trial",
        tags=tags,
        parent_run_id=parent_run_id,
        executions_per_trial=executions_per_trial,
        max_consecutive_failed_trials=1,
        distribution_strategy=distribution_strategy,
    )
    if kind == "random":
        return _tracked(kt.RandomSearch)(max_trials=max_trials, **common)
    if kind == "bayesian":
        return _tracked(kt.BayesianOptimization)(max_trials=max_trials, **common)
    if kind == "hyperband":
        # Hyperband's budget is in epochs; max_epochs = epochs, one bracket iteration.
        return _tracked(kt.Hyperband)(max_epochs=max(epochs, 2), factor=3, hyperband_iterations=1, **common)
    raise SettingsError(f"unknown tuner {kind!r}; choose from {', '.join(TUNERS)}")


def search(tuner: kt.Tuner, validation_data, epochs: int, callbacks=()) -> kt.HyperParameters:
    """Run (or resume) the search and return the best hyperparameters found."""
    tuner.search(validation_data=validation_data, epochs=epochs, callbacks=list(callbacks), verbose=0)
    best = tuner.get_best_hyperparameters(1)
    if not best:
        raise RuntimeError("the hyperparameter search finished without a successful trial")
    return best[0]
