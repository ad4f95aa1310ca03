"""``train``: for each architecture, search → fit → score → record and register, each in its own
child run of one parent run."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, replace

import keras
import keras_tuner as kt
import mlflow

from deepfake_detection import multihost, tracking, views
from deepfake_detection.access.client import require
from deepfake_detection.architectures import ARCHITECTURES
from deepfake_detection.config import TrainSettings
from deepfake_detection.degradations import suite
from deepfake_detection.errors import SettingsError
from deepfake_detection.registry import registered_name
from deepfake_detection.training import record
from deepfake_detection.training.budget import Budget
from deepfake_detection.training.fit import OneMachine, distribution_strategy, final_fit, search_hyperparameters
from deepfake_detection.training.plan import (
    MIN_SHARE,
    format_plan,
    parse_plan,
    plan_epochs,
    plan_share,
    planned_seconds,
    print_input_plans,
    scaled,
)
from deepfake_detection.training.scores import degrade_splits, evaluate
from deepfake_detection.training.speed import measure_degrading, measure_speed
from deepfake_detection.training.study import Search, check_settings, load_training_data, share_of
from deepfake_detection.training.summary import ArchitectureResult, log_summary


@dataclass(frozen=True)
class Job:
    """A budget for a whole job that trains (``main``), not only for its training: ``seconds`` of
    wall time from ``started`` (``time.perf_counter()``). What the job does after training (scoring
    each architecture under the suite, registering it, and scoring ``splits_after``, as ``main``'s
    compare does) is estimated from this machine's measured speeds and kept out of training's
    share."""

    seconds: float
    started: float
    splits_after: tuple[str, ...] = ()


@dataclass
class Plan:
    """Epochs per architecture and where they came from: ``measured`` (this machine's speed and
    the budget), ``pinned`` (``--plan``) or ``epochs`` (no budget: ``--epochs`` each)."""

    epochs: dict[str, int]
    source: str
    budget: Budget = field(default_factory=Budget)
    speeds: list = field(default_factory=list)  # speed.Speed per architecture, when measured
    seconds: dict[str, float] = field(default_factory=dict)  # planned training seconds
    shares: dict[str, float] = field(default_factory=dict)  # of the training set per epoch; absent = 1
    reserved: float = 0.0  # seconds of a job's budget (:class:`Job`) kept for what follows training

    def share(self, name: str) -> float:
        return self.shares.get(name, 1.0)

    def describe(self, settings: TrainSettings, train_rows) -> str:
        if self.source == "measured":
            whose = "the job's" if self.reserved else "a"
            text = (
                f"final-fit epochs for {whose} {settings.budget_minutes:g}-minute budget on this machine: {self.epochs}"
            )
        elif self.source == "pinned":
            text = f"final-fit epochs pinned by --plan: {self.epochs}"
        else:
            return f"final-fit epochs (no budget): {self.epochs}"
        for share in sorted({self.share(n) for n in self.epochs} - {1.0}):
            names = ", ".join(n for n in self.epochs if self.share(n) == share)
            text += (
                f"\n{names}: each epoch trains on {share:.0%} of the training set "
                f"({len(share_of(train_rows, share, settings.seed))} of {len(train_rows)} images)"
                + (
                    ": one whole epoch of every architecture does not fit the budget"
                    if self.source == "measured"
                    else ""
                )
            )
        return text + f"\nreproduce this plan on another machine with --plan {self.pinned()}"

    def pinned(self) -> str:
        return format_plan(self.epochs, self.shares)

    def log(self) -> None:
        mlflow.set_tag("plan_source", self.source)
        mlflow.log_params({f"plan.{n}": e for n, e in self.epochs.items()})
        if self.source != "epochs":
            mlflow.set_tag("plan", self.pinned())
        if self.reserved:  # the budget was a whole job's (main): what it kept for after training
            mlflow.log_param("plan.reserved_after_training_seconds", round(self.reserved))
        if any(self.share(n) < 1 for n in self.epochs):
            mlflow.log_params({f"plan.{n}.train_share": self.share(n) for n in self.epochs})
        if self.speeds:
            rows = [
                s.as_row()
                | {"images_per_second": round(s.images_per_second(), 1), "epochs": self.epochs[s.name]}
                | {"train_share": self.share(s.name)}
                | {"planned_seconds": round(self.seconds[s.name], 1)}
                for s in self.speeds
            ]
            mlflow.log_table({k: [r[k] for r in rows] for k in rows[0]}, "plan/speeds.json")


def measure_and_plan(
    settings: TrainSettings, names: list[str], parts: dict, digest: str, job: Job | None = None
) -> Plan:
    """The epochs of every architecture, before anything trains. With ``--plan``, those; without
    a budget, ``--epochs`` each; with one, this machine's speed is measured (a few steps of each
    architecture, charged to the budget) and :func:`plan_epochs` shares what is left; where one
    whole epoch of each does not fit, every epoch trains on the share of the training set that
    does (:func:`plan_share`). Under a budget or a plan the search's trials run the planned
    epochs too, so an architecture costs (trials x executions + 1) fits. Under a ``job``'s
    budget, training gets what the job has left once the estimate of what follows training
    (:func:`after_training_seconds`) is set aside."""
    if settings.plan:
        epochs, shares = parse_plan(settings.plan, names)
        return Plan(epochs, "pinned", shares={n: s for n, s in shares.items() if s < 1})
    if settings.budget_minutes <= 0:
        return Plan(dict.fromkeys(names, settings.epochs), "epochs")
    budget = settings.budget_minutes * 60
    fits = 1 if settings.tuner == "none" else settings.max_trials * settings.executions_per_trial + 1
    started = time.perf_counter()
    speeds = []
    for name in names:
        speeds.append(measure_speed(Search.create(name, settings, parts, digest)))
        speed = speeds[-1]
        print(
            f"measured {name}: {speed.images_per_second():.0f} training images/s, "
            f"{speed.scored_per_second():.0f} scored images/s",
            flush=True,
        )
    measured = time.perf_counter() - started
    print(f"measured this machine's training speed in {measured:.0f} s ({100 * measured / budget:.0f} % of the budget)")
    spent, reserved, spent_on, after = measured, 0.0, "", {}
    if job is not None:
        after = after_training_seconds(settings, speeds, parts, job)
        reserved = sum(after.values())
        spent = time.perf_counter() - job.started
        spent_on = f"the {spent:.0f} s the job spent and the {reserved:.0f} s it keeps for after training"
        print(
            f"the job has spent {spent:.0f} s (the dataset, measuring) and keeps an estimated {reserved:.0f} s for "
            f"what follows training (scoring under the degradation suite, registering, comparing): "
            f"{max(0.0, budget - spent - reserved):.0f} s are left to train"
        )
    left = budget - spent - reserved  # training's
    train, valid = len(parts["train"]) // settings.num_processes, len(parts["valid"])
    more = {s.name: fits * s.epoch_seconds(train, valid) for s in speeds}
    first = {s.name: more[s.name] + fits * s.startup for s in speeds}
    steps = {s.name: fits * s.train_seconds(train) for s in speeds}
    try:
        share = plan_share(first, steps, left, spent=spent + reserved, spent_on=spent_on)
    except SettingsError as refused:
        if job is None:  # a budget the user gave train: refused before anything trains
            raise
        # The default job on a machine too slow for its budget: the least training, then the rest
        # of the job, over budget and saying so, rather than no result at all.
        share = MIN_SHARE
        left = sum(scaled(first, steps, share).values()) + 1e-6
        print(
            f"this machine is too slow for the job's {budget / 60:g} minutes: {refused}. The job trains the "
            f"least it can (one epoch of each on {share:.0%} of the training set, {left:.0f} s) and runs over "
            "its budget: expect weak models",
            flush=True,
        )
    first, more = scaled(first, steps, share), scaled(more, steps, share)
    weights = {n: ARCHITECTURES[n].plan_weight for n in names if n in ARCHITECTURES}
    epochs = plan_epochs(first, more, left, settings.epochs, weights)
    seconds = planned_seconds(epochs, first, more)
    shares = dict.fromkeys(names, share) if share < 1 else {}
    clock = Budget(left + measured, seconds, spent_before=measured)
    if job is not None:
        clock.deadlines = deadlines(job, seconds, after)
    return Plan(epochs, "measured", clock, speeds, seconds, shares, reserved)


def after_training_seconds(settings: TrainSettings, speeds: list, parts: dict, job: Job) -> dict[str, float]:
    """The estimate of what a job does after each architecture's training, on this machine:
    scoring valid and test clean (twice: calibration, then with the suite) and under each
    degradation, and ``job.splits_after``, saving and registering it (``Speed.after_fit_seconds``);
    the first also degrades and decodes valid and test once (the suite's images are kept between
    architectures), timed on a sample of valid."""
    degradations = suite(settings.degradations)
    scored = len(parts["valid"]) + len(parts["test"])
    images = scored * (2 + len(degradations)) + sum(len(parts[split]) for split in job.splits_after)
    degrading = scored * len(degradations) * measure_degrading(parts["valid"], settings, degradations)
    after = {s.name: s.after_fit_seconds(images) for s in speeds}
    return after | {speeds[0].name: after[speeds[0].name] + degrading}


def deadlines(job: Job, planned: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """For each architecture (in training order), the moment (``time.perf_counter()``) its
    training must end by so that what the plan gives those after it, and the estimate of what
    follows each, still fit in the job's budget. Checked at every epoch boundary beside its share
    of the training clock, it lets what ran longer than estimated between two fits (scoring,
    registering) come out of the training after it, not out of the job's end."""
    names = list(planned)
    return {
        name: job.started + job.seconds - sum(after[n] for n in names[i:]) - sum(planned[n] for n in names[i + 1 :])
        for i, name in enumerate(names)
    }


