"""Does training-time augmentation buy robustness, and at what cost clean? Each architecture is
trained once per augmentation recipe on the same data, seed and epochs, then scored on the test
split clean and under every degradation of the standard suite (JPEG 90/75/50, 0.75x and 0.5x
down-scaling, 1.5x up-scaling, blur 0.5 and 1 px, noise 2 and 5 grey levels, an 80 % crop),
each degradation applied to the file and re-encoded as ``evaluate`` does.

``--ignore-border N`` trains, in place of each architecture named, a variant of it (benchmarks
only, named ``<arch>_interior<N>``) whose network reads its input less the outer ``N`` pixels of
each side: a detector that cannot use what lies at the image's border, so what the interior
alone holds.

A recipe is ``RECIPE:STRENGTH[:EPOCHS]`` (``upload:0.5``, ``chain:1``, ``upload:0.75:14``;
``STRENGTH`` ``default`` = the architecture's own; ``EPOCHS`` defaults to ``--epochs``): see
``Augment`` in ``deepfake_detection/data/augment.py``. The ``upload``
recipe never trains on up-scaling or noise: the "held-out" column is the mean over those three
conditions of the suite (1.5x up, noise 2 and 5), which the model never saw in training.

    python benchmarks/robustness.py [--arch npr] [--epochs 7] [--recipes chain:0.5,upload:0.5]
        [--ignore-border N] [--patience P] [--data DIR] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import bench_data, dataset_path, private_workspace

HELD_OUT = ("upscale_1.5x", "noise_sigma2", "noise_sigma5")  # never in the upload recipe


def recipes(text: str) -> list[tuple[str, float, int | None]]:
    """``chain:0.5,upload:default:14`` -> [("chain", 0.5, None), ("upload", -1.0, 14)] (-1: the
    architecture's default strength; None: ``--epochs``)."""
    out = []
    for item in text.split(","):
        recipe, strength, epochs = (item.strip().split(":") + ["", ""])[:3]
        if recipe not in ("upload", "paired", "chain"):
            raise argparse.ArgumentTypeError(f"unknown recipe {recipe!r} in {item!r}: upload, paired or chain")
        out.append((recipe, -1.0 if strength in ("", "default") else float(strength), int(epochs) if epochs else None))
    return out


def interior_variant(arch: str, border: int) -> str:
    """Register ``<arch>_interior<border>``: ``arch`` with the outer ``border`` pixels of each side of
    its (preprocessed) input cropped away before its backbone; its name."""
    from keras import layers

    from deepfake_detection.architectures import ARCHITECTURES

    base = ARCHITECTURES[arch]

    class Interior(base):
        name = f"{arch}_interior{border}"

        def backbone(self, x, hp):
            return super().backbone(layers.Cropping2D(border, name="ignore_border")(x), hp)

    ARCHITECTURES[Interior.name] = Interior
    return Interior.name


def interval(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, help="A prepared dataset (default: build the 64 px benchmark).")
    parser.add_argument("--arch", default="npr", help="Comma list of architectures.")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--recipes", type=recipes, default=recipes("chain:0.5,upload:0.5"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--ignore-border", type=int, default=0, help="Train <arch>_interior<N> variants instead.")
    parser.add_argument("--patience", type=int, default=3, help="Early stopping's patience, in epochs (on val AUC).")
    add_markdown_option(parser)
    args = parser.parse_args()

    import pandas as pd

    from deepfake_detection import robustness
    from deepfake_detection.config import TrainSettings
    from deepfake_detection.data.pipeline import load_manifest
    from deepfake_detection.evaluation import fake_labels, mean_roc_auc_interval
    from deepfake_detection.model import load_detector
    from deepfake_detection.training import run_training

    workspace = private_workspace("robustness-")
    data = bench_data(args.data, workspace, args.image_size, args.seed)
    os.chdir(workspace)
    test = load_manifest(data, "test")
    read = [Path(f).read_bytes for f in test["file"]]
    tables = []
    summary = Table(
        {
            "model": "<28",
            "clean [95 % CI]": "<22",
            "mean degraded [CI]": "<22",
            "worst degraded [CI]": "<22",
            "worst is": "<13",
            "0.5x down [CI]": "<22",
            "crop 0.8 [CI]": "<22",
            "held-out mean [CI]": "<22",
        }
    )
    inputs = robustness.Inputs()
    architectures = args.arch.split(",")
    if args.ignore_border:
        architectures = [interior_variant(a, args.ignore_border) for a in architectures]
    for arch in architectures:
        for recipe, strength, recipe_epochs in args.recipes:
            epochs = recipe_epochs or args.epochs
            label = f"{arch} {recipe}:{'default' if strength < 0 else f'{strength:g}'}"
            label += f", {epochs} epochs" if recipe_epochs else ""
            print(f"training {label}, {epochs} epochs …", flush=True)
            (result,) = run_training(
                TrainSettings(
                    arch=arch,
                    data=str(data),
                    image_size=args.image_size,
                    epochs=epochs,
                    tuner="none",
                    augment=strength,
                    augment_recipe=recipe,
                    degradations="none",  # scored below, on test only
                    seed=args.seed,
                    patience=args.patience,
                    work_dir=str(workspace / "outputs"),
                )
            )
            detector = load_detector(result.model_uri)
            scored = robustness.score(detector, read, fake_labels(test), label=label, inputs=inputs, batch_size=256)
            table = robustness.metrics_table(scored, detector.config.threshold, robustness.STANDARD, label, False)
            tables.append(table)
            s = robustness.summary(table, scored)
            by = table.set_index("degradation")
            held, held_ci = mean_roc_auc_interval(scored.y, [scored.p_fake[n] for n in HELD_OUT])
            down, crop = by.loc["downscale_0.5x"], by.loc["crop_0.8"]
            worst = table[table["degradation"] != "none"]["roc_auc"].idxmin()
            line = summary.row(
                label,
                interval(s["clean_roc_auc"], s["clean_roc_auc_ci_low"], s["clean_roc_auc_ci_high"]),
                interval(
                    s["mean_degraded_roc_auc"], s["mean_degraded_roc_auc_ci_low"], s["mean_degraded_roc_auc_ci_high"]
                ),
                interval(
                    s["worst_degraded_roc_auc"], s["worst_degraded_roc_auc_ci_low"], s["worst_degraded_roc_auc_ci_high"]
                ),
                table.loc[worst, "degradation"],
                interval(down["roc_auc"], down["roc_auc_ci_low"], down["roc_auc_ci_high"]),
                interval(crop["roc_auc"], crop["roc_auc_ci_low"], crop["roc_auc_ci_high"]),
                interval(held, held_ci.low, held_ci.high),
            )
            print(summary.header(), line, sep="\n", flush=True)
    severity = robustness.pivot(pd.concat(tables, ignore_index=True))
    caption = (
        f"test ROC-AUC (positive class: fake; {len(test)} images), {args.image_size} px, {args.epochs} epochs "
        f"unless named, no tuning, seed {args.seed}; 95 % stratified bootstrap intervals; held-out: the mean over "
        f"{', '.join(HELD_OUT)}, which no recipe trains on"
    )
    print(f"\n{caption}")
    print(severity.to_string(float_format=lambda v: f"{v:.3f}"))
    write_markdown(
        args.markdown,
        caption,
        summary,
        "every condition (ROC-AUC):",
        severity.to_markdown(floatfmt=".3f"),
    )


if __name__ == "__main__":
    main()
