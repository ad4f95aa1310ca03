"""Does a degradation remove the generator's trace, or only hide it from a detector trained on
clean images? The neighbouring-pixel residual (what npr reads: each pixel minus the top-left
pixel of its 2x2 cell) of valid and test, clean and after each degradation, as a model sees them
(the file degraded and encoded again, then decoded and resized to the model's size). Its
feature: the residual's log power spectrum, less its own mean (the content's overall energy),
averaged over 8 x 8 blocks of frequencies (64 numbers). Per condition, the test ROC-AUC (fake =
positive, 95 % bootstrap interval) of a logistic regression on those features

* fit on valid under the same condition (``matched``): what is left of the trace, a floor for
  what a detector that has seen this degradation can reach;
* fit on clean valid (``clean-fit``): what a detector trained on clean images keeps.

A matched ROC-AUC near 0.5 means the degradation removed the trace at this resolution; one well
above the clean-fit one means the trace is there and the detector was not trained for it.

    python benchmarks/residual_spectrum.py [--data DIR] [--degradations none,downscale_0.5x,...]
        [--plot PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from _report import Table, add_markdown_option, write_markdown
from _workspace import bench_data, dataset_path, private_workspace, user_path

BLOCKS = 8  # the spectrum is averaged over BLOCKS x BLOCKS blocks of frequencies
CONDITIONS = "none,jpeg_q75,jpeg_q50,downscale_0.75x,downscale_0.5x,upscale_1.5x,blur_sigma0.5,blur_sigma1,crop_0.8"


def npr_residual(pixels: np.ndarray) -> np.ndarray:
    """``(n, size, size[, channels])`` -> each pixel minus the top-left pixel of its 2x2 cell."""
    corner = np.repeat(np.repeat(pixels[:, ::2, ::2], 2, axis=1), 2, axis=2)
    return pixels - corner[:, : pixels.shape[1], : pixels.shape[2]]


def residual_spectra(pixels: np.ndarray) -> np.ndarray:
    """``(n, size, size, 3)`` pixels in [0, 255] -> ``(n, size, size)``: the log10 power spectrum
    of the grey NPR residual (DC at [0, 0]), less each image's mean over all frequencies."""
    power = np.log10(np.abs(np.fft.fft2(npr_residual(pixels.mean(axis=-1)))) ** 2 + 1e-6)
    return power - power.mean(axis=(1, 2), keepdims=True)


def block_features(spectra: np.ndarray) -> np.ndarray:
    n, size, _ = spectra.shape
    step = size // BLOCKS
    cut = spectra[:, : step * BLOCKS, : step * BLOCKS]
    return cut.reshape(n, BLOCKS, step, BLOCKS, step).mean(axis=(2, 4)).reshape(n, -1)


def as_seen(files: list[str], degradation, size: int, seed: int) -> np.ndarray:
    """The files degraded (or not), encoded again, decoded and resized as the model does."""
    from pathlib import Path

    from deepfake_detection.degradations import degrade
    from deepfake_detection.model import DeepfakeDetector, DetectorConfig

    blobs = [Path(f).read_bytes() for f in files]
    if degradation is not None:
        blobs = [degrade(blob, degradation, seed) for blob in blobs]
    return DeepfakeDetector.of(None, DetectorConfig("residual", size, 0.5)).decode(blobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, help="A prepared dataset (default: build the 64 px benchmark).")
    parser.add_argument("--image-size", type=int, default=64, help="The model's input size.")
    parser.add_argument("--degradations", default=CONDITIONS, help="'none' (clean) and names of the standard suite.")
    parser.add_argument("--plot", type=user_path, help="Also draw the mean fake-minus-real spectrum per condition.")
    parser.add_argument("--seed", type=int, default=42)
    add_markdown_option(parser)
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deepfake_detection.data.pipeline import load_manifest
    from deepfake_detection.degradations import suite
    from deepfake_detection.evaluation import fake_labels, roc_auc_interval

    data = args.data or bench_data(None, private_workspace("residual-"), args.image_size, args.seed)
    named = {d.name: d for d in suite("standard")}
    names = [n.strip() for n in args.degradations.split(",") if n.strip()]
    unknown = [n for n in names if n != "none" and n not in named]
    if unknown:
        raise SystemExit(f"unknown degradations {unknown}; choose from none, {', '.join(named)}")
    splits = {split: load_manifest(data, split) for split in ("valid", "test")}
    y = {split: fake_labels(rows) for split, rows in splits.items()}

    def detector(features):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        return model.fit(features, y["valid"])

    def scored(model, features) -> str:
        p_fake = model.predict_proba(features)[:, 1]
        interval = roc_auc_interval(y["test"], p_fake, seed=args.seed)
        return f"{roc_auc_score(y['test'], p_fake):.3f} [{interval.low:.3f}, {interval.high:.3f}]"

    print(f"{data}: NPR residual spectra at {args.image_size} px; test ROC-AUC, fake = positive, 95 % intervals")
    table = Table({"condition": "<16", "matched [95 % CI]": ">22", "clean-fit [95 % CI]": ">22"})
    print(table.header())
    valid_files = list(splits["valid"]["file"])
    clean_model = detector(block_features(residual_spectra(as_seen(valid_files, None, args.image_size, args.seed))))
    differences = {}
    for name in names:
        spectra = {
            split: residual_spectra(as_seen(list(rows["file"]), named.get(name), args.image_size, args.seed))
            for split, rows in splits.items()
        }
        features = {split: block_features(s) for split, s in spectra.items()}
        matched = detector(features["valid"])
        test = spectra["test"]
        differences[name] = test[y["test"] == 1].mean(axis=0) - test[y["test"] == 0].mean(axis=0)
        print(table.row(name, scored(matched, features["test"]), scored(clean_model, features["test"])), flush=True)
    if args.plot:
        _plot(differences, args.plot)
        print(f"plot written to {args.plot}")
    write_markdown(args.markdown, table)


def _plot(differences: dict, path) -> None:
    """One panel per condition: the mean residual log spectrum of fakes minus reals (DC centred)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limit = max(float(np.abs(d).max()) for d in differences.values())
    figure, axes = plt.subplots(1, len(differences), figsize=(2.2 * len(differences), 2.6))
    for axis, (name, difference) in zip(np.atleast_1d(axes), differences.items()):
        image = axis.imshow(np.fft.fftshift(difference), cmap="coolwarm", vmin=-limit, vmax=limit)
        axis.set_title(name, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(image, ax=axes, shrink=0.8, label="log10 power, fake - real")
    figure.suptitle("NPR residual spectrum, fake minus real (centre = DC, edges = Nyquist)", fontsize=9)
    figure.savefig(path, dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    main()