def train_architecture(
    name: str,
    settings: TrainSettings,
    parts: dict,
    digest: str,
    dataset,
    epochs: int,
    placement=None,
    budget=None,
    share: float = 1.0,
) -> ArchitectureResult:
    """Train, evaluate, log and register one architecture inside the active (child) run;
    ``dataset`` (the MLflow dataset of ``parts``, :func:`tracking.dataset_of`) gets its metrics;
    every epoch trains on ``share`` of the training set (the plan's).

    As the chief of a distributed search (``KERASTUNER_TUNER_ID=chief``) the search step serves
    the oracle to the workers, who run the trials, and returns when they are done. The final fit
    runs where ``placement`` puts it: this machine (the default, under ``--distribute``'s strategy)
    or a multi-host cluster, whose other processes join it.
    """
    budget = budget or Budget()
    # the trials run the planned epochs too (the study is keyed on them)
    search = Search.create(name, replace(settings, epochs=epochs), parts, digest, share)
    if share < 1:
        mlflow.log_params({"train_share": share, "train_images": len(search.parts["train"])})
    strategy = distribution_strategy(settings.distribute)
    with budget.charging():
        best = search_hyperparameters(search, strategy, budget)
    mlflow.log_params({"keras_backend": keras.backend.backend()})
    with budget.charging():
        fit = final_fit(search, best, epochs, placement or OneMachine(strategy), budget)
    if fit.weights_sha256:  # compared across the processes that fitted together
        mlflow.set_tags({"weights_sha256": fit.weights_sha256, "processes_with_these_weights": fit.processes})
    scores = evaluate(fit.model, search)
    degraded = degrade_splits(fit.model, search, scores, settings.degradations)
    version, role, model_uri = record.record(search, fit, scores, dataset, degraded)
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
        search = Search.create(name, replace(settings, epochs=epochs), parts, digest)
        return final_fit(search, kt.HyperParameters.from_config(hyperparameters), epochs, cluster)

    multihost.follow(cluster, fit)


