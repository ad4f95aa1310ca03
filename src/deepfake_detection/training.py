"""``train``: tune → fit → threshold on valid → evaluate on test → log → register → promote.

MLflow structure: one parent run per invocation, one child run per architecture, one
grandchild run per keras-tuner trial.
"""

from __future__ import annotations

import contextlib
import logging
import os
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


def _searcher(name: str, settings: TrainSettings, parts: dict, digest: str):
    """What a search needs: ``(architecture, data(split), train_data(strength), fixed hps, run_dir, tags)``."""
    import keras_tuner as kt
    import tensorflow as tf

    from deepfake_detection.architectures import get_architecture
    from deepfake_detection.data.pipeline import Augment, make_dataset

    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    architecture = get_architecture(name, settings.image_size, settings.weights)
    if architecture.pretrained:  # fail fast on weights that do not fit, before any search
        architecture.build(kt.HyperParameters())
        keras.backend.clear_session()
        keras.utils.set_random_seed(settings.seed)

    def data(split, augment=None, shuffle=False):
        return make_dataset(
            settings.data,
            split,
            settings.image_size,
            settings.batch_size,
            augment=augment,
            shuffle=shuffle,
            seed=settings.seed,
            manifest=parts[split],
        )

    def train_data(strength):
        return data("train", Augment(strength=strength), shuffle=True)

    fixed = kt.HyperParameters()
    if settings.augment >= 0:  # a fixed augmentation strength instead of searching it
        fixed.Fixed("augment", settings.augment)
    tags = {"architecture": name, "dataset_digest": digest}
    return architecture, data, train_data, fixed, _run_dir(name, settings, digest), tags


def _run_dir(name: str, settings: TrainSettings, digest: str) -> Path:
    """The working folder of one search and fit (tuner state, checkpoints); its name is the study."""
    augment_tag = f"-aug{settings.augment:g}" if settings.augment >= 0 else ""
    return Path(settings.work_dir) / f"{name}-{digest}-{settings.image_size}px-seed{settings.seed}{augment_tag}"


def _tuner(
    settings: TrainSettings,
    architecture,
    train_data,
    fixed,
    run_dir: Path,
    tags: dict,
    strategy,
    parent_run_id: str | None = None,
):
    from deepfake_detection import tuning

    return tuning.make_tuner(
        settings.tuner,
        tuning.AugmentedHyperModel(architecture, train_data),
        run_dir / "tuner",
        "search",
        settings.max_trials,
        settings.epochs,
        settings.executions_per_trial,
        settings.seed,
        tags,
        fixed,
        parent_run_id,
        strategy,
    )


DISTRIBUTE = ("none", "mirrored")


