"""Option lists shared by several commands, with their defaults from :mod:`deepfake_detection.config`."""

from __future__ import annotations

import click

from deepfake_detection.config import CompareSettings, PrepareSettings, TrainSettings

PREPARE = PrepareSettings()
TRAIN = TrainSettings()
COMPARE = CompareSettings()
ARCHITECTURES = "vggface16, densenet121, custom_a, custom_c, npr, spectrum"
MODEL_HELP = (
    "models:/<name>@<alias>, models:/<name>/<stage or version>, runs:/<run_id>/<architecture>, "
    "a local model folder, or an architecture name (its registered model at --alias)."
)


def with_options(function, options: list):
    """``function`` decorated with ``options``, the first listed first in ``--help``."""
    for option in reversed(options):
        function = option(function)
    return function


def prepare_options(function):
    options = [
        click.option(
            "--source",
            type=click.Choice(["bench", "kaggle"]),
            default=PREPARE.source,
            help="bench: build the offline benchmark; kaggle: combine the Kaggle downloads.",
        ),
        click.option("--output", default=PREPARE.output, help="Dataset folder to create."),
        click.option(
            "--kaggle-140k",
            default=PREPARE.kaggle_140k,
            help="Folder or .zip of the '140k real and fake faces' download.",
        ),
        click.option(
            "--ciplab",
            default=PREPARE.ciplab,
            help="Folder or .zip of the 'real and fake face detection' (ciplab) download.",
        ),
        click.option(
            "--image-size",
            type=click.IntRange(16, 1024),
            default=PREPARE.image_size,
            help="Bench: side of the square images in pixels.",
        ),
        click.option(
            "--num-images", type=click.IntRange(2), default=PREPARE.num_images, help="Bench: images per class."
        ),
        click.option(
            "--difficulty",
            type=click.FloatRange(0, 1),
            default=PREPARE.difficulty,
            help="Bench: strength of the post-processing shared by both classes (0 = clean).",
        ),
        click.option("--seed", type=int, default=PREPARE.seed, help="Seed for splits and the bench builder."),
        click.option("--split", default=PREPARE.split, help="Bench: train,valid,test fractions."),
        click.option("--ciplab-split", default=PREPARE.ciplab_split, help="Ciplab: train,valid,test fractions."),
        click.option(
            "--generator-steps",
            type=click.IntRange(1),
            default=PREPARE.generator_steps,
            help="Bench: training steps of each generator network.",
        ),
        click.option(
            "--link-mode",
            type=click.Choice(["auto", "hardlink", "symlink", "copy"]),
            default=PREPARE.link_mode,
            help="Kaggle folders: how images enter the dataset.",
        ),
        click.option("--overwrite", type=bool, default=PREPARE.overwrite, help="Replace an existing dataset folder."),
        click.option("--track", type=bool, default=True, help="Log the prepare as an MLflow run."),
    ]
    return with_options(function, options)


