"""Training on one GPU at 224 px: precision x XLA x batch size, and whether the input pipeline keeps up.

    python benchmarks/gpu_train.py [--data DIR] [--arch densenet121,custom_a] [--batch-sizes 128]
                                   [--steps 30] [--image-size 224] [--fraction 0.05] [--markdown PATH]

For each architecture, batch size and configuration (float32 / mixed_float16, each without and
with XLA, ``jit_compile``), a model with the default hyperparameters and recipe trains
``--steps`` timed steps (after 5 untimed: tracing, XLA compilation) on one batch repeated from
memory (no reading or decoding): the compute alone. The best configuration then trains the same number of steps fed by
the project's own pipeline from the files (streamed, shuffled, default augmentation): when its
images/second is close to the compute alone, the input keeps the GPU busy. GPU utilisation is
the mean of ``nvidia-smi`` samples (every 100 ms) over the timed steps.

Without ``--data`` it builds the Kaggle replica at ``--fraction`` (``kaggle_replica.py``) and
prepares it from the zips in a temporary folder first (not timed). It needs a CUDA GPU and
refuses to run without one: CPU figures come from ``benchmarks/full_size.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import existing_path

HERE = Path(__file__).resolve().parent
CONFIGS = ("float32", "float32+xla", "mixed_float16", "mixed_float16+xla")


class Utilisation:
    """Mean GPU utilisation (%) between ``start`` and ``stop``, sampled by ``nvidia-smi``."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.recording = False
        command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if self.recording and line.strip().split(",")[0].strip().isdigit():
                self.samples.append(float(line.split(",")[0]))

    def start(self) -> None:
        self.samples, self.recording = [], True

    def stop(self) -> float:
        self.recording = False
        return sum(self.samples) / len(self.samples) if self.samples else float("nan")

    def close(self) -> None:
        self.process.terminate()


def prepared_replica(fraction: float, folder: Path) -> Path:
    from deepfake_detection.data.prepare import prepare_kaggle

    subprocess.run(
        [
            sys.executable,
            str(HERE / "kaggle_replica.py"),
            "--output",
            str(folder),
            "--fraction",
            str(fraction),
            "--zip",
        ],
        check=True,
    )
    data = folder / "data"
    prepare_kaggle(
        data,
        kaggle_140k=folder / "140k-real-and-fake-faces.zip",
        ciplab=folder / "real-and-fake-face-detection.zip",
        progress=False,
    )
    return data


def build(arch: str, image_size: int, config: str, steps: int):
    import keras
    import keras_tuner as kt

    from deepfake_detection.architectures import get_architecture

    precision, _, xla = config.partition("+")
    keras.mixed_precision.set_global_policy(precision)
    try:
        architecture = get_architecture(arch, image_size)
        architecture.training_steps = steps
        model = architecture.build(kt.HyperParameters())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.jit_compile = bool(xla)
    return model, architecture


def timed_fit(model, dataset, steps: int, batch_size: int, gpu: Utilisation) -> tuple[float, float]:
    """Images/second over ``steps`` steps after 5 untimed ones, and the mean GPU utilisation meanwhile."""
    import keras

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 4:
                self.started = time.perf_counter()
                gpu.start()
            self.ended = time.perf_counter()

    clock = Clock()
    model.fit(dataset.take(steps + 5), epochs=1, verbose=0, callbacks=[clock])
    utilisation = gpu.stop()
    return steps * batch_size / (clock.ended - clock.started), utilisation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # existing_path, not dataset_path: without a GPU it refuses before reading anything.
    parser.add_argument("--data", type=existing_path, help="A prepared dataset (default: a replica built here).")
    parser.add_argument("--arch", default="densenet121,custom_a")
    parser.add_argument("--batch-sizes", default="128")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--fraction", type=float, default=0.05, help="Replica size when --data is not given.")
    add_markdown_option(parser)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from deepfake_detection.data.pipeline import Augment, load_splits, make_dataset

    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise SystemExit("no GPU visible to TensorFlow: this benchmark is for a CUDA machine")
    device = f"GPU: {tf.config.experimental.get_device_details(gpus[0]).get('device_name', gpus[0].name)}"
    print(device, flush=True)
    data = args.data or prepared_replica(args.fraction, Path(tempfile.mkdtemp(prefix="gpu-replica-")))
    rows = load_splits(data, splits=("train",))["train"]
    size = args.image_size
    gpu = Utilisation()
    caption = f"{len(rows):,} training images, {size} px, {args.steps} timed steps each (after 5 untimed)"
    print(caption)
    table = Table(
        {"architecture": "<12", "batch": ">5", "config": "<18", "feed": "<9", "img/s": ">8.1f", "GPU %": ">6.0f"}
    )
    print(table.header(), flush=True)
    verdicts = []
    for arch in args.arch.split(","):
        for batch_size in map(int, args.batch_sizes.split(",")):
            synthetic = tf.data.Dataset.from_tensors(
                (tf.random.uniform((batch_size, size, size, 3), 0, 255), tf.cast(tf.range(batch_size) % 2, tf.float32))
            ).repeat()
            results = {}
            for config in args.configs.split(","):
                keras.utils.set_random_seed(0)
                model, _ = build(arch, size, config, args.steps + 5)
                rate, busy = timed_fit(model, synthetic, args.steps, batch_size, gpu)
                results[config] = rate
                print(table.row(arch, batch_size, config, "in memory", rate, busy), flush=True)
                keras.backend.clear_session()
            best = max(results, key=results.get)
            model, architecture = build(arch, size, best, args.steps + 5)
            augment = Augment(strength=architecture.augment) if architecture.augment > 0 else None
            files = make_dataset(data, "train", size, batch_size, shuffle=True, augment=augment, manifest=rows).repeat()
            rate, busy = timed_fit(model, files, args.steps, batch_size, gpu)
            print(table.row(arch, batch_size, best, "files", rate, busy), flush=True)
            gain = results[best] / results.get("float32", results[best])
            verdicts.append(
                f"{arch} batch {batch_size}: best {best}, {gain:.2f}x float32; "
                f"fed from files {rate / results[best]:.2f}x the compute alone "
                f"({'the input keeps up' if rate >= 0.9 * results[best] else 'input-bound'})"
            )
            print(f"  {verdicts[-1]}", flush=True)
            keras.backend.clear_session()
    gpu.close()
    write_markdown(args.markdown, f"{device}; {caption}", table, verdicts)


if __name__ == "__main__":
    main()
