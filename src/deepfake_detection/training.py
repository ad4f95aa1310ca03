"""``train``: search → fit → threshold on valid → evaluate on test → log → register, one
architecture at a time.

MLflow structure: one parent run per invocation, one child run per architecture, one
grandchild run per keras-tuner trial. The distributed roles of a search are in
:mod:`deepfake_detection.distributed`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np

from deepfake_detection import access, registry, tracking, views
from deepfake_detection.architectures import Architecture
from deepfake_detection.config import TrainSettings
from deepfake_detection.errors import SettingsError

log = logging.getLogger(__name__)

DISTRIBUTE = ("none", "mirrored", "multi-host")


@dataclass
class ArchitectureResult:
    architecture: str
    run_id: str
    model_uri: str
    version: str
    role: str
    threshold: float
    valid: dict
    test: dict
    train_images_per_second: float
    best_hyperparameters: dict

    @property
    def degenerate(self) -> bool:
        """No better than chance on valid: registered, never champion."""
        from deepfake_detection.evaluation import is_degenerate

        return is_degenerate(self.valid)


def check_settings(settings: TrainSettings) -> list[str]:
    """Refuse unknown architectures, tuners and distributions, image sizes an architecture cannot
    take and weights it cannot load, before any run opens; returns the architecture names."""
    from deepfake_detection.architectures import get_architecture, parse_architectures
    from deepfake_detection.tuning import TUNERS

    names = parse_architectures(settings.arch)
    if settings.tuner not in TUNERS:
        raise SettingsError(f"unknown tuner {settings.tuner!r}; choose from {', '.join(TUNERS)}")
    if settings.distribute not in DISTRIBUTE:
        raise SettingsError(f"unknown distribution {settings.distribute!r}; choose from {', '.join(DISTRIBUTE)}")
    if settings.distribute == "multi-host":
        from deepfake_detection import multihost

        multihost.check(settings)
    for name in names:
        get_architecture(name, settings.image_size, settings.weights)  # raises on a size or weights it refuses
    return names


# Every setting that changes what a trial scores; a study resumes only under all of them.
STUDY_KEYS = (
    "image_size",
    "seed",
    "augment",
    "tuner",
    "epochs",
    "batch_size",
    "weights",
    "executions_per_trial",
    "num_samples",
)


def study_dir(name: str, settings: TrainSettings, digest: str) -> Path:
    """The working folder of one search and fit (tuner state, checkpoints); its name is the study.

    Keyed on the architecture, the dataset digest and every setting in :data:`STUDY_KEYS`, so a
    ``train`` with other epochs, tuner, batch size… starts a new study instead of mixing trials
    scored under different settings; ``max_trials`` is not in it (more trials extend a study).
    """
    import hashlib
    import json

    key = json.dumps({k: getattr(settings, k) for k in STUDY_KEYS}, sort_keys=True)
    tag = hashlib.sha256(key.encode()).hexdigest()[:10]
    return Path(settings.work_dir) / f"{name}-{digest}-{settings.image_size}px-{tag}"


@dataclass
class Search:
    """What one architecture's search and final fit need: the HyperModel, its data, the
    hyperparameters pinned by the settings, and the working folder whose name is the study."""

    architecture: Architecture
    settings: TrainSettings
    parts: dict  # split → manifest rows
    digest: str
    fixed: kt.HyperParameters

    @classmethod
    def create(cls, name: str, settings: TrainSettings, parts: dict, digest: str) -> Search:
        """Seed everything, then check pretrained weights fit by building once (fail fast)."""
        import tensorflow as tf

        from deepfake_detection.architectures import get_architecture

        warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
        keras.utils.set_random_seed(settings.seed)
        tf.config.experimental.enable_op_determinism()
        architecture = get_architecture(name, settings.image_size, settings.weights)
        if architecture.pretrained:
            architecture.build(kt.HyperParameters())
            keras.backend.clear_session()
            keras.utils.set_random_seed(settings.seed)
        architecture.training_steps = settings.epochs * steps_per_epoch(len(parts["train"]), settings.batch_size)
        fixed = kt.HyperParameters()
        if settings.augment >= 0:  # a fixed augmentation strength instead of searching it
            fixed.Fixed("augment", settings.augment)
        return cls(architecture, settings, parts, digest, fixed)

    @property
    def name(self) -> str:
        return self.architecture.name

    @property
    def run_dir(self) -> Path:
        return study_dir(self.name, self.settings, self.digest)

    @property
    def search_dir(self) -> Path:
        """keras-tuner's folder of this search (``directory/project_name``): oracle, trials, worker locks."""
        return self.run_dir / "tuner" / "search"

    @property
    def tags(self) -> dict:
        return {"architecture": self.name, "dataset_digest": self.digest}

    def data(self, split: str, augment=None, shuffle: bool = False):
        """A split as a batched ``tf.data.Dataset`` of (pixels, label), fake = 1."""
        from deepfake_detection.data.pipeline import make_dataset

        s = self.settings
        return make_dataset(
            s.data,
            split,
            s.image_size,
            s.batch_size,
            augment=augment,
            shuffle=shuffle,
            seed=s.seed,
            cache_budget_mb=s.cache_budget_mb,
            manifest=self.parts[split],
        )

    @functools.cached_property
    def valid(self):
        return self.data("valid")

    @functools.cached_property
    def test(self):
        return self.data("test")

    def train_data(self, strength: float):
        """The training split, shuffled and augmented with ``strength``."""
        from deepfake_detection.data.pipeline import Augment

        return self.data("train", Augment(strength=strength), shuffle=True)

    def tuner(self, strategy=None, parent_run_id: str | None = None, tags: dict | None = None) -> kt.Tuner:
        """The keras-tuner search, resumed from ``run_dir`` when it exists."""
        from deepfake_detection import tuning

        s = self.settings
        return tuning.make_tuner(
            s.tuner,
            tuning.AugmentedHyperModel(self.architecture, self.train_data),
            directory=self.search_dir.parent,
            project_name=self.search_dir.name,
            max_trials=s.max_trials,
            epochs=s.epochs,
            executions_per_trial=s.executions_per_trial,
            seed=s.seed,
            tags={**self.tags, **(tags or {})},
            fixed=self.fixed,
            parent_run_id=parent_run_id,
            distribution_strategy=strategy,
        )


