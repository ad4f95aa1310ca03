"""The Kaggle setup at full size on this machine: replica → prepare → input → train steps → compare → predict.

    python benchmarks/full_size.py --workdir DIR [--image-size 224] [--train-steps 10] [--arch all]
                                   [--fit-samples 4000] [--compare-models custom_a,spectrum] [--markdown PATH]

Every step runs in its own process; the driver reports its wall time, images/second, peak
resident memory (that process's ``ru_maxrss``, from ``os.wait4``; the driver imports no TensorFlow,
since on Linux a child's ``ru_maxrss`` starts from its parent's at fork) and the disk it added.

1. ``benchmarks/kaggle_replica.py --zip`` into ``DIR/replica`` (skipped when it is there).
2. ``prepare --source kaggle`` from the two zips, then from the two folders (hard links).
3. One epoch of the training input pipeline alone at ``--image-size`` (streamed, shuffled, as
   ``train`` feeds it), without augmentation; then ``--augmented-images`` of it with the default
   augmentation.
4. Per architecture, ``--train-steps`` timed training steps (after 3 untimed ones: tracing) on
   the streamed train split at ``--image-size``, default hyperparameters and recipe; the
   projection of one epoch of the 140k set's 100,000 training images (validation not included).
5. ``train`` of ``--compare-models`` for 1 epoch on ``--train-images`` images per split (so that
   registered models at ``--image-size`` exist), then ``compare`` on the whole combined test
   split with PCA + SVM fit on ``--fit-samples`` train and valid images.
6. ``predict`` over the replica's 20,000-image 140k test folder with the first compare model,
   and over its 100,000-image train folder with the last one.

``--steps`` runs some of these only (``replica,prepare,input,train-steps,train,compare,predict,
predict-train``), on what an earlier run left in ``DIR``.

Tracking goes to ``DIR/mlflow.db`` with artifacts under ``DIR/mlruns``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import died, user_path

HERE = Path(__file__).resolve().parent
ARCHITECTURES = "vggface16,densenet121,custom_a,custom_c,npr,spectrum"
STEPS = ("replica", "prepare", "input", "train-steps", "train", "compare", "predict", "predict-train")
EPOCH_IMAGES = 100_000  # the 140k set's training split
ROWS: list[dict] = []


def measured(name: str, command: list[str], workdir: Path, images: int = 0) -> str:
    """Run ``command``; record wall time, peak RSS and disk added; return its output."""
    print(f"\n$ {' '.join(command)}", flush=True)
    used = shutil.disk_usage(workdir).used
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    lines = [line.rsplit("\r", 1)[-1] for line in output.splitlines()]
    print("\n".join(line for line in lines if line.strip())[-3000:], flush=True)
    if os.waitstatus_to_exitcode(status) != 0:
        raise died(name, os.waitstatus_to_exitcode(status), output)
    found = re.search(r"^images (\d+)$", output, re.MULTILINE) or re.search(
        r"^(\d+) images scored", output, re.MULTILINE
    )
    timed = re.search(r"^timed (\d+) images in ([\d.]+) s$", output, re.MULTILINE)
    images = int(found.group(1)) if found else int(timed.group(1)) if timed else images
    scored = re.search(r"([\d.]+) images/s$", output, re.MULTILINE)  # predict's own rate, without start-up
    rate = (
        int(timed.group(1)) / float(timed.group(2)) if timed else float(scored.group(1)) if scored else images / seconds
    )
    ROWS.append(
        {
            "step": name,
            "seconds": seconds,
            "images": images,
            "rate": rate,
            "rss_gib": usage.ru_maxrss / 2**20,
            "disk_gib": (shutil.disk_usage(workdir).used - used) / 2**30,
        }
    )
    return output


def input_epoch(data: str, image_size: int, strength: float, limit: int) -> None:
    """One pass of the shuffled train split through the input pipeline alone."""
    from deepfake_detection.data.pipeline import Augment, load_splits, make_dataset

    rows = load_splits(data, splits=("train",))["train"]
    rows = rows.sample(n=limit, random_state=0) if limit else rows
    augment = Augment(strength=strength) if strength > 0 else None
    dataset = make_dataset(data, "train", image_size, 32, shuffle=True, augment=augment, manifest=rows)
    print("plan", dataset.input_plan.describe(), flush=True)
    started, seen = time.perf_counter(), 0
    for images, _ in dataset:
        seen += int(images.shape[0])
    print(f"timed {seen} images in {time.perf_counter() - started:.2f} s")
    print(f"images {seen}")


def train_steps(data: str, arch: str, image_size: int, steps: int, batch_size: int) -> None:
    """``steps`` timed training steps (after 3 untimed) of ``arch``'s default model on the streamed train split."""
    import keras
    import keras_tuner as kt

    from deepfake_detection.architectures import get_architecture
    from deepfake_detection.data.pipeline import Augment, load_splits, make_dataset

    architecture = get_architecture(arch, image_size)
    architecture.training_steps = steps + 3
    model = architecture.build(kt.HyperParameters())
    rows = load_splits(data, splits=("train",))["train"]
    augment = Augment(strength=architecture.augment) if architecture.augment > 0 else None
    dataset = make_dataset(data, "train", image_size, batch_size, shuffle=True, augment=augment, manifest=rows)
    print("plan", dataset.input_plan.describe(), flush=True)

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.started = time.perf_counter()
            self.ended = time.perf_counter()

    clock = Clock()
    model.fit(dataset.take(steps + 3), epochs=1, verbose=0, callbacks=[clock])
    images = steps * batch_size
    seconds = clock.ended - clock.started
    print(f"timed {images} images in {seconds:.2f} s")
    hours = EPOCH_IMAGES / images * seconds / 3600
    print(f"{arch}: {images / seconds:.2f} images/s, one epoch of {EPOCH_IMAGES:,} images: {hours:.1f} h")


