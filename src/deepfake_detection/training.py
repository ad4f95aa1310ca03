"""``train``: tune → fit → threshold on valid → evaluate on test → log → register → promote.

MLflow structure: one parent run per invocation, one child run per architecture, one
grandchild run per keras-tuner trial.
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from deepfake_detection import tracking
from deepfake_detection.config import TrainSettings
from deepfake_detection.errors import DatasetError

log = logging.getLogger(__name__)


@dataclass
class ArchitectureResult:
    architecture: str
    run_id: str
    model_uri: str
    version: str
    role: str
    threshold: float
    test: dict
    train_images_per_second: float
    best_hyperparameters: dict


def _predict(model, dataset) -> np.ndarray:
    return model.predict(dataset, verbose=0).reshape(-1)


def _log_figure(figure, name: str) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    mlflow.log_figure(figure, f"plots/{name}")
    plt.close(figure)


def train_architecture(name: str, settings: TrainSettings, parts: dict, digest: str) -> ArchitectureResult:
    """Train, evaluate, log and register one architecture inside the active (child) run."""
    import keras
    import keras_tuner as kt
    import mlflow
    import tensorflow as tf

    from deepfake_detection import evaluation, plots, tuning
    from deepfake_detection.architectures import get_architecture
    from deepfake_detection.data.pipeline import Augment, make_dataset
    from deepfake_detection.model import DetectorConfig, log_detector

    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    architecture = get_architecture(name, settings.image_size, settings.weights)
    if architecture.pretrained:  # fail fast on weights that do not fit, before any search
        architecture.build(kt.HyperParameters())
        keras.backend.clear_session()
        keras.utils.set_random_seed(settings.seed)

    def data(split, augment=None, shuffle=False):
        return make_dataset(settings.data, split, settings.image_size, settings.batch_size, augment=augment,
                            shuffle=shuffle, seed=settings.seed, manifest=parts[split])  # fmt: skip

    def train_data(strength):
        return data("train", Augment(strength=strength), shuffle=True)

    valid, test = data("valid"), data("test")
    fixed = kt.HyperParameters()
    augment_tag = ""
    if settings.augment >= 0:  # a fixed augmentation strength instead of searching it
        fixed.Fixed("augment", settings.augment)
        augment_tag = f"-aug{settings.augment:g}"
    run_dir = Path(settings.work_dir) / f"{name}-{digest}-{settings.image_size}px-seed{settings.seed}{augment_tag}"
    tags = {"architecture": name, "dataset_digest": digest}

    if settings.tuner == "none":
        best = fixed  # the final build registers every other hyperparameter with its default
    else:
        tuner = tuning.make_tuner(settings.tuner, tuning.AugmentedHyperModel(architecture, train_data),
                                  run_dir / "tuner", "search", settings.max_trials, settings.epochs,
                                  settings.executions_per_trial, settings.seed, tags, fixed)  # fmt: skip
        best = tuning.search(tuner, valid, settings.epochs)

    keras.utils.set_random_seed(settings.seed)
    model = architecture.build(best)
    mlflow.log_params({f"best.{k}": v for k, v in best.values.items()})
    checkpoint = run_dir / "checkpoint.keras"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.EarlyStopping("val_auc", mode="max", patience=settings.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau("val_auc", mode="max", factor=0.5, patience=max(1, settings.patience // 2)),
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_auc", mode="max", save_best_only=True),
        # A killed fit restarts from its last finished epoch when `train` is run again.
        _ResumableFit(str(run_dir / "fit-backup"), double_checkpoint=True),
        mlflow.keras.MlflowCallback(),
    ]
    started = time.perf_counter()
    history = model.fit(train_data(best.get("augment")), validation_data=valid, epochs=settings.epochs,
                        callbacks=callbacks, verbose=0)  # fmt: skip
    seconds = time.perf_counter() - started
    epochs_run = len(history.history.get("loss", []))
    images_per_second = len(parts["train"]) * epochs_run / seconds

    p_valid, p_test = _predict(model, valid), _predict(model, test)
    y_valid = (parts["valid"]["label"] == "fake").to_numpy().astype(int)
    y_test = (parts["test"]["label"] == "fake").to_numpy().astype(int)
    threshold = evaluation.choose_threshold(y_valid, p_valid)
    valid_metrics = evaluation.binary_metrics(y_valid, p_valid, threshold)
    test_metrics = evaluation.binary_metrics(y_test, p_test, threshold)
    mlflow.log_metrics({"threshold": threshold, "train_images_per_second": images_per_second,
                        "train_seconds": seconds, "epochs_run": epochs_run,
                        **{f"valid_{k}": v for k, v in valid_metrics.items()},
                        **{f"test_{k}": v for k, v in test_metrics.items()}})  # fmt: skip
    for column in ("generator", "source", "level"):
        groups = evaluation.per_group_roc_auc(parts["test"], p_test, column)
        if len(groups) > 1 or (column == "source" and groups):
            mlflow.log_metrics({f"test_roc_auc_{column}_{group}": auc for group, auc in groups.items()})

    _log_figure(plots.roc_figure({f"{name} test": (y_test, p_test), f"{name} valid": (y_valid, p_valid)}),
                "roc.png")  # fmt: skip
    _log_figure(plots.pr_figure(y_test, p_test), "precision_recall.png")
    _log_figure(plots.confusion_figure(test_metrics["tn"], test_metrics["fp"], test_metrics["fn"], test_metrics["tp"],
                                       title=f"{name} test @ threshold {threshold:.3f}"), "confusion_matrix.png")
    _log_figure(plots.training_curves_figure(history.history, title=f"{name} final fit"), "training_curves.png")
    predictions = parts["test"][["path", "label", "source", "generator"]].assign(p_fake=p_test, threshold=threshold)
    predictions = predictions.assign(predicted=np.where(p_test >= threshold, "fake", "real"))
    mlflow.log_table(predictions, "predictions/test.json")

    example = (Path(settings.data) / parts["test"]["path"].iloc[0]).read_bytes()
    config = DetectorConfig(architecture=name, image_size=settings.image_size, threshold=threshold,
                            dataset_digest=digest)  # fmt: skip
    info = log_detector(model, config, example, run_dir / "model")
    run_id = mlflow.active_run().info.run_id
    version, role = tracking.register(info.model_uri, name, test_metrics, digest, run_id)
    mlflow.set_tags({"registered_model": tracking.registered_name(name), "model_version": version, "role": role})
    return ArchitectureResult(name, run_id, info.model_uri, version, role, threshold, test_metrics,
                              images_per_second, dict(best.values))  # fmt: skip


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


def run_training(settings: TrainSettings) -> list[ArchitectureResult]:
    """The whole ``train`` entry point: checks first, then one child run per architecture."""
    import mlflow

    from deepfake_detection.architectures import parse_architectures
    from deepfake_detection.tuning import TUNERS

    names = parse_architectures(settings.arch)
    if settings.tuner not in TUNERS:
        raise DatasetError(f"unknown tuner {settings.tuner!r}; choose from {', '.join(TUNERS)}")
    tracking.configure()
    from deepfake_detection.data.pipeline import load_splits

    parts = load_splits(settings.data, settings.num_samples, settings.seed)
    digest = tracking.dataset_digest_of(settings.data)
    settings = replace(settings, data=str(Path(settings.data)))
    results = []
    common_tags = {"dataset_digest": digest, "git_commit": tracking.git_commit(), "positive_class": "fake"}
    with tracking.run("train", experiment=settings.experiment, tags={**common_tags, "step": "train"}):
        mlflow.log_params({f"train.{k}": v for k, v in asdict(settings).items()})
        tracking.log_dataset_input(settings.data, parts, digest)
        for name in names:
            with tracking.run(f"train-{name}", tags={**common_tags, "step": "train-architecture",
                                                     "architecture": name}):  # fmt: skip
                mlflow.log_params({k: v for k, v in asdict(settings).items() if k != "arch"} | {"architecture": name})
                tracking.log_dataset_input(settings.data, parts, digest)
                results.append(train_architecture(name, settings, parts, digest))
        mlflow.log_metrics({f"{r.architecture}_test_roc_auc": r.test["roc_auc"] for r in results})
    return results