def distribution_strategy(kind: str):
    """``None`` (one device) or a ``tf.distribute.MirroredStrategy`` over this machine's GPUs
    (its logical CPU devices when it has no GPU and more than one CPU device is configured).

    Data-parallel: each batch of ``batch_size`` is split over the devices and the gradients are
    all-reduced. Several machines are not supported: see the README (MultiWorkerMirroredStrategy).
    """
    import tensorflow as tf

    if kind == "none":
        return None
    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def train_architecture(name: str, settings: TrainSettings, parts: dict, digest: str) -> ArchitectureResult:
    """Train, evaluate, log and register one architecture inside the active (child) run.

    As the chief of a distributed search (``KERASTUNER_TUNER_ID=chief``) the search step
    serves the oracle to the workers, who run the trials, and returns when they are done.
    """
    import mlflow

    from deepfake_detection import evaluation, plots, tuning
    from deepfake_detection.model import DetectorConfig, log_detector

    architecture, data, train_data, fixed, run_dir, tags = _searcher(name, settings, parts, digest)
    strategy = distribution_strategy(settings.distribute)
    valid, test = data("valid"), data("test")
    if settings.tuner == "none":
        best = fixed  # the final build registers every other hyperparameter with its default
    else:
        tuner = _tuner(settings, architecture, train_data, fixed, run_dir, tags, strategy)
        best = tuning.search(tuner, valid, settings.epochs)

    keras.utils.set_random_seed(settings.seed)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = architecture.build(best)
    if strategy is not None:
        mlflow.log_params({"devices": ",".join(strategy.extended.worker_devices)})
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
    history = model.fit(
        train_data(best.get("augment")), validation_data=valid, epochs=settings.epochs, callbacks=callbacks, verbose=0
    )
    seconds = time.perf_counter() - started
    epochs_run = len(history.history.get("loss", []))
    images_per_second = len(parts["train"]) * epochs_run / seconds

    p_valid, p_test = _predict(model, valid), _predict(model, test)
    y_valid = (parts["valid"]["label"] == "fake").to_numpy().astype(int)
    y_test = (parts["test"]["label"] == "fake").to_numpy().astype(int)
    threshold = evaluation.choose_threshold(y_valid, p_valid)
    valid_metrics = evaluation.binary_metrics(y_valid, p_valid, threshold)
    test_metrics = evaluation.binary_metrics(y_test, p_test, threshold)
    mlflow.log_metrics(
        {
            "threshold": threshold,
            "train_images_per_second": images_per_second,
            "train_seconds": seconds,
            "epochs_run": epochs_run,
            **{f"valid_{k}": v for k, v in valid_metrics.items()},
            **{f"test_{k}": v for k, v in test_metrics.items()},
        }
    )
    for column in ("generator", "source", "level"):
        groups = evaluation.per_group_roc_auc(parts["test"], p_test, column)
        if len(groups) > 1 or (column == "source" and groups):
            mlflow.log_metrics({f"test_roc_auc_{column}_{group}": auc for group, auc in groups.items()})

    roc = {
        f"{name} test": evaluation.roc_points(y_test, p_test),
        f"{name} valid": evaluation.roc_points(y_valid, p_valid),
    }
    _log_figure(plots.roc_figure(roc), "roc.png")
    _log_figure(plots.pr_figure(evaluation.pr_points(y_test, p_test)), "precision_recall.png")
    _log_figure(
        plots.confusion_figure(test_metrics, title=f"{name} test @ threshold {threshold:.3f}"), "confusion_matrix.png"
    )
    _log_figure(plots.training_curves_figure(history.history, title=f"{name} final fit"), "training_curves.png")
    predictions = parts["test"][["path", "label", "source", "generator"]].assign(p_fake=p_test, threshold=threshold)
    predictions = predictions.assign(predicted=np.where(p_test >= threshold, "fake", "real"))
    mlflow.log_table(predictions, "predictions/test.json")

    example = (Path(settings.data) / parts["test"]["path"].iloc[0]).read_bytes()
    config = DetectorConfig(
        architecture=name, image_size=settings.image_size, threshold=threshold, dataset_digest=digest
    )
    info = log_detector(model, config, example, run_dir / "model")
    run_id = mlflow.active_run().info.run_id
    version, role = tracking.register(info.model_uri, name, test_metrics, digest, run_id)
    mlflow.set_tags({"registered_model": tracking.registered_name(name), "model_version": version, "role": role})
    return ArchitectureResult(
        name, run_id, info.model_uri, version, role, threshold, test_metrics, images_per_second, dict(best.values)
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


def _check_settings(settings: TrainSettings) -> list[str]:
    """Refuse unknown architectures, tuners and distributions before anything runs; the architectures."""
    from deepfake_detection.architectures import parse_architectures
    from deepfake_detection.tuning import TUNERS

    names = parse_architectures(settings.arch)
    if settings.tuner not in TUNERS:
        raise DatasetError(f"unknown tuner {settings.tuner!r}; choose from {', '.join(TUNERS)}")
    if settings.distribute not in DISTRIBUTE:
        raise DatasetError(f"unknown distribution {settings.distribute!r}; choose from {', '.join(DISTRIBUTE)}")
    return names


def run_training(
    settings: TrainSettings, run_name: str = "train", tags: dict | None = None
) -> list[ArchitectureResult]:
    """The whole ``train`` entry point: checks first, then one child run per architecture."""
    import mlflow

    names = _check_settings(settings)
    tracking.configure()
    from deepfake_detection.data.pipeline import load_splits

    parts = load_splits(settings.data, settings.num_samples, settings.seed)
    digest = tracking.dataset_digest_of(settings.data)
    settings = replace(settings, data=str(Path(settings.data)))
    results = []
    common_tags = {
        "dataset_digest": digest,
        "git_commit": tracking.git_commit(),
        "positive_class": "fake",
        **(tags or {}),
    }
    with tracking.run(run_name, experiment=settings.experiment, tags={**common_tags, "step": run_name}):
        mlflow.log_params({f"train.{k}": v for k, v in asdict(settings).items()})
        tracking.log_dataset_input(settings.data, parts, digest)
        for name in names:
            with tracking.run(
                f"train-{name}", tags={**common_tags, "step": "train-architecture", "architecture": name}
            ):
                mlflow.log_params({k: v for k, v in asdict(settings).items() if k != "arch"} | {"architecture": name})
                tracking.log_dataset_input(settings.data, parts, digest)
                results.append(train_architecture(name, settings, parts, digest))
        mlflow.log_metrics({f"{r.architecture}_test_roc_auc": r.test["roc_auc"] for r in results})
    return results


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
    from deepfake_detection.data.pipeline import load_splits
    from deepfake_detection.errors import TuningError

    names = _check_settings(settings)
    if len(names) != 1:
        raise TuningError(f"tune searches one architecture at a time; got {', '.join(names)}")
    if role not in ROLES:
        raise TuningError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if settings.tuner == "none":
        raise TuningError("tune needs a tuner (random, bayesian or hyperband), not 'none'")
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
    parts = load_splits(settings.data, settings.num_samples, settings.seed)
    digest = tracking.dataset_digest_of(settings.data)
    settings = replace(settings, data=str(Path(settings.data)))
    study = _run_dir(names[0], settings, digest).name
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
    architecture, data, train_data, fixed, run_dir, tags = _searcher(names[0], settings, parts, digest)
    # Under `mlflow run` the worker's own run stays empty: its trials go under the chief's.
    with (
        role_environ,
        _environ(MLFLOW_RUN_ID=None),
        _exclusive(run_dir / "tuner" / "search" / f"{worker_id}.lock", worker_id),
    ):
        parent = _chief_run(settings.experiment, study, wait_seconds)
        tuner = _tuner(
            settings,
            architecture,
            train_data,
            fixed,
            run_dir,
            {**tags, "study": study},
            distribution_strategy(settings.distribute),
            parent,
        )
        log.info("tuning worker %s: trials go under run %s", worker_id, parent)
        tuner.search(validation_data=data("valid"), epochs=settings.epochs, verbose=0)
    return None


@contextlib.contextmanager
def _environ(**values: str | None):
    """Set (or, for ``None``, remove) environment variables, and put back what was there on exit."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _exclusive(lock: Path, worker_id: str):
    """Refuse a second live worker with the same id: the oracle hands a tuner id's unfinished
    trial to whoever asks with that id, so two such workers would train the same trial into
    the same checkpoint (keras-tuner then fails one of them on the HDF5 file lock, trial after
    trial, until "Number of consecutive failures exceeded the limit"). The kernel drops the
    lock when the process dies, so a restarted worker takes it again and resumes its trial."""
    import fcntl

    from deepfake_detection.errors import TuningError

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

    from deepfake_detection.errors import TuningError

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise TuningError(f"the tuning chief cannot listen on {host}:{port}: {error.strerror or error}") from None


def _chief_run(experiment: str, study: str, wait_seconds: float) -> str:
    """The running chief's architecture run of ``study``, waited for up to ``wait_seconds``."""
    import mlflow

    from deepfake_detection.errors import TuningError

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
