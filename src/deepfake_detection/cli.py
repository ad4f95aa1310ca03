"""One command-line interface; every MLproject entry point calls it. Parsing only."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import click

from deepfake_detection.access import ROLES
from deepfake_detection.config import CompareSettings, PrepareSettings, TrainSettings
from deepfake_detection.errors import DeepfakeError

PREPARE = PrepareSettings()
TRAIN = TrainSettings()
COMPARE = CompareSettings()


class _Group(click.Group):
    """Turns the errors users can act on into a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DeepfakeError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="deepfake-image-detection")
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
def main(verbose: bool) -> None:
    """Tell real photographs from GAN-generated images. Labels: fake = 1 (positive), real = 0."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _with_options(function, options: list):
    """``function`` decorated with ``options``, the first listed first in ``--help``."""
    for option in reversed(options):
        function = option(function)
    return function


def _optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def _prepare_options(function):
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
    return _with_options(function, options)


def run_prepare(settings: PrepareSettings, track: bool = True):
    """Prepare a dataset as ``settings`` say, logging it to MLflow when ``track``."""
    from deepfake_detection import tracking
    from deepfake_detection.data import bench
    from deepfake_detection.data.prepare import parse_fractions, prepare_bench, prepare_kaggle

    if settings.source == "bench":
        bench.check_settings(
            image_size=settings.image_size, num_images=settings.num_images, difficulty=settings.difficulty
        )
    if track:
        tracking.configure()
    if settings.source == "bench":
        report = prepare_bench(
            Path(settings.output),
            image_size=settings.image_size,
            num_images=settings.num_images,
            difficulty=settings.difficulty,
            seed=settings.seed,
            split=parse_fractions(settings.split),
            generator_steps=settings.generator_steps,
            overwrite=settings.overwrite,
        )
    else:
        report = prepare_kaggle(
            Path(settings.output),
            kaggle_140k=_optional_path(settings.kaggle_140k),
            ciplab=_optional_path(settings.ciplab),
            ciplab_split=parse_fractions(settings.ciplab_split),
            seed=settings.seed,
            overwrite=settings.overwrite,
            link_mode=settings.link_mode,
        )
    if track:
        with tracking.run(f"prepare-{settings.source}", tags={"step": "prepare"}):
            tracking.log_prepared_dataset(report)
    _print_report(report)
    return report


def _print_report(report) -> None:
    click.echo(f"dataset: {report.output}  (digest {report.digest}, labels: fake=1 positive, real=0)")
    for split, by_label in sorted(report.counts.items()):
        click.echo(f"  {split:<12} real {by_label.get('real', 0):>7}   fake {by_label.get('fake', 0):>7}")
    click.echo(
        f"  rejected {report.rejected} (see rejected.csv), duplicates dropped {report.duplicates_dropped} "
        f"({report.cross_split_duplicates} across splits), normalised {report.normalised}, "
        f"linked {report.linked}, {report.seconds:.1f} s"
    )
    for name, value in report.checks.items():
        click.echo(f"  shortcut check {name}: {value:.3f}")


@main.command()
@_prepare_options
def prepare(track: bool, **options) -> None:
    """Build a dataset folder {train,valid,test}/{real,fake} with manifest.csv and rejected.csv."""
    run_prepare(PrepareSettings(**options), track=track)


ARCHITECTURES = "vggface16, densenet121, custom_a, custom_c, npr, spectrum"


def _train_options(
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
            help="Minutes of final fits on the reference machine (2 vCPU), split across the architectures "
            "by their measured speed into epochs (at most --epochs each); 0 = --epochs each.",
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
            help="Augmentation strength (JPEG re-compression, blur, rescale; 0 = flips only); "
            "-1 = searched by the tuner in 0..1.",
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
    return _with_options(function, options)


def _print_results(results) -> None:
    from deepfake_detection.evaluation import with_interval

    click.echo("fake = positive class; test metrics with their 95 % bootstrap interval; champion chosen on valid")
    click.echo(
        f"{'architecture':<13} {'version':>7}  {'role':<10} {'valid AUC':>9}  {'test ROC-AUC [95 % CI]':<22}  "
        f"{'test accuracy [95 % CI]':<23}  {'ECE':>5}  {'img/s':>7}"
    )
    for r in results:
        click.echo(
            f"{r.architecture:<13} {r.version:>7}  {r.role:<10} {r.valid['roc_auc']:>9.3f}  "
            f"{with_interval(r.test, 'roc_auc'):<22}  {with_interval(r.test, 'accuracy'):<23}  "
            f"{r.test['ece']:>5.3f}  {r.train_images_per_second:>7.1f}"
        )
        if r.degenerate:
            click.echo(f"  warning: {r.architecture} is no better than chance on valid (degenerate): never champion")


def _cluster_options(function):
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
    return _with_options(function, options)


@main.command()
@_train_options
@_cluster_options
def train(**options) -> None:
    """Tune, train, evaluate and register each architecture (deepfake-<arch> in the Model Registry)."""
    settings = TrainSettings(**options)
    if settings.distribute == "multi-host":
        from deepfake_detection import multihost

        multihost.check(settings)
        multihost.use_jax()  # before Keras is first imported
    from deepfake_detection.training import run_training

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
        _print_results(results)


def _tune_options(function):
    return _train_options(function, arch_default="custom_c", arch_help=f"One of: {ARCHITECTURES}.")


@main.command()
@click.option(
    "--role",
    type=click.Choice(["chief", "worker"]),
    required=True,
    help="chief: serves the search and trains the best model once; worker: runs trials.",
)
@click.option("--oracle", default="127.0.0.1:8000", help="HOST:PORT the chief listens on and the workers call.")
@click.option("--worker-id", default="", help="Worker: a unique name; the same name again resumes its trial.")
@click.option("--wait", type=click.FloatRange(0), default=300.0, help="Worker: seconds to wait for the chief's run.")
@_tune_options
def tune(role: str, oracle: str, worker_id: str, wait: float, **options) -> None:
    """Distributed search (keras-tuner chief/worker over gRPC): start one chief and any number of workers."""
    from deepfake_detection.distributed import run_tuning

    result = run_tuning(TrainSettings(**options), role, oracle, worker_id, wait)
    if result is not None:
        _print_results([result])
    else:
        click.echo(f"worker {worker_id}: no trials left")


@main.command()
@click.option("--arch", required=True, help="Architecture whose registered model to change, e.g. custom_a.")
@click.option("--version", required=True, help="Model version number.")
@click.option(
    "--role",
    type=click.Choice(["champion", "challenger"]),
    default="champion",
    help="champion = alias champion + stage Production; challenger = alias challenger + stage Staging.",
)
def promote(arch: str, version: str, role: str) -> None:
    """Move the champion / challenger alias and stage to a model version by hand."""
    from deepfake_detection import access, registry, tracking

    tracking.configure()
    access.require(
        f"make {registry.registered_name(arch)} version {version} {role}",
        models=[registry.registered_name(arch)],
        model_level="MANAGE" if role == "champion" else "EDIT",
    )
    registry.promote(arch, version, role, by_hand=True)
    click.echo(f"{registry.registered_name(arch)} version {version} is now {role}")


@main.command()
@click.option(
    "--models", default=COMPARE.models, help="'all', a comma list of architectures, or a comma list of models:/ URIs."
)
@click.option("--alias", default=COMPARE.alias, help="Registered-model alias to load (e.g. champion, challenger).")
@click.option("--stage", default=COMPARE.stage, help="Stage to load instead of the alias (e.g. Production).")
@click.option("--data", default=COMPARE.data, help="Prepared dataset folder.")
@click.option("--n-components", type=click.IntRange(1), default=COMPARE.n_components, help="PCA components.")
@click.option(
    "--num-samples",
    type=click.IntRange(0),
    default=COMPARE.num_samples,
    help="Cap on images per split, balanced over labels (0 = all).",
)
@click.option(
    "--fit-samples",
    type=click.IntRange(0),
    default=COMPARE.fit_samples,
    help="Cap on train and valid images (balanced) fitting PCA + SVM and its threshold; test is whole (0 = all).",
)
@click.option("--degree", type=click.IntRange(1), default=COMPARE.degree, help="Polynomial kernel degree.")
@click.option("--svm-c", type=float, default=COMPARE.svm_c, help="SVM regularisation C.")
@click.option(
    "--exact-max-samples",
    type=click.IntRange(1),
    default=COMPARE.exact_max_samples,
    help="Above this many training rows only the approximate (Nystroem) kernel runs.",
)
@click.option(
    "--approximate-too",
    type=bool,
    default=COMPARE.approximate_too,
    help="Where the exact SVM runs, also fit the approximate (Nystroem) one beside it.",
)
@click.option(
    "--skip-missing",
    type=bool,
    default=COMPARE.skip_missing,
    help="Skip models that are not registered (with a warning) instead of failing.",
)
@click.option(
    "--robustness",
    type=bool,
    default=COMPARE.robustness,
    help="Also score each model on the test split re-compressed (JPEG 95/75/50), down-scaled 0.5x and blurred.",
)
@click.option("--batch-size", type=click.IntRange(1), default=COMPARE.batch_size, help="Embedding batch size.")
@click.option("--seed", type=int, default=COMPARE.seed, help="Seed for sampling, PCA and k-means.")
@click.option("--work-dir", default=COMPARE.work_dir, help="Embedding cache and report folder.")
@click.option(
    "--experiment",
    default=COMPARE.experiment,
    help="Experiment for the compare runs (on a server with access roles, readers use deepfake-comparisons).",
)
def compare(**options) -> None:
    """Registered models → embeddings → scaler + PCA + polynomial SVM; one table and plots (fake = positive)."""
    from deepfake_detection.compare import run_compare

    _print_table(run_compare(CompareSettings(**options)))


def _print_table(table) -> None:
    import pandas as pd

    from deepfake_detection.compare import TABLE_METRICS

    shown = table[["model", "version", "classifier"]].copy()
    for metric in TABLE_METRICS:
        low, high = table[f"{metric}_ci_low"], table[f"{metric}_ci_high"]
        shown[metric] = [f"{v:.3f} [{a:.3f}, {b:.3f}]" for v, a, b in zip(table[metric], low, high)]
    shown["kmeans_ari"] = table["kmeans_ari"]
    click.echo("Test split, fake = positive class; [95 % bootstrap interval]")
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        differences = table.attrs.get("differences")
        if differences is not None and len(differences):
            significant = differences[differences["significant"]]
            click.echo(
                f"\nPaired bootstrap of test ROC-AUC: {len(significant)} of {len(differences)} pairs differ "
                "significantly (95 %); every other pair: no significant difference"
            )
            for row in significant.itertuples(index=False):
                click.echo(
                    f"  {row.verdict}: {row.a} vs {row.b} {row.roc_auc_difference:+.3f} "
                    f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
                )
        if "robustness" in table.attrs:
            from deepfake_detection.robustness import pivot as by_perturbation

            pivot = by_perturbation(table.attrs["robustness"])
            click.echo("\nTest ROC-AUC under perturbations (positive class: fake):")
            click.echo(pivot.to_string(float_format=lambda v: f"{v:.3f}"))


_MODEL_HELP = (
    "models:/<name>@<alias>, models:/<name>/<stage or version>, runs:/<run_id>/<architecture>, "
    "a local model folder, or an architecture name (its registered model at --alias)."
)


@main.command()
@click.option("--input", "input_spec", required=True, help="An image file, a folder (recursive) or a glob pattern.")
@click.option("--model", required=True, help=_MODEL_HELP)
@click.option("--alias", default="champion", help="Alias used when --model is an architecture name.")
@click.option(
    "--output",
    default="outputs/predictions.csv",
    help="CSV to write (spark engine: a Parquet folder unless it ends in .csv).",
)
@click.option("--batch-size", type=click.IntRange(1), default=64, help="Images per forward pass.")
@click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default="local",
    help="local: this process; spark: Spark's binaryFile source + mlflow.pyfunc.spark_udf (pip install -e '.[spark]').",
)
@click.option(
    "--spark-master", default="", help="Spark master for --engine spark (default: SPARK_MASTER, else local[*])."
)
def predict(input_spec: str, model: str, alias: str, output: str, batch_size: int, engine: str, spark_master: str):
    """Score images: path, p_fake, label (fake/real), threshold, model_uri, error."""
    if engine == "spark":
        from deepfake_detection.spark_scoring import run_predict_spark

        s = run_predict_spark(input_spec, model, output, batch_size, alias, master=spark_master or None)
    else:
        from deepfake_detection.inference import run_predict

        s = run_predict(input_spec, model, output, batch_size=batch_size, alias=alias)
    click.echo(f"{s.images} images scored with {s.model_uri} (threshold {s.threshold:.3f}; fake = positive class)")
    click.echo(f"  fake {s.fake}   real {s.real}   unreadable {s.errors}   {s.images_per_second:.1f} images/s")
    click.echo(f"  written to {s.output}")


@main.command()
@click.option("--input", "input_spec", required=True, help="An image file, a folder (recursive) or a glob pattern.")
@click.option("--model", required=True, help=_MODEL_HELP)
@click.option("--alias", default="champion", help="Alias used when --model is an architecture name.")
@click.option("--output", default="outputs/gradcam", help="Folder for the <image>_gradcam.png overlays.")
@click.option(
    "--target",
    type=click.Choice(["predicted", "fake", "real"]),
    default="predicted",
    help="Class whose evidence the heatmap shows.",
)
@click.option("--layer", default="", help="Layer to explain (default: the last convolutional feature map).")
@click.option("--max-images", type=click.IntRange(0), default=16, help="Explain at most this many files (0 = all).")
def explain(input_spec: str, model: str, alias: str, output: str, target: str, layer: str, max_images: int) -> None:
    """Grad-CAM heatmaps: PNGs of each image beside its heatmap overlay."""
    from deepfake_detection.explain import run_explain

    results = run_explain(input_spec, model, output, target, layer, max_images, alias)
    for item in results:
        if item.error:
            click.echo(f"  {item.source}: skipped ({item.error})")
        else:
            click.echo(f"  {item.overlay}  p_fake={item.p_fake:.3f} {item.label}  (towards {item.target})")
    done = sum(1 for item in results if not item.error)
    click.echo(f"{done} overlays in {output} (layer {results[0].layer if results else '-'}; fake = positive class)")


@main.command()
@click.option("--model", required=True, help=_MODEL_HELP)
@click.option("--alias", default="champion", help="Alias used when --model is an architecture name.")
@click.option("--host", default="127.0.0.1", help="Address to bind; 0.0.0.0 exposes the server to the network.")
@click.option("--port", type=click.IntRange(1, 65535), default=5001, help="Port.")
@click.option(
    "--max-request-mb",
    type=click.FloatRange(0.001),
    default=64.0,
    help="Largest total of image bytes per request (HTTP 400 over it; 413 before reading a body over 1.5x it).",
)
@click.option(
    "--workers", type=click.IntRange(1), default=1, help="Server processes, each with its own copy of the model."
)
def serve(model: str, alias: str, host: str, port: int, max_request_mb: float, workers: int) -> None:
    """REST scoring server (same API as `mlflow models serve`): POST /invocations → p_fake, label."""
    from deepfake_detection import tracking
    from deepfake_detection.inference import model_uri
    from deepfake_detection.serving import serve as run_server

    tracking.configure()
    run_server(model_uri(model, alias), host, port, int(max_request_mb * 2**20), workers)


@main.command()
@click.option("--host", default="127.0.0.1", help="Address for the UI to bind; 0.0.0.0 exposes it to the network.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, help="Port for the UI.")
@click.option("--experiment", default="deepfake-detection", help="Experiment whose views to link.")
@click.option(
    "--links-only", type=bool, default=False, help="Print the links and exit instead of starting `mlflow ui`."
)
def ui(host: str, port: int, experiment: str, links_only: bool) -> None:
    """Print links to the leaderboard views, then start the MLflow UI on the tracking store.

    Against a tracking server (MLFLOW_TRACKING_URI=http…) the links point at that server's UI
    and nothing is started."""

    import mlflow

    from deepfake_detection import tracking, views

    uri = tracking.configure()
    remote = uri.startswith(("http://", "https://"))
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise click.ClickException(f"no experiment {experiment!r} in {uri}: run `make run` (or train) first")
    views.publish(found.experiment_id)  # also for experiments trained before the views existed
    base = uri if remote else f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    click.echo(f"MLflow UI for {uri}, experiment {experiment!r} (positive class: fake):")
    for view, link in views.links(base, found.experiment_id):
        click.echo(f"  {view.title}:\n    {link}")
    click.echo(f"  registered models:\n    {base}/#/models")
    if links_only or remote:
        return
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    click.echo(" ".join(command[2:]), err=True)
    os.execv(sys.executable, command)


MAIN = dict(num_images=2000, budget_minutes=9.0, epochs=8, max_trials=0)


@main.command(name="main")
@click.option("--data", default=PREPARE.output, help="Dataset folder; the benchmark is built there if missing.")
@click.option("--image-size", type=click.IntRange(16, 1024), default=PREPARE.image_size, help="Image side in pixels.")
@click.option("--num-images", type=click.IntRange(2), default=MAIN["num_images"], help="Bench images per class.")
@click.option("--arch", default=TRAIN.arch, help="Architectures to train ('all' or a comma list).")
@click.option(
    "--budget-minutes",
    type=click.FloatRange(0),
    default=MAIN["budget_minutes"],
    help="Minutes of final fits on the reference machine (2 vCPU), split across the architectures; 0 = --epochs each.",
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
    seed: int,
) -> None:
    """The README's main job: build the offline benchmark if missing, train every architecture, compare them."""
    from deepfake_detection import tracking
    from deepfake_detection.data.bench import check_settings as bench_check
    from deepfake_detection.training import check_settings, run_training

    bench = PrepareSettings(source="bench", output=data, image_size=image_size, num_images=num_images, seed=seed)
    train = TrainSettings(
        arch=arch,
        data=data,
        image_size=image_size,
        epochs=epochs,
        budget_minutes=budget_minutes,
        max_trials=max(1, max_trials),
        tuner="random" if max_trials else "none",
        seed=seed,
    )
    check_settings(train)  # before any run opens or any image is made
    build = not Path(data, "manifest.csv").exists()
    if build:
        bench_check(image_size=image_size, num_images=num_images, difficulty=bench.difficulty)
    tracking.configure()
    started = time.perf_counter()
    with tracking.run("main", tags={"step": "main"}):
        if build:
            run_prepare(bench)
        else:
            click.echo(f"using the existing dataset at {data}")
        results = run_training(train)
        _print_results(results)
        from deepfake_detection.compare import run_compare
        from deepfake_detection.registry import registered_name

        # The versions just trained, whether or not the election made them champion.
        trained = ",".join(f"models:/{registered_name(r.architecture)}/{r.version}" for r in results)
        # The exact SVM alone: the Nystroem one beside it is `compare`'s to show, not the main job's.
        _print_table(run_compare(CompareSettings(models=trained, data=data, seed=seed, approximate_too=False)))
        from deepfake_detection.training import log_summary

        log_summary(results)  # the same leaderboard on the outermost run, the first one the UI shows
    click.echo(f"main finished in {time.perf_counter() - started:.0f} s")
    uri = tracking.tracking_uri()
    click.echo(f"runs are in {uri}; look at them with: make ui (or: deepfake-detection ui), which prints")
    click.echo("the link to the leaderboard: the architecture runs sorted by test ROC-AUC")


