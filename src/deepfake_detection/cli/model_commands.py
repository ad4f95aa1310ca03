"""``compare``, ``promote``, ``ui``, ``evaluate``, ``predict``, ``explain`` and ``serve``: the
commands that use registered models."""

from __future__ import annotations

import click

from deepfake_detection.cli.options import COMPARE, MODEL_HELP
from deepfake_detection.config import CompareSettings


@click.command()
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
    from deepfake_detection.jobs import promote as promote_by_hand

    promote_by_hand(arch, version, role)


@click.command()
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
    help="Also score each model on the test split under the standard degradation suite (JPEG, re-scaling, "
    "blur, noise, crop).",
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
    from deepfake_detection.comparison_report import print_table

    print_table(run_compare(CompareSettings(**options)))


@click.command()
@click.option("--model", required=True, help=MODEL_HELP)
@click.option(
    "--data",
    required=True,
    help="Labelled sets, comma-separated: a prepared dataset (DATASET or DATASET:SPLIT, test by default), a "
    "folder with real/ and fake/, a Kaggle 140k or ciplab download (folder or .zip), or a CSV of path,label.",
)
@click.option(
    "--degradations",
    default="standard",
    help="A suite (standard: JPEG 90/75/50, 0.75x/0.5x down, 1.5x up, blur 0.5/1 px, noise 2/5, crop 80 %%; "
    "none: clean only) or a comma list of their names; the clean images are always scored too.",
)
@click.option("--alias", default="champion", help="Alias used when --model is an architecture name.")
@click.option("--batch-size", type=click.IntRange(1), default=64, help="Images per forward pass.")
@click.option("--seed", type=int, default=0, help="Seed of the noise degradations.")
@click.option("--experiment", default="deepfake-detection", help="MLflow experiment of the evaluation run.")
def evaluate(model: str, data: str, degradations: str, alias: str, batch_size: int, seed: int, experiment: str):
    """Score a model on labelled sets, clean and degraded: ROC-AUC, AP, EER, accuracies with 95 % intervals."""
    from deepfake_detection.evaluate import format_table, run_evaluate

    sets = [part.strip() for part in data.split(",") if part.strip()]
    evaluation, run_id = run_evaluate(model, sets, degradations, alias, batch_size, seed, experiment)
    click.echo(format_table(evaluation))
    click.echo(f"logged to run {run_id} (experiment {experiment})")


@click.command()
@click.option("--input", "input_spec", required=True, help="An image file, a folder (recursive) or a glob pattern.")
@click.option("--model", required=True, help=MODEL_HELP)
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


@click.command()
@click.option("--input", "input_spec", required=True, help="An image file, a folder (recursive) or a glob pattern.")
@click.option("--model", required=True, help=MODEL_HELP)
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


@click.command()
@click.option("--model", required=True, help=MODEL_HELP)
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


@click.command()
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
    from deepfake_detection.jobs import open_ui

    open_ui(host, port, experiment, links_only)
