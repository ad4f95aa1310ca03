"""Cross-generator generalisation: train on the fakes of one generator family, test on each.

The offline benchmark's fakes come from two generator families (``transpose``: transposed
convolutions, which leave checkerboard artefacts; ``upsample``: resize + convolution). For each
family — and for both together — a dataset *view* is written (a manifest pointing at the same
files: all real images plus that family's fakes), each architecture is trained on it with the
real ``train`` code (registered in a private tracking store), and its ROC-AUC is measured on
the test reals against the test fakes of every family. Rows: trained on; columns: tested on.

    python benchmarks/cross_generator.py [--arch npr,custom_c,spectrum] [--epochs 8] [--num-images 2000]
                                         [--data DIR] [--output CSV] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
from _report import Table, add_markdown_option, write_markdown
from _workspace import bench_data, dataset_path, private_workspace, user_path


def write_view(data: Path, manifest: pd.DataFrame, generators: list[str], folder: Path) -> Path:
    """A dataset folder whose manifest holds every real image and the fakes of ``generators``."""
    keep = (manifest["label"] == "real") | manifest["generator"].isin(generators)
    view = manifest[keep].copy()
    view["path"] = [str((data / p).resolve()) for p in view["path"]]  # absolute: the files stay where they are
    folder.mkdir(parents=True, exist_ok=True)
    view.to_csv(folder / "manifest.csv", index=False)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=dataset_path, help="A prepared bench dataset (default: build the 64 px benchmark)."
    )
    parser.add_argument("--arch", default="npr,custom_c,spectrum")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=2000, help="Bench images per class when building.")
    parser.add_argument("--epochs", type=int, default=8, help="Final-fit epochs (the schedule spans them).")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=user_path, help="Also write the matrix as CSV here.")
    add_markdown_option(parser)
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from deepfake_detection.config import TrainSettings
    from deepfake_detection.data.pipeline import load_manifest
    from deepfake_detection.evaluation import bootstrap_intervals
    from deepfake_detection.model import load_detector
    from deepfake_detection.training import run_training

    workspace = private_workspace("cross-generator-")
    data = bench_data(args.data, workspace, args.image_size, args.seed, num_images=args.num_images)
    os.chdir(workspace)
    manifest = pd.read_csv(data / "manifest.csv", keep_default_na=False)
    families = sorted(g for g in manifest.loc[manifest["label"] == "fake", "generator"].unique() if g)
    if len(families) < 2:
        raise SystemExit(f"{data} has fakes from {families or 'no'} generator family; two are needed")
    test = load_manifest(data, "test")
    test_sets = {g: test[(test["label"] == "real") | (test["generator"] == g)] for g in families}
    training_sets = {g: [g] for g in families} | {"all": families}

    rows, intervals = [], {}
    for arch in [a.strip() for a in args.arch.split(",") if a.strip()]:
        for trained_on, generators in training_sets.items():
            view = write_view(data, manifest, generators, workspace / "views" / trained_on)
            print(f"training {arch} on real + {trained_on} fakes …", flush=True)
            (result,) = run_training(
                TrainSettings(
                    arch=arch,
                    data=str(view),
                    image_size=args.image_size,
                    epochs=args.epochs,
                    tuner="none",
                    seed=args.seed,
                    work_dir=str(workspace / "outputs"),
                )
            )
            detector = load_detector(result.model_uri)
            row = {"architecture": arch, "trained_on": trained_on}
            for tested_on, rows_ in test_sets.items():
                y = (rows_["label"] == "fake").to_numpy().astype(int)
                p_fake = detector.predict_encoded([Path(f).read_bytes() for f in rows_["file"]])
                row[tested_on] = float(roc_auc_score(y, p_fake))
                interval = bootstrap_intervals(y, p_fake, 0.5, seed=args.seed)["roc_auc"]
                intervals[(arch, trained_on, tested_on)] = interval
            rows.append(row)
    matrix = pd.DataFrame(rows)
    caption = (
        f"test ROC-AUC (positive class: fake), {args.image_size} px, {args.epochs} epochs, no tuning, "
        f"seed {args.seed}; rows: fakes trained on, columns: fakes tested on"
    )
    print(f"\n{caption}")
    print(matrix.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("95 % stratified bootstrap intervals:")
    bounds = Table({"architecture": "<12", "trained on": "<10", "tested on": "<10", "95 % interval": "<"})
    print(bounds.header())
    for (arch, trained_on, tested_on), interval in intervals.items():
        print(bounds.row(arch, trained_on, tested_on, f"[{interval.low:.3f}, {interval.high:.3f}]"))
    off_diagonal = [r[g] for r in rows for g in families if r["trained_on"] in families and r["trained_on"] != g]
    diagonal = [r[r["trained_on"]] for r in rows if r["trained_on"] in families]
    seen, unseen = np.mean(diagonal), np.mean(off_diagonal)
    means = f"mean ROC-AUC on the family trained on {seen:.3f}, on the other family {unseen:.3f}"
    print(means)
    matrix_md = matrix.to_markdown(index=False, floatfmt=".3f")
    write_markdown(args.markdown, caption, matrix_md, "95 % stratified bootstrap intervals:", bounds, means)
    if args.output:
        matrix.to_csv(args.output, index=False)


if __name__ == "__main__":
    main()
