"""Does training-time augmentation buy robustness? One architecture trained twice on the same
data — augmentation off (``--augment 0``: flips only) and at full strength (``--augment 1``:
JPEG re-compression, blur and rescaling as well) — then both scored on the test split under
every degradation of the standard suite (``evaluate`` and ``compare --robustness``: JPEG 90/75/50, 0.75x and
0.5x down-scaling, 1.5x up-scaling, blur 0.5 and 1 px, noise 2 and 5 grey levels, an 80 % crop).

    python benchmarks/robustness.py [--arch custom_c] [--epochs 3] [--strengths 0,1] [--data DIR] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import add_markdown_option, write_markdown
from _workspace import bench_data, dataset_path, private_workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, help="A prepared dataset (default: build the 64 px benchmark).")
    parser.add_argument("--arch", default="custom_c")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--strengths", default="0,1", help="Augmentation strengths to train with.")
    parser.add_argument("--seed", type=int, default=42)
    add_markdown_option(parser)
    args = parser.parse_args()

    import pandas as pd

    from deepfake_detection import robustness
    from deepfake_detection.config import TrainSettings
    from deepfake_detection.data.pipeline import load_manifest
    from deepfake_detection.model import load_detector
    from deepfake_detection.training import run_training

    workspace = private_workspace("robustness-")
    data = bench_data(args.data, workspace, args.image_size, args.seed)
    os.chdir(workspace)
    test = load_manifest(data, "test")
    rows = []
    for strength in [float(s) for s in args.strengths.split(",")]:
        print(f"training {args.arch} with augmentation strength {strength:g} …", flush=True)
        (result,) = run_training(
            TrainSettings(
                arch=args.arch,
                data=str(data),
                image_size=args.image_size,
                epochs=args.epochs,
                tuner="none",
                augment=strength,
                degradations="none",  # scored below, on test only
                seed=args.seed,
                work_dir=str(workspace / "outputs"),
            )
        )
        label = f"{args.arch} augment={strength:g}"
        rows.append(robustness.evaluate(load_detector(result.model_uri), test, label))
    table = robustness.pivot(pd.concat(rows, ignore_index=True))
    means = table.drop(columns="none").mean(axis=1).rename("mean ROC-AUC")
    caption = (
        f"test ROC-AUC (positive class: fake), {args.image_size} px, {args.epochs} epochs, no tuning, seed {args.seed}"
    )
    print(f"\n{caption}")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print("mean over the degradations (without 'none'):")
    print(means.to_string(float_format=lambda v: f"{v:.3f}"))
    write_markdown(
        args.markdown,
        caption,
        table.to_markdown(floatfmt=".3f"),
        "mean over the degradations (without 'none'):",
        means.to_frame().to_markdown(floatfmt=".3f"),
    )


if __name__ == "__main__":
    main()