@main.group()
def access() -> None:
    """Who may do what on a shared server started with `mlflow server --app-name deepfake-auth`.

    Roles: reader (load models, predict, compare into experiment deepfake-comparisons), trainer
    (train / tune, register versions: challenger), release-manager (move champion / Production).
    `init` and `grant` need the admin's login (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD).
    """


@access.command("init")
@click.option("--arch", default="all", help="Architectures whose registered models to create (comma list or all).")
def access_init(arch: str) -> None:
    """Create the experiments, the registered models and the three roles (admin; run again: changes what differs)."""
    from deepfake_detection import access as roles
    from deepfake_detection.architectures import ARCHITECTURES, parse_architectures

    names = list(ARCHITECTURES) if arch.strip() == "all" else parse_architectures(arch)
    for role, permissions in roles.init(names).items():
        click.echo(f"{role}: " + "; ".join(permissions))


@access.command("grant")
@click.argument("username")
@click.option("--role", type=click.Choice(list(ROLES)), required=True, help="The role to give.")
@click.option(
    "--password",
    envvar="DEEPFAKE_NEW_USER_PASSWORD",
    default="",
    show_default=False,
    help="Password for a user not yet on the server (asked for when needed; env DEEPFAKE_NEW_USER_PASSWORD).",
)
def access_grant(username: str, role: str, password: str) -> None:
    """Give USERNAME a role (admin), creating the user when it is not on the server yet."""
    from deepfake_detection import access as roles
    from deepfake_detection import tracking

    if not password and not roles.user_exists(tracking.tracking_uri(), username):
        password = click.prompt(f"password for the new user {username}", hide_input=True, confirmation_prompt=True)
    created = roles.grant(username, role, password)
    click.echo(f"{'created user' if created else 'user'} {username}: role {roles.role_name(role)}")


@access.command("show")
@click.option("--arch", default="all", help="Architectures whose registered models to show (comma list or all).")
def access_show(arch: str) -> None:
    """What the logged-in user may do on the tracking server (MLflow's own resolution)."""
    from deepfake_detection import access as roles
    from deepfake_detection.architectures import ARCHITECTURES, parse_architectures

    names = list(ARCHITECTURES) if arch.strip() == "all" else parse_architectures(arch)
    for line in roles.describe(names):
        click.echo(line)


__all__ = ["main", "run_prepare"]
