"""keras-tuner search with one nested MLflow run per trial.

Tuner state lives on disk (``directory/project_name``) and is never overwritten, so a killed
search started again with the same arguments resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import keras_tuner as kt
import mlflow

from deepfake_detection.architectures import Architecture

TUNERS = ("hyperband", "bayesian", "random", "none")
OBJECTIVE = kt.Objective("val_auc", direction="max")


def _tracked(base: type[kt.Tuner]) -> type[kt.Tuner]:
    class TrackedTuner(base):
        """Logs every trial as a nested MLflow run: hyperparameters and validation metrics."""

        def __init__(self, *args, run_prefix: str = "trial", tags: dict | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.run_prefix = run_prefix
            self.run_tags = tags or {}

        def run_trial(self, trial, *args, **kwargs):
            parent = mlflow.active_run()
            with mlflow.start_run(
                run_name=f"{self.run_prefix}-{trial.trial_id}",
                nested=True,
                experiment_id=parent.info.experiment_id if parent else None,
                tags={**self.run_tags, "step": "trial", "trial_id": trial.trial_id},
            ):
                mlflow.log_params({f"hp.{k}": v for k, v in trial.hyperparameters.values.items()})
                histories = super().run_trial(trial, *args, **kwargs)
                _log_trial_metrics(histories)
            return histories

    TrackedTuner.__name__ = f"Tracked{base.__name__}"
    return TrackedTuner


def _log_trial_metrics(histories) -> None:
    """Best epoch (by val_auc) of each execution, averaged over executions."""
    best: dict[str, list[float]] = {}
    for history in histories if isinstance(histories, list) else [histories]:
        logs = getattr(history, "history", history) or {}
        if not logs.get("val_auc"):
            continue
        epoch = max(range(len(logs["val_auc"])), key=lambda i: logs["val_auc"][i])
        for key, values in logs.items():
            if key.startswith("val_") and epoch < len(values):
                best.setdefault(key, []).append(float(values[epoch]))
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
    directory: Path,
    project_name: str,
    max_trials: int,
    epochs: int,
    executions_per_trial: int = 1,
    seed: int = 42,
    tags: dict | None = None,
    fixed: kt.HyperParameters | None = None,
) -> kt.Tuner:
    """A keras-tuner tuner of ``kind`` whose trials are logged to MLflow; resumes from disk.
    ``fixed`` holds hyperparameters pinned to one value (the rest are searched)."""
    common = dict(
        hypermodel=hypermodel, objective=OBJECTIVE, directory=str(directory), project_name=project_name,
        hyperparameters=fixed, tune_new_entries=True,
        overwrite=False, seed=seed, run_prefix=f"{hypermodel.name}-trial", tags=tags,
        executions_per_trial=executions_per_trial, max_consecutive_failed_trials=1,
    )  # fmt: skip
    if kind == "random":
        return _tracked(kt.RandomSearch)(max_trials=max_trials, **common)
    if kind == "bayesian":
        return _tracked(kt.BayesianOptimization)(max_trials=max_trials, **common)
    if kind == "hyperband":
        # Hyperband's budget is in epochs; max_epochs = epochs, one bracket iteration.
        return _tracked(kt.Hyperband)(max_epochs=max(epochs, 2), factor=3, hyperband_iterations=1, **common)
    raise ValueError(f"unknown tuner {kind!r}; choose from {TUNERS}")


def search(tuner: kt.Tuner, validation_data, epochs: int, callbacks=()) -> kt.HyperParameters:
    """Run (or resume) the search and return the best hyperparameters found."""
    tuner.search(validation_data=validation_data, epochs=epochs, callbacks=list(callbacks), verbose=0)
    best = tuner.get_best_hyperparameters(1)
    if not best:
        raise RuntimeError("the hyperparameter search finished without a successful trial")
    return best[0]
