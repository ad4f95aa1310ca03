"""Benchmark dataset: build time and shortcut checks at the default settings, over several seeds.

    python benchmarks/dataset_build.py [--seeds 1,2,3] [--image-size 64] [--num-images 500] [--markdown PATH]

For each seed: wall time of the build (generators trained, images written, every image
checked), then the colour-histogram and spectral logistic-regression ROC-AUCs (train → test,
fake = positive). Targets: colour ≤ 0.65, spectrum in [0.70, 0.95] at the default difficulty.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=500)
    parser.add_argument("--difficulties", default="0.5,0.0")
    add_markdown_option(parser)
    args = parser.parse_args()

    from deepfake_detection.data.checks import check_dataset
    from deepfake_detection.data.prepare import prepare_bench

    caption = f"machine: {os.cpu_count()} logical CPUs; {args.num_images} images per class at {args.image_size} px"
    print(caption)
    table = Table(
        {"difficulty": ">10.2f", "seed": ">5d", "build s": ">8.1f", "colour AUC": ">11.3f", "spectrum AUC": ">13.3f"}
    )
    print(table.header())
    with tempfile.TemporaryDirectory() as folder:
        for difficulty in (float(d) for d in args.difficulties.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                output = Path(folder) / f"d{difficulty}-s{seed}"
                started = time.perf_counter()
                prepare_bench(
                    output,
                    image_size=args.image_size,
                    num_images=args.num_images,
                    difficulty=difficulty,
                    seed=seed,
                    progress=False,
                    check=False,
                )
                seconds = time.perf_counter() - started
                checks = check_dataset(output)
                colour, spectrum = checks["colour_histogram_auc"], checks["spectrum_auc"]
                print(table.row(difficulty, seed, seconds, colour, spectrum), flush=True)
    write_markdown(args.markdown, caption, table)


if __name__ == "__main__":
    main()
