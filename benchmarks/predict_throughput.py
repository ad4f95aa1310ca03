"""``predict`` throughput next to the bare Keras model, measured side by side in one run.

(a) ``deepfake-detection predict`` end to end: list files, load the model, read, check and
    decode each image exactly as training did, score in batches, write the CSV;
(a') its scoring loop alone, the model already loaded: files → CSV (the next chunk read and
    checked while the model scores this one);
(b) ``keras_model.predict`` on the same images already decoded in memory (the compute alone).

Prints images/second for each and (a)/(b), (a')/(b). Without ``--model`` it builds a benchmark dataset and
trains a detector (no tuning, 1 epoch) in a temporary tracking store first; that is not timed.

    python benchmarks/predict_throughput.py [--arch custom_c] [--image-size 64] [--repeats 3] [--markdown PATH]
    python benchmarks/predict_throughput.py --model models:/deepfake-custom_c@champion --data data/combined-real-vs-fake
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import bench_data, dataset_path, model_uri, scoring_workspace, trained_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=model_uri, help="Model URI to time (default: train one here).")
    parser.add_argument(
        "--data", type=dataset_path, help="Prepared dataset whose files are scored (default: build one)."
    )
    parser.add_argument("--arch", default="custom_c")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=2000, help="Bench images per class when building.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    add_markdown_option(parser)
    args = parser.parse_args()

    import numpy as np

    from deepfake_detection.data.pipeline import load_manifest
    from deepfake_detection.inference import predict_files, run_predict
    from deepfake_detection.model import load_detector, load_pixels

    workspace = scoring_workspace("predict-bench-", args.model)
    data = bench_data(args.data, workspace, args.image_size, num_images=args.num_images)
    uri = args.model or trained_detector(args.arch, data, args.image_size, workspace)

    files = [Path(f) for f in load_manifest(data)["file"]]
    detector = load_detector(uri)
    size = detector.config.image_size
    pixels = np.stack([load_pixels(f.read_bytes(), size) for f in files])
    detector.keras_model.predict(pixels[: args.batch_size], batch_size=args.batch_size, verbose=0)  # warm-up
    run_predict(f"{data}/*/*/*", uri, workspace / "warmup.csv", args.batch_size, progress=False)

    end_to_end, loop, bare = [], [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        summary = run_predict(f"{data}/*/*/*", uri, workspace / "predictions.csv", args.batch_size, progress=False)
        end_to_end.append(summary.images / (time.perf_counter() - started))
        started = time.perf_counter()
        output = workspace / "loop.csv"
        for number, scored in enumerate(predict_files(detector, files, uri, args.batch_size, progress=False)):
            scored.to_csv(output, mode="w" if number == 0 else "a", header=number == 0, index=False)
        loop.append(len(files) / (time.perf_counter() - started))
        started = time.perf_counter()
        detector.keras_model.predict(pixels, batch_size=args.batch_size, verbose=0)
        bare.append(len(pixels) / (time.perf_counter() - started))
    a, a_loop, b = statistics.median(end_to_end), statistics.median(loop), statistics.median(bare)
    caption = (
        f"model {uri} ({detector.config.architecture}, {size} px), {len(files)} files, batch {args.batch_size}, "
        f"{os.cpu_count()} CPUs, median of {args.repeats}"
    )
    table = Table({"what is timed": "<46", "images/s": ">9.1f"})
    table.row("(a)  predict, files -> CSV, model load included", a)
    table.row("(a') its scoring loop, model loaded", a_loop)
    table.row("(b)  keras predict, decoded arrays", b)
    ratios = f"(a)/(b) = {a / b:.2f}   (a')/(b) = {a_loop / b:.2f}"
    print(f"{caption}\n{table.text()}\n{ratios}")
    write_markdown(args.markdown, caption, table, ratios)


if __name__ == "__main__":
    main()