def train_options(
    function, arch_default: str = TRAIN.arch, arch_help: str = f"'all' or a comma list of: {ARCHITECTURES}."
):
    options = [
        click.option("--arch", default=arch_default, help=arch_help),
        click.option("--data", default=TRAIN.data, help="Prepared dataset folder (with manifest.csv)."),
        click.option(
            "--image-size", type=click.IntRange(16, 1024), default=TRAIN.image_size, help="Input side in pixels."
        ),
        click.option(
            "--epochs",
            type=click.IntRange(1),
            default=TRAIN.epochs,
            help="Epochs per tuner trial and for the final fit.",
        ),
        click.option(
            "--budget-minutes",
            type=click.FloatRange(0),
            default=TRAIN.budget_minutes,
            help="Minutes of training (search and final fits) on this machine: its speed is measured first, "
            "then split across the architectures into epochs (at most --epochs each); a fit that runs behind "
            "stops at an epoch boundary. 0 = --epochs each.",
        ),
        click.option(
            "--plan",
            default=TRAIN.plan,
            help="Epochs per architecture, e.g. 'npr=4,spectrum=4' (every architecture trained; 'npr=1@0.5' "
            "trains each epoch on half the training set): reproduces a published run's plan on any machine; "
            "the budget is then not used.",
        ),
        click.option(
            "--max-trials",
            type=click.IntRange(1),
            default=TRAIN.max_trials,
            help="Tuner trials per architecture (random, bayesian).",
        ),
        click.option(
            "--tuner",
            type=click.Choice(["hyperband", "bayesian", "random", "none"]),
            default=TRAIN.tuner,
            help="keras-tuner search; 'none' trains the default hyperparameters.",
        ),
        click.option(
            "--executions-per-trial",
            type=click.IntRange(1),
            default=TRAIN.executions_per_trial,
            help="Fits per trial (averaged).",
        ),
        click.option(
            "--weights",
            default=TRAIN.weights,
            help="none | vggface (vggface16) | imagenet (densenet121, online) | path to a weights file.",
        ),
        click.option("--batch-size", type=click.IntRange(1), default=TRAIN.batch_size, help="Batch size."),
        click.option(
            "--num-samples",
            type=click.IntRange(0),
            default=TRAIN.num_samples,
            help="Cap on images per split, balanced over labels (0 = all).",
        ),
        click.option(
            "--cache-budget-mb",
            type=click.FloatRange(0),
            default=TRAIN.cache_budget_mb,
            help="Memory for one split's decoded images; a larger split is streamed from its files every epoch.",
        ),
        click.option("--seed", type=int, default=TRAIN.seed, help="Seed for data order, augmentation and weights."),
        click.option(
            "--patience",
            type=click.IntRange(1),
            default=TRAIN.patience,
            help="Early-stopping patience (epochs without a better val_auc).",
        ),
        click.option(
            "--augment",
            type=click.FloatRange(-1, 1),
            default=TRAIN.augment,
            help="Augmentation strength (the share of images degraded; 0 = flips only); "
            "-1 = searched by the tuner in 0..1.",
        ),
        click.option(
            "--augment-recipe",
            type=click.Choice(["upload", "paired", "chain"]),
            default=TRAIN.augment_recipe,
            help="upload: one JPEG, down-scale or blur per degraded image, as uploads get; paired: the same "
            "draw for a real and a fake image; chain: the earlier blur, rescale and JPEG steps in a row.",
        ),
        click.option(
            "--degradations",
            default=TRAIN.degradations,
            help="Also score valid and test under this degradation suite (standard: JPEG, re-scaling, blur, "
            "noise, crop), the election weighing valid's worst case; none = clean only.",
        ),
        click.option(
            "--distribute",
            type=click.Choice(["none", "mirrored", "multi-host"]),
            default=TRAIN.distribute,
            help="mirrored: data-parallel over this machine's GPUs (tf.distribute.MirroredStrategy); "
            "multi-host (train only): the final fits data-parallel over --num-processes processes on the "
            "JAX backend, one per machine or GPU (pip install -e '.[jax]').",
        ),
        click.option("--work-dir", default=TRAIN.work_dir, help="Tuner state and checkpoints (a rerun resumes)."),
    ]
    return with_options(function, options)


def cluster_options(function):
    options = [
        click.option(
            "--coordinator",
            default=TRAIN.coordinator,
            envvar="KERAS_DISTRIBUTION_JOB_ADDRESSES",
            help="multi-host: HOST:PORT of process 0, the same for every process (process 0 listens on PORT).",
        ),
        click.option(
            "--num-processes",
            type=int,
            default=TRAIN.num_processes,
            envvar="KERAS_DISTRIBUTION_NUM_PROCESSES",
            help="multi-host: processes in all.",
        ),
        click.option(
            "--process-id",
            type=int,
            default=TRAIN.process_id,
            envvar="KERAS_DISTRIBUTION_PROCESS_ID",
            help="multi-host: this process, 0 .. N-1; process 0 hosts the coordinator, logs and registers.",
        ),
        click.option(
            "--distribute-timeout",
            type=float,
            default=TRAIN.distribute_timeout,
            help="multi-host: seconds to wait for the coordinator and for the other processes.",
        ),
    ]
    return with_options(function, options)


def tune_options(function):
    return train_options(function, arch_default="custom_c", arch_help=f"One of: {ARCHITECTURES}.")
