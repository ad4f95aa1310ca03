"""The final fit of the best hyperparameters, on the devices a placement gives it.

A placement says where a fit runs and what this process does around it: :class:`OneMachine`
(this machine's devices, under an optional ``tf.distribute`` strategy; checkpoints and resumes)
or a multi-host :class:`deepfake_detection.multihost.Cluster` (every process fits its shard; only
process 0 logs). The fit never asks which one it was handed, as keras-tuner's ``Tuner`` is handed a
``distribution_strategy``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import keras
import keras_tuner as kt
import mlflow

from deepfake_detection import tracking, tuning
from deepfake_detection.training.budget import Budget, EpochProgress
from deepfake_detection.training.plan import steps_per_epoch
from deepfake_detection.training.study import Search

log = logging.getLogger(__name__)


def distribution_strategy(kind: str):
    """``None`` (one device) or a ``tf.distribute.MirroredStrategy`` over this machine's GPUs
    (its logical CPU devices when it has no GPU and more than one CPU device is configured).

    Data-parallel: each batch of ``batch_size`` is split over the devices and the gradients are
    all-reduced. Several machines: ``--distribute multi-host`` (docs/scaling-out.md).
    """
    import tensorflow as tf

    if kind in ("none", "multi-host"):  # multi-host: Keras' own distribution on JAX (multihost.py)
        return None
    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


@dataclass
class Fit:
    model: keras.Model
    history: dict[str, list[float]]
    seconds: float
    epochs_run: int
    images_per_second: float
    weights_sha256: str = ""  # multi-host: the same in every process (checked)
    processes: int = 1
    stopped_by_budget: bool = False
    replanned: int = 0  # the epochs a fit running behind its plan was re-planned to (0: never)


def search_hyperparameters(search: Search, strategy, budget: Budget | None = None) -> kt.HyperParameters:
    """The best hyperparameters of the (resumed) search; the fixed ones alone with ``--tuner none``
    (the final build then registers every other hyperparameter with its default). Each trial
    prints its epochs and stops at ``budget`` as a final fit does."""
    if search.settings.tuner == "none":
        return search.fixed
    resumed = (search.search_dir / "oracle.json").exists()
    study = search.run_dir.name
    print(f"{search.name}: {'resuming' if resumed else 'new'} study {study} in {search.run_dir.parent}")
    mlflow.set_tags({"study": study, "study_resumed": str(resumed).lower()})
    progress = EpochProgress(f"{search.name} trial", search.settings.epochs, budget or Budget(), search.name)
    return tuning.search(search.tuner(strategy), search.valid, search.settings.epochs, [progress])


class Placement(Protocol):
    """Where a final fit runs, and what this process does around it."""

    logs: bool  # this process logs to MLflow
    processes: int  # how many processes fit together, each on its own share of the images

    def feed(self, search: Search) -> Search:
        """What this process reads of ``search``'s data."""

    def scope(self, name: str) -> contextlib.AbstractContextManager:
        """The context the model is built and fitted in."""

    def start(self, name: str, best: kt.HyperParameters, epochs: int) -> dict:
        """Called once before the fit; returns the MLflow params to log for it."""

    def checkpoints(self, folder: Path) -> list[keras.callbacks.Callback]:
        """Callbacks that save the fit to ``folder`` so that a killed fit resumes."""

    def finish(self, model: keras.Model, name: str, build) -> tuple[keras.Model, str]:
        """The model to evaluate and save (``build()`` makes the same architecture afresh) and
        the sha256 of its weights ('' where nothing is compared)."""


@dataclass
class OneMachine:
    """This machine's devices: one, or a ``tf.distribute`` ``strategy`` over several
    (:func:`distribution_strategy`). Logs, checkpoints, and resumes a killed fit."""

    strategy: object = None
    logs: bool = True
    processes: int = 1

    def feed(self, search: Search) -> Search:
        return search

    def scope(self, name: str) -> contextlib.AbstractContextManager:
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def start(self, name: str, best: kt.HyperParameters, epochs: int) -> dict:
        return {"devices": ",".join(self.strategy.extended.worker_devices)} if self.strategy is not None else {}

    def checkpoints(self, folder: Path) -> list[keras.callbacks.Callback]:
        folder.mkdir(parents=True, exist_ok=True)
        return [
            keras.callbacks.ModelCheckpoint(
                str(folder / "checkpoint.keras"), monitor="val_auc", mode="max", save_best_only=True
            ),
            # A killed fit restarts from its last finished epoch when `train` is run again.
            _ResumableFit(str(folder / "backup"), double_checkpoint=True),
        ]

    def finish(self, model: keras.Model, name: str, build) -> tuple[keras.Model, str]:
        return model, ""


def final_fit(
    search: Search, best: kt.HyperParameters, epochs: int, placement: Placement, budget: Budget | None = None
) -> Fit:
    """Fit ``best`` from scratch for ``epochs`` (the learning-rate schedule spans them) with early
    stopping on val_auc, where ``placement`` puts it (:class:`OneMachine`, or every process of a
    multi-host cluster); the placement decides what this process reads, logs and checkpoints.
    One line per epoch; a fit of one process that runs behind its share of ``budget`` is
    re-planned to fewer epochs (its learning rate annealed by the last) and stops at an epoch
    boundary once another epoch would overrun its share (processes fitting together would have to agree to stop: they
    run their planned epochs)."""
    settings = search.settings
    keras.utils.set_random_seed(settings.seed)
    fed = placement.feed(search)
    search.architecture.training_steps = epochs * steps_per_epoch(len(fed.parts["train"]), fed.settings.batch_size)
    with placement.scope(search.name):
        params = placement.start(search.name, best, epochs)
        model = search.architecture.build(best)
        # after the build, which registers every hyperparameter the search left at its default
        progress = EpochProgress(search.name, epochs, budget or Budget(), enforce=placement.processes == 1)
        callbacks = [
            keras.callbacks.EarlyStopping("val_auc", mode="max", patience=settings.patience, restore_best_weights=True),
            progress,
        ]
        if placement.logs:
            mlflow.log_params(params | tracking.hyperparameter_params(best.values, "best.") | {"fit_epochs": epochs})
            callbacks.append(tracking.epoch_metrics_callback())
        # a fit planned for other epochs is another fit
        callbacks += placement.checkpoints(search.run_dir / f"fit-{epochs}-epochs")
        started = time.perf_counter()
        history = model.fit(
            fed.train_data(best.get("augment")),
            validation_data=fed.valid,
            epochs=epochs,
            callbacks=callbacks,
            verbose=0,
        )
        seconds = time.perf_counter() - started
    epochs_run = len(history.history.get("loss", []))
    images = len(fed.parts["train"]) * placement.processes
    model, digest = placement.finish(model, search.name, lambda: search.architecture.build(best))
    speed = images * epochs_run / seconds
    return Fit(
        model,
        history.history,
        seconds,
        epochs_run,
        speed,
        digest,
        placement.processes,
        stopped_by_budget=progress.stopped_by_budget,
        replanned=progress.replanned,
    )


class _ResumableFit(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore (which falls back to the previous epoch's backup when the last
    one is unreadable); a backup with nothing readable left is discarded and the fit starts over."""

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except OSError as error:
            log.warning("discarding the unreadable fit backup in %s (%s); the fit starts over", self.backup_dir, error)
            shutil.rmtree(self.backup_dir, ignore_errors=True)
            self._current_epoch = 0
