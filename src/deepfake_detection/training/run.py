"""``train``: for each architecture, search → fit → score → record and register, each in its own
child run of one parent run."""

from __future__ import annotations

import contextlib
from dataclasses import asdict

import keras
import keras_tuner as kt
import mlflow

from deepfake_detection import multihost, tracking, views
from deepfake_detection.access.client import require
from deepfake_detection.architectures import get_architecture
from deepfake_detection.config import TrainSettings
from deepfake_detection.registry import registered_name
from deepfake_detection.training import record
from deepfake_detection.training.fit import OneMachine, distribution_strategy, final_fit, search_hyperparameters
from deepfake_detection.training.plan import plan_epochs, print_input_plans
from deepfake_detection.training.scores import evaluate
from deepfake_detection.training.study import Search, check_settings, load_training_data
from deepfake_detection.training.summary import ArchitectureResult, log_summary


def train_architecture(
    name: str, settings: TrainSettings, parts: dict, digest: str, dataset, epochs: int, placement=None
) -> ArchitectureResult:
    """Train, evaluate, log and register one architecture inside the active (child) run;
    ``dataset`` (the MLflow dataset of ``parts``, :func:`tracking.dataset_of`) gets its metrics.

    As the chief of a distributed search (``KERASTUNER_TUNER_ID=chief``) the search step serves
    the oracle to the workers, who run the trials, and returns when they are done. The final fit
    runs where ``placement`` puts it: this machine (the default, under ``--distribute``'s strategy)
    or a multi-host cluster, whose other processes join it.
    """
    search = Search.create(name, settings, parts, digest)
    strategy = distribution_strategy(settings.distribute)
    best = search_hyperparameters(search, strategy)
    mlflow.log_params({"keras_backend": keras.backend.backend()})
    fit = final_fit(search, best, epochs, placement or OneMachine(strategy))
    if fit.weights_sha256:  # compared across the processes that fitted together
        mlflow.set_tags({"weights_sha256": fit.weights_sha256, "processes_with_these_weights": fit.processes})
    scores = evaluate(fit.model, search)
    version, role, model_uri = record.record(search, fit, scores, dataset)
    return ArchitectureResult(
        name,
        mlflow.active_run().info.run_id,
        model_uri,
        version,
        role,
        scores.threshold,
        scores.valid,
        scores.test,
        fit.images_per_second,
        dict(best.values),
    )


def follow_process_0(settings: TrainSettings) -> None:
    """A multi-host process other than 0: fit the shard of each final fit process 0 starts; log nothing."""
    settings, parts, digest = load_training_data(settings)
    cluster = multihost.Cluster.join(settings, digest)

    def fit(name: str, hyperparameters: dict, epochs: int):
        search = Search.create(name, settings, parts, digest)
        return final_fit(search, kt.HyperParameters.from_config(hyperparameters), epochs, cluster)

    multihost.follow(cluster, fit)


def run_training(
    settings: TrainSettings, run_name: str = "train", tags: dict | None = None
) -> list[ArchitectureResult]:
    """The whole ``train`` entry point: check, load the data, plan the epochs, then one child run
    per architecture, and the best of them on the parent run."""
    names = check_settings(settings)
    if settings.distribute == "multi-host" and settings.process_id != 0:  # logs nothing, anywhere
        follow_process_0(settings)
        return []
    tracking.configure()
    require(
        f"train and register {', '.join(names)}",
        experiment=settings.experiment,
        experiment_level="EDIT",
        models=[registered_name(n) for n in names],
        model_level="EDIT",
    )
    settings, parts, digest = load_training_data(settings)
    cluster = multihost.Cluster.join(settings, digest) if settings.distribute == "multi-host" else None
    common_tags = {"dataset_digest": digest, "positive_class": "fake", **(tags or {})}
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