def report(image_size: int, markdown: Path | None) -> None:
    table = Table(
        {
            "step": "<34",
            "wall s": ">8.0f",
            "images": ">8",
            "img/s": ">8.1f",
            "peak RSS GiB": ">12.2f",
            "disk +GiB": ">9.2f",
            "1 epoch h": ">9",
        }
    )
    for row in ROWS:
        epoch = f"{EPOCH_IMAGES / row['rate'] / 3600:.1f}" if row["step"].startswith("train steps") else ""
        table.row(row["step"], row["seconds"], row["images"], row["rate"], row["rss_gib"], row["disk_gib"], epoch)
    note = f"(train steps at {image_size} px; '1 epoch h' projects 100,000 training images, validation not included)"
    print(f"\n{table.text()}\n{note}")
    write_markdown(markdown, table, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=user_path, required=True)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--arch", default=ARCHITECTURES)
    parser.add_argument("--augmented-images", type=int, default=10_000)
    parser.add_argument("--train-images", type=int, default=2000, help="Per split, for the models compare loads.")
    parser.add_argument("--compare-models", default="custom_a,spectrum")
    parser.add_argument("--fit-samples", type=int, default=4000)
    parser.add_argument(
        "--steps", default=",".join(STEPS), help="Which steps to run (comma list; each needs the earlier ones' output)."
    )
    parser.add_argument("--step", default="", help=argparse.SUPPRESS)  # internal: one measured step
    parser.add_argument("--data", type=user_path, help=argparse.SUPPRESS)
    parser.add_argument("--strength", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    add_markdown_option(parser)
    args = parser.parse_args()
    if args.step == "input":
        return input_epoch(args.data, args.image_size, args.strength, args.limit)
    if args.step == "train-steps":
        return train_steps(args.data, args.arch, args.image_size, args.train_steps, args.batch_size)

    import pandas as pd

    workdir = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    run = set(args.steps.split(","))
    if unknown := run - set(STEPS):
        parser.error(f"unknown --steps {', '.join(sorted(unknown))}; choose from {', '.join(STEPS)}")
    cli = [sys.executable, "-m", "deepfake_detection"]
    replica, data, outputs = workdir / "replica", workdir / "data-zip", str(workdir / "outputs")
    if "replica" in run and not replica.exists():
        build = [sys.executable, str(HERE / "kaggle_replica.py"), "--output", str(replica), "--zip"]
        measured("replica build (+ zips)", build, workdir, 142_041)
    downloads = ("140k-real-and-fake-faces", "real-and-fake-face-detection")
    for name, suffix, output in (("prepare from zips", ".zip", data), ("prepare from folders", "", None)):
        if "prepare" not in run:
            break
        output = output or workdir / "data-folders"
        sources = [
            "--kaggle-140k",
            f"{replica / downloads[0]}{suffix}",
            "--ciplab",
            f"{replica / downloads[1]}{suffix}",
        ]
        command = [*cli, "prepare", "--source", "kaggle", *sources, "--output", str(output), "--overwrite", "true"]
        measured(name, command, workdir)
        manifest = pd.read_csv(output / "manifest.csv", usecols=["split"])
        ROWS[-1]["images"] = int((manifest["split"] != "test_ciplab").sum())  # the view repeats ciplab's test
        ROWS[-1]["rate"] = ROWS[-1]["images"] / ROWS[-1]["seconds"]
    me = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir), "--data", str(data)]
    size = ["--image-size", str(args.image_size)]
    if "input" in run:
        measured(f"input epoch {args.image_size} px, no aug", [*me, "--step", "input", *size], workdir)
        augmented = [*me, "--step", "input", *size, "--strength", "0.5", "--limit", str(args.augmented_images)]
        measured(f"input {args.augmented_images:,} imgs, augmented", augmented, workdir)
    for arch in args.arch.split(",") if "train-steps" in run else []:
        steps = ["--train-steps", str(args.train_steps), "--batch-size", str(args.batch_size)]
        measured(f"train steps {arch}", [*me, "--step", "train-steps", "--arch", arch, *size, *steps], workdir)
    models = args.compare_models
    if "train" in run:
        train = [*cli, "train", "--arch", models, "--data", str(data), *size, "--epochs", "1", "--tuner", "none"]
        measured(
            f"train {models} (1 epoch)",
            [*train, "--num-samples", str(args.train_images), "--work-dir", outputs],
            workdir,
        )
    if "compare" in run:
        compare = [*cli, "compare", "--models", models, "--data", str(data), "--fit-samples", str(args.fit_samples)]
        output = measured(
            "compare (whole test split)", [*compare, "--approximate-too", "false", "--work-dir", outputs], workdir
        )
        test_images = int((pd.read_csv(data / "manifest.csv", usecols=["split"])["split"] == "test").sum())
        ROWS[-1]["images"], ROWS[-1]["rate"] = test_images, test_images / ROWS[-1]["seconds"]
        print(output[-2500:])
    for step, split, model in (
        ("predict", "test", models.split(",")[0]),
        ("predict-train", "train", models.split(",")[-1]),
    ):
        if step in run:
            folder = replica / downloads[0] / "real_vs_fake" / "real-vs-fake" / split
            predict = [*cli, "predict", "--input", str(folder), "--model", model]
            measured(
                f"predict {split} folder ({model})",
                [*predict, "--output", str(workdir / f"predictions-{split}.csv")],
                workdir,
            )
    report(args.image_size, args.markdown)


if __name__ == "__main__":
    main()