def distribution_strategy(kind: str):
    """``None`` (one device) or a ``tf.distribute.MirroredStrategy`` over this machine's GPUs
    (its logical CPU devices when it has no GPU and more than one CPU device is configured).

    Data-parallel: each batch of ``batch_size`` is split over the devices and the gradients are
    all-reduced. Several machines are not supported: see the README (MultiWorkerMirroredStrategy).
    """
    import tensorflow as tf

    if kind in ("none", "multi-host"):  # multi-host: Keras' own distribution on JAX (multihost.py)
        return None
    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def steps_per_epoch(images: int, batch_size: int) -> int:
    return max(1, -(-images // batch_size))


def plan_epochs(architectures: list[Architecture], train_images: int, budget_minutes: float, max_epochs: int) -> dict:
    """Final-fit epochs per architecture: ``max_epochs`` each without a budget. With one, every
    architecture gets one epoch, then one more epoch at a time goes to the architecture with the
    fewest so far (the cheapest first on a tie) that still fits in what is left of the budget and
    is below ``max_epochs``, until none fits. So all get the same number of epochs as far as the
    budget allows, and what the slowest cannot use goes to the faster ones. Costs are each
    architecture's measured seconds per epoch (:meth:`Architecture.epoch_seconds`). A pure
    function of its arguments: the same settings give the same plan, and models, on any machine."""
    if budget_minutes <= 0:
        return {a.name: max_epochs for a in architectures}
    cost = {a.name: a.epoch_seconds(train_images) for a in architectures}
    plan = dict.fromkeys(cost, 1)
    left = budget_minutes * 60.0 - sum(cost.values())
    while fits := [n for n in cost if plan[n] < max_epochs and cost[n] <= left]:
        name = min(fits, key=lambda n: (plan[n], cost[n], n))
        plan[name] += 1
        left -= cost[name]
    return {a.name: plan[a.name] for a in architectures}


@dataclass
class Fit:
    model: keras.Model
    history: dict[str, list[float]]
    seconds: float
    epochs_run: int
    images_per_second: float
    weights_sha256: str = ""  # multi-host: the same in every process (checked)


@dataclass
class Scores:
    """Calibrated p_fake on valid and test (the network's own output as ``raw_*``), the temperature
    and threshold chosen on valid, and the metrics at that threshold (fake = 1). ``test`` holds
    each interval metric's 95 % bootstrap interval as ``<metric>_ci_low`` / ``<metric>_ci_high``."""

    y_valid: np.ndarray
    p_valid: np.ndarray
    raw_valid: np.ndarray
    y_test: np.ndarray
    p_test: np.ndarray
    raw_test: np.ndarray
    temperature: float
    threshold: float
    valid: dict
    test: dict

    @property
    def degenerate(self) -> bool:
        from deepfake_detection.evaluation import is_degenerate

        return is_degenerate(self.valid)


def train_architecture(
    name: str, settings: TrainSettings, parts: dict, digest: str, dataset, epochs: int | None = None, cluster=None
) -> ArchitectureResult:
    """Train, evaluate, log and register one architecture inside the active (child) run;
    ``dataset`` (the MLflow dataset of ``parts``, :func:`tracking.dataset_of`) gets its metrics.

    As the chief of a distributed search (``KERASTUNER_TUNER_ID=chief``) the search step
    serves the oracle to the workers, who run the trials, and returns when they are done.
    As process 0 of a multi-host ``cluster`` (:mod:`deepfake_detection.multihost`) it searches
    alone, then has every process join the final fit.
    """
    import mlflow

    search = Search.create(name, settings, parts, digest)
    strategy = distribution_strategy(settings.distribute)
    best = search_hyperparameters(search, strategy)
    epochs = epochs or settings.epochs
    mlflow.log_params({"keras_backend": keras.backend.backend()})
    if cluster is not None:
        cluster.send("fit", architecture=name, hyperparameters=best.get_config(), epochs=epochs)
    fit = final_fit(search, best, strategy, epochs, cluster)
    if cluster is not None:
        mlflow.set_tags({"weights_sha256": fit.weights_sha256, "processes_with_these_weights": settings.num_processes})
    scores = evaluate(fit.model, search)
    if scores.degenerate:
        log.warning("%s is no better than chance on valid: registered, never champion (tag degenerate=true)", name)
    mlflow.set_tag("degenerate", str(scores.degenerate).lower())
    model_info = _log_model(search, fit.model, scores)
    _log_metrics(search, fit, scores, model_info.model_id, dataset)
    _log_plots(name, fit, scores)
    _log_predictions(search.parts["test"], scores)
    model_uri = model_info.model_uri
    run_id = mlflow.active_run().info.run_id
    version, role = registry.register(
        model_uri,
        name,
        dataset_digest=digest,
        run_id=run_id,
        valid=scores.valid,
        test=scores.test,
        degenerate=scores.degenerate,
        image_size=settings.image_size,
    )
    mlflow.set_tags({"registered_model": registry.registered_name(name), "model_version": version, "role": role})
    return ArchitectureResult(
        name,
        run_id,
        model_uri,
        version,
        role,
        scores.threshold,
        scores.valid,
        scores.test,
        fit.images_per_second,
        dict(best.values),
    )


def search_hyperparameters(search: Search, strategy) -> kt.HyperParameters:
    """The best hyperparameters of the (resumed) search; the fixed ones alone with ``--tuner none``
    (the final build then registers every other hyperparameter with its default)."""
    import mlflow

    from deepfake_detection import tuning

    if search.settings.tuner == "none":
        return search.fixed
    resumed = (search.search_dir / "oracle.json").exists()
    study = search.run_dir.name
    print(f"{search.name}: {'resuming' if resumed else 'new'} study {study} in {search.run_dir.parent}")
    mlflow.set_tags({"study": study, "study_resumed": str(resumed).lower()})
    return tuning.search(search.tuner(strategy), search.valid, search.settings.epochs)


def final_fit(search: Search, best: kt.HyperParameters, strategy, epochs: int, cluster=None) -> Fit:
    """Fit ``best`` from scratch for ``epochs`` (the learning-rate schedule spans them) with early
    stopping on val_auc; a killed fit resumes. In a multi-host ``cluster`` every process fits its
    shard of the data data-parallel (no resuming: a stopped cluster fits again from scratch), only
    process 0 logs, and the model returned is process 0's local copy of the common weights."""
    import mlflow

    settings = search.settings
    keras.utils.set_random_seed(settings.seed)
    fed = search if cluster is None else cluster.shard(search)  # what this process reads
    search.architecture.training_steps = epochs * steps_per_epoch(len(fed.parts["train"]), fed.settings.batch_size)
    logs = cluster is None or cluster.chief
    if cluster is not None:
        scope = cluster.distribution().scope()
    else:
        scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope, _stopped_processes(cluster, search.name):
        model = search.architecture.build(best)
        # after the build, which registers every hyperparameter the search left at its default
        callbacks = [
            keras.callbacks.EarlyStopping("val_auc", mode="max", patience=settings.patience, restore_best_weights=True)
        ]
        if logs:
            if strategy is not None:
                mlflow.log_params({"devices": ",".join(strategy.extended.worker_devices)})
            mlflow.log_params(tracking.hyperparameter_params(best.values, "best.") | {"fit_epochs": epochs})
            callbacks.append(tracking.epoch_metrics_callback())
        if cluster is None:  # saving makes variables, which under a multi-host distribution takes every process
            folder = search.run_dir / f"fit-{epochs}-epochs"  # a fit planned for other epochs is another fit
            folder.mkdir(parents=True, exist_ok=True)
            callbacks += [
                keras.callbacks.ModelCheckpoint(
                    str(folder / "checkpoint.keras"), monitor="val_auc", mode="max", save_best_only=True
                ),
                # A killed fit restarts from its last finished epoch when `train` is run again.
                _ResumableFit(str(folder / "backup"), double_checkpoint=True),
            ]
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
    images = len(fed.parts["train"]) * (cluster.num_processes if cluster is not None else 1)
    digest = ""
    if cluster is not None:
        from deepfake_detection import multihost

        digest = cluster.agree_on_weights(model, search.name)
        model = multihost.local_copy(model, lambda: search.architecture.build(best))
    return Fit(model, history.history, seconds, epochs_run, images * epochs_run / seconds, digest)


@contextlib.contextmanager
def _stopped_processes(cluster, name: str):
    """In a multi-host fit, an error (most often another process gone: its connection closes)
    becomes one that says so."""
    if cluster is None:
        yield
        return
    try:
        yield
    except Exception as error:
        from deepfake_detection.errors import DistributedError

        raise DistributedError(
            f"{cluster.name}: the data-parallel {name} fit stopped: {type(error).__name__}: {str(error)[:500]} "
            "(when another process stopped, its output says why); nothing is registered"
        ) from error


def evaluate(model: keras.Model, search: Search) -> Scores:
    """Score valid and test; calibrate (temperature scaling) and choose the threshold on valid,
    never on test; 95 % bootstrap intervals of the test metrics."""
    from deepfake_detection import evaluation

    raw_valid = model.predict(search.valid, verbose=0).reshape(-1)
    raw_test = model.predict(search.test, verbose=0).reshape(-1)
    y_valid, y_test = evaluation.fake_labels(search.parts["valid"]), evaluation.fake_labels(search.parts["test"])
    temperature = evaluation.fit_temperature(y_valid, raw_valid)
    p_valid = evaluation.apply_temperature(raw_valid, temperature)
    p_test = evaluation.apply_temperature(raw_test, temperature)
    threshold = evaluation.choose_threshold(y_valid, p_valid)
    test = evaluation.metrics_with_intervals(y_test, p_test, threshold, seed=search.settings.seed)
    return Scores(
        y_valid,
        p_valid,
        raw_valid,
        y_test,
        p_test,
        raw_test,
        temperature,
        threshold,
        valid=evaluation.binary_metrics(y_valid, p_valid, threshold),
        test=test,
    )


def _log_metrics(search: Search, fit: Fit, scores: Scores, model_id: str, dataset) -> None:
    """The run's evaluation metrics, attached to the logged model (``model_id``) and to the
    ``dataset`` they were measured on, so the model's page shows them."""
    import mlflow

    from deepfake_detection import evaluation

    metrics = {
        "threshold": scores.threshold,
        "temperature": scores.temperature,
        "valid_ece_uncalibrated": evaluation.expected_calibration_error(scores.y_valid, scores.raw_valid),
        "test_ece_uncalibrated": evaluation.expected_calibration_error(scores.y_test, scores.raw_test),
        "train_images_per_second": fit.images_per_second,
        "train_seconds": fit.seconds,
        "epochs_run": fit.epochs_run,
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
    import matplotlib.pyplot as plt
    import mlflow

    mlflow.log_figure(figure, name)
    plt.close(figure)


def _log_plots(name: str, fit: Fit, scores: Scores) -> None:
    """ROC (test and valid), precision-recall, confusion matrix, training curves and reliability
    at the run's artifact root: the only place MLflow's compare-runs page lists files from, so
    the architecture runs' ROC curves and confusion matrices show there side by side."""
    from deepfake_detection import evaluation, plots

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


def _log_predictions(rows, scores: Scores) -> None:
    """The test split's p_fake per image, with the label it was given at the threshold."""
    import mlflow

    predictions = rows[["path", "label", "source", "generator"]].assign(
        p_fake=scores.p_test,
        threshold=scores.threshold,
        predicted=np.where(scores.p_test >= scores.threshold, "fake", "real"),
    )
    mlflow.log_table(predictions, "predictions/test.json")


def _log_model(search: Search, model: keras.Model, scores: Scores):
    """Log the self-contained pyfunc detector, calibrated; returns its ``ModelInfo``."""
    from deepfake_detection.architectures import calibrated
    from deepfake_detection.model import DetectorConfig, log_detector

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


def load_training_data(settings: TrainSettings) -> tuple[TrainSettings, dict, str]:
    """The settings with a normalised data path, the split manifests and the dataset digest."""
    from deepfake_detection.data.pipeline import load_splits

    parts = load_splits(settings.data, settings.num_samples, settings.seed)
    digest = tracking.dataset_digest_of(settings.data)
    return replace(settings, data=str(Path(settings.data))), parts, digest


def log_summary(results: list[ArchitectureResult]) -> ArchitectureResult | None:
    """On the active run: which architecture is best (chosen on valid ROC-AUC, degenerate ones
    excluded) with its test ROC-AUC and interval, as a description (``mlflow.note.content``),
    metrics ``best_valid_roc_auc`` / ``best_test_roc_auc`` (+ interval) and tag
    ``best_architecture``; a table of every architecture below it. Returns the best."""
    import mlflow

    from deepfake_detection.evaluation import with_interval

    candidates = [r for r in results if not r.degenerate]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: r.valid["roc_auc"])

    rows = "\n".join(
        f"| {r.architecture} | {r.version} | {r.role} | {r.valid['roc_auc']:.3f} | {with_interval(r.test, 'roc_auc')} |"
        for r in sorted(results, key=lambda r: -r.valid["roc_auc"])
    )
    mlflow.set_tag(
        "mlflow.note.content",
        f"**Best: {best.architecture}** (chosen on valid ROC-AUC {best.valid['roc_auc']:.3f}), "
        f"test ROC-AUC {with_interval(best.test, 'roc_auc')} (95 % bootstrap interval; positive class: fake). "
        f"Registered as `models:/deepfake-{best.architecture}/{best.version}`.\n\n"
        "| architecture | version | role | valid ROC-AUC | test ROC-AUC [95 % CI] |\n|---|---|---|---|---|\n" + rows,
    )
    mlflow.set_tag("best_architecture", best.architecture)
    mlflow.log_metrics(
        {"best_valid_roc_auc": best.valid["roc_auc"]}
        | {f"best_test_{k}": best.test[k] for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high") if k in best.test}
    )
    return best


def print_input_plans(settings: TrainSettings, parts: dict) -> None:
    """How each split will be fed (cached in memory or streamed), for the budget in ``settings``."""
    from deepfake_detection.data.pipeline import plan_input

    for split, rows in parts.items():
        plan = plan_input(
            len(rows), settings.image_size, shuffle=split == "train", cache_budget_mb=settings.cache_budget_mb
        )
        print(f"input {split}: {plan.describe()} (cache budget {settings.cache_budget_mb:g} MiB)")


def run_training(
    settings: TrainSettings, run_name: str = "train", tags: dict | None = None
) -> list[ArchitectureResult]:
    """The whole ``train`` entry point: checks first, then one child run per architecture."""
    import mlflow

    from deepfake_detection.architectures import get_architecture

    names = check_settings(settings)
    cluster = None
    if settings.distribute == "multi-host" and settings.process_id != 0:  # logs nothing, anywhere
        from deepfake_detection import multihost

        settings, parts, digest = load_training_data(settings)
        multihost.follow(multihost.Cluster.join(settings, digest), settings, parts, digest)
        return []
    tracking.configure()
    access.require(
        f"train and register {', '.join(names)}",
        experiment=settings.experiment,
        experiment_level="EDIT",
        models=[registry.registered_name(n) for n in names],
        model_level="EDIT",
    )
    settings, parts, digest = load_training_data(settings)
    if settings.distribute == "multi-host":
        from deepfake_detection import multihost

        cluster = multihost.Cluster.join(settings, digest)
    common_tags = {
        "dataset_digest": digest,
        "positive_class": "fake",
        **(tags or {}),
    }
    plan = plan_epochs(
        [get_architecture(n, settings.image_size, settings.weights) for n in names],
        len(parts["train"]),
        settings.budget_minutes,
        settings.epochs,
    )
    if settings.budget_minutes > 0:
        print(f"final-fit epochs for a {settings.budget_minutes:g}-minute budget: {plan}")
    print_input_plans(settings, parts)
    results = []
    leading = cluster.leading() if cluster is not None else contextlib.nullcontext()
    with leading, tracking.run(run_name, experiment=settings.experiment, tags={**common_tags, "step": run_name}):
        mlflow.log_params({f"train.{k}": v for k, v in asdict(settings).items()})
        dataset = tracking.log_dataset_input(settings.data, parts, digest)  # built once, logged on every run
        for name in names:
            child_tags = {**common_tags, "step": "train-architecture", "architecture": name}
            with tracking.run(f"train-{name}", tags=child_tags):
                mlflow.log_params({k: v for k, v in asdict(settings).items() if k != "arch"} | {"architecture": name})
                tracking.log_input(dataset)
                results.append(train_architecture(name, settings, parts, digest, dataset, plan[name], cluster))
        log_summary(results)
        views.publish(mlflow.active_run().info.experiment_id)
    return results
