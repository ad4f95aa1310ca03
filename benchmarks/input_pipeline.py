"""Input pipeline throughput: the project's tf.data pipeline vs a plain Python loop with PIL.

Both read the same files of a prepared dataset, decode them, resize to the same size and
produce float32 batches. Prints images/second for each and their ratio, measured in one run.

    python benchmarks/input_pipeline.py [--data data/combined-real-vs-fake] [--repeats 3] [--markdown PATH]

Without --data it reads ``data/combined-real-vs-fake`` (what ``make run`` leaves) when that is
there, else a benchmark dataset built in a temporary folder; a --data that is not a prepared
dataset is refused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from _report import Table, add_markdown_option, write_markdown
from _workspace import dataset_path
from PIL import Image

DEFAULT_DATA = Path("data/combined-real-vs-fake")


def pil_loop(files, image_size: int, batch_size: int) -> int:
    """What the original notebooks' generator did: open, convert, resize, stack, one by one."""
    seen, batch = 0, []
    for path in files:
        with Image.open(path) as picture:
            array = np.asarray(
                picture.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.float32
            )
        batch.append(array)
        if len(batch) == batch_size:
            seen += len(np.stack(batch))
            batch = []
    if batch:
        seen += len(np.stack(batch))
    return seen


def tf_pipeline(root, split: str, image_size: int, batch_size: int) -> int:
    from deepfake_detection.data.pipeline import make_dataset

    dataset = make_dataset(root, split, image_size=image_size, batch_size=batch_size, cache=False)
    return sum(int(x.shape[0]) for x, _ in dataset)


def cached_epoch(dataset) -> int:
    return sum(int(x.shape[0]) for x, _ in dataset)


def timed(function, *args) -> tuple[float, int]:
    start = time.perf_counter()
    count = function(*args)
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, help=f"A prepared dataset (default: {DEFAULT_DATA} if there).")
    parser.add_argument("--split", default="train")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    add_markdown_option(parser)
    args = parser.parse_args()

    from deepfake_detection.data.pipeline import load_manifest
    from deepfake_detection.data.prepare import prepare_bench

    root = args.data or (DEFAULT_DATA.resolve() if (DEFAULT_DATA / "manifest.csv").is_file() else None)
    if root is None:
        root = Path(tempfile.mkdtemp()) / "bench"
        print(f"building a benchmark dataset in {root} ...")
        prepare_bench(root, image_size=64, num_images=500, progress=False, check=False)
    files = list(load_manifest(root, args.split)["file"])
    caption = f"dataset {root}, split {args.split}: {len(files)} files -> {args.image_size} px, batch {args.batch_size}"
    machine = f"machine: {os.cpu_count()} logical CPUs"
    print(f"{caption}\n{machine}")

    from deepfake_detection.data.pipeline import make_dataset

    tf_pipeline(root, args.split, args.image_size, args.batch_size)  # warm-up: graph tracing, OS file cache
    pil_loop(files, args.image_size, args.batch_size)
    cached = make_dataset(root, args.split, image_size=args.image_size, batch_size=args.batch_size, cache=True)
    cached_epoch(cached)  # the first epoch fills the in-memory cache
    results: dict[str, list[float]] = {
        "tf.data (decode every epoch)": [],
        "tf.data (cached, epoch >= 2)": [],
        "PIL loop": [],
    }
    for _ in range(args.repeats):
        seconds, count = timed(tf_pipeline, root, args.split, args.image_size, args.batch_size)
        results["tf.data (decode every epoch)"].append(count / seconds)
        seconds, count = timed(cached_epoch, cached)
        results["tf.data (cached, epoch >= 2)"].append(count / seconds)
        seconds, count = timed(pil_loop, files, args.image_size, args.batch_size)
        results["PIL loop"].append(count / seconds)
    table = Table({"pipeline": "<30", "median img/s": ">12.0f", "min img/s": ">9.0f", "max img/s": ">9.0f"})
    for name, rates in results.items():
        table.row(name, statistics.median(rates), min(rates), max(rates))
    ratio = statistics.median(results["tf.data (decode every epoch)"]) / statistics.median(results["PIL loop"])
    verdict = f"ratio tf.data / PIL loop: {ratio:.2f}x"
    print(f"{table.text()}\n{verdict}")
    write_markdown(args.markdown, f"{caption}; {machine}", table, verdict)


if __name__ == "__main__":
    main()
