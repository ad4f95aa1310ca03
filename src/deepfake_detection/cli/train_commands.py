"""``prepare``, ``train``, ``tune`` and ``main``: the commands that make datasets and models."""

from __future__ import annotations

import os
import sys

import click

from deepfake_detection.cli.options import (
    PREPARE,
    cluster_options,
    prepare_options,
    train_options,
    tune_options,
)
from deepfake_detection.config import PrepareSettings, TrainSettings
from deepfake_detection.errors import DeepfakeError


@click.command()
@prepare_options
def prepare(track: bool, **options) -> None:
    """Build a dataset folder {train,valid,test}/{real,fake} with manifest.csv and rejected.csv."""
    from deepfake_detection.jobs import run_prepare

    run_prepare(PrepareSettings(**options), track=track)


@click.command()
@train_options
@cluster_options
def train(**options) -> None:
    """Tune, train, evaluate and register each architecture (deepfake-<arch> in the Model Registry)."""
    settings = TrainSettings(**options)
    if settings.distribute == "multi-host":
        from deepfake_detection import multihost

        multihost.check(settings)
        multihost.use_jax()  # before Keras is first imported
    from deepfake_detection.training import run_training
    from deepfake_detection.training.summary import print_results

    try:
        results = run_training(settings)
    except DeepfakeError as error:
        if settings.distribute != "multi-host":
            raise
        # JAX's exit-time shutdown waits for every process and aborts when one is gone: the
        # error is reported and the runs are closed, so leave without it.
        click.echo(f"Error: {error}", err=True)
        sys.stdout.flush()
        os._exit(1)
    if results:
        print_results(results)


@click.command()
@click.option(
    "--role",
    type=click.Choice(["chief", "worker"]),
    required=True,
    help="chief: serves the search and trains the best model once; worker: runs trials.",
)
@click.option("--oracle", default="127.0.0.1:8000", help="HOST:PORT the chief listens on and the workers call.")
@click.option("--worker-id", default="", help="Worker: a unique name; the same name again resumes its trial.")
@click.option("--wait", type=click.FloatRange(0), default=300.0, help="Worker: seconds to wait for the chief's run.")
@tune_options
def tune(role: str, oracle: str, worker_id: str, wait: float, **options) -> None:
    """Distributed search (keras-tuner chief/worker over gRPC): start one chief and any number of workers."""
    from deepfake_detection.distributed import run_tuning
    from deepfake_detection.training.summary import print_results

    result = run_tuning(TrainSettings(**options), role, oracle, worker_id, wait)
    if result is not None:
        print_results([result])
    else:
        click.echo(f"worker {worker_id}: no trials left")


# The default run trains the four architectures that learn within a CPU budget; vggface16 and
# densenet121 from scratch cost one epoch of 1.5 to 9 minutes on a 2-core machine (docs/training.md).
# Its budget is the whole job's (the dataset, measuring, training, scoring, registering, comparing):
# 12 minutes keeps `make run` within 15 with the virtual environment's install.
# npr, the champion so far, trains first: what the fits before a later one overrun comes out of
# the later one's time (its deadline), so out of the baselines', not out of the champion's.
MAIN = dict(num_images=2000, budget_minutes=12.0, epochs=16, max_trials=0, arch="npr,custom_c,custom_a,spectrum")


@click.command(name="main")
@click.option("--data", default=PREPARE.output, help="Dataset folder; the benchmark is built there if missing.")
@click.option("--image-size", type=click.IntRange(16, 1024), default=PREPARE.image_size, help="Image side in pixels.")
@click.option("--num-images", type=click.IntRange(2), default=MAIN["num_images"], help="Bench images per class.")
@click.option("--arch", default=MAIN["arch"], help="Architectures to train ('all' or a comma list).")
@click.option(
    "--budget-minutes",
    type=click.FloatRange(0),
    default=MAIN["budget_minutes"],
    help="Minutes of the whole job on this machine (the dataset, training, scoring, registering, comparing); "
    "training gets what is left once the rest is estimated from measured speeds; 0 = --epochs each.",
)
@click.option(
    "--plan",
    default="",
    help="Pinned epochs per architecture ('npr=4,spectrum=4', 'npr=1@0.5' for half the training set per epoch); "
    "the budget is then unused.",
)
@click.option(
    "--epochs", type=click.IntRange(1), default=MAIN["epochs"], help="Most epochs of any final fit (and per trial)."
)
@click.option(
    "--max-trials",
    type=click.IntRange(0),
    default=MAIN["max_trials"],
    help="Random-search trials per architecture before its fit; 0 = the default hyperparameters.",
)
@click.option("--seed", type=int, default=PREPARE.seed, help="Seed for every step.")
def main_job(
    data: str,
    image_size: int,
    num_images: int,
    arch: str,
    budget_minutes: float,
    epochs: int,
    max_trials: int,
    plan: str,
    seed: int,
) -> None:
    """The README's main job: build the offline benchmark if missing, train every architecture, compare them."""
    from deepfake_detection.jobs import run_main

    bench = PrepareSettings(source="bench", output=data, image_size=image_size, num_images=num_images, seed=seed)
    train = TrainSettings(
        arch=arch,
        data=data,
        image_size=image_size,
        epochs=epochs,
        budget_minutes=budget_minutes,
        plan=plan,
        max_trials=max(1, max_trials),
        tuner="random" if max_trials else "none",
        seed=seed,
    )
    run_main(bench, train)