def run_training(
    settings: TrainSettings, run_name: str = "train", tags: dict | None = None, job: Job | None = None
) -> list[ArchitectureResult]:
    """The whole ``train`` entry point: check, load the data, plan the epochs, then one child run
    per architecture, and the best of them on the parent run. Under a ``job``, the budget is the
    job's (``main``), not only training's."""
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
    plan = measure_and_plan(settings, names, parts, digest, job)
    print(plan.describe(settings, parts["train"]), flush=True)
    print_input_plans(settings, parts)
    results = []
    leading = cluster.leading() if cluster is not None else contextlib.nullcontext()
    with leading, tracking.run(run_name, experiment=settings.experiment, tags={**common_tags, "step": run_name}):
        mlflow.log_params({f"train.{k}": v for k, v in asdict(settings).items()})
        plan.log()
        dataset = tracking.log_dataset_input(settings.data, parts, digest)  # built once, logged on every run
        for name in names:
            child_tags = {**common_tags, "step": "train-architecture", "architecture": name}
            with tracking.run(f"train-{name}", tags=child_tags):
                mlflow.log_params({k: v for k, v in asdict(settings).items() if k != "arch"} | {"architecture": name})
                tracking.log_input(dataset)
                results.append(
                    train_architecture(
                        name,
                        settings,
                        parts,
                        digest,
                        dataset,
                        plan.epochs[name],
                        cluster,
                        plan.budget,
                        plan.share(name),
                    )
                )
        log_summary(results)
        views.publish(mlflow.active_run().info.experiment_id)
    return results
