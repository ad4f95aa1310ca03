"""Robustness: how a detector's test ROC-AUC holds up when images are re-compressed, shrunk or
blurred — what happens to pictures on their way through social media.

Each perturbation is applied to the image *file* (at its own resolution), the result is
encoded again and then goes through the model's usual decode and resize, as an upload would.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(quality: int) -> Callable[[Image.Image], bytes]:
    def recompress(picture: Image.Image) -> bytes:
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=quality)
        return buffer.getvalue()

    return recompress


def _downscale(factor: float) -> Callable[[Image.Image], bytes]:
    def shrink(picture: Image.Image) -> bytes:
        size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
        return _png(picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=None))

    return shrink


def _blur(radius: float) -> Callable[[Image.Image], bytes]:
    return lambda picture: _png(picture.filter(ImageFilter.GaussianBlur(radius)))


PERTURBATIONS: dict[str, Callable[[Image.Image], bytes] | None] = {
    "none": None,  # the file as it is
    "jpeg_q95": _jpeg(95),
    "jpeg_q75": _jpeg(75),
    "jpeg_q50": _jpeg(50),
    "downscale_0.5x": _downscale(0.5),
    "blur_sigma1": _blur(1.0),
}


def perturb(data: bytes, name: str) -> bytes:
    if PERTURBATIONS[name] is None:
        return data
    with Image.open(io.BytesIO(data)) as picture:
        return PERTURBATIONS[name](picture.convert("RGB"))


CHUNK_FILES = 1024  # test files read and perturbed at a time: memory bounded for any split


def evaluate(detector, rows: pd.DataFrame, label: str, batch_size: int = 64) -> list[dict]:
    """ROC-AUC and accuracy (at the model's threshold) of ``detector`` on ``rows`` under every perturbation."""
    from tqdm import tqdm

    from deepfake_detection.evaluation import binary_metrics, fake_labels

    y = fake_labels(rows)
    scores: dict[str, list[np.ndarray]] = {name: [] for name in PERTURBATIONS}
    files = list(rows["file"])
    for start in tqdm(range(0, len(files), CHUNK_FILES), desc=f"robustness {label}", unit="chunk"):
        originals = [Path(path).read_bytes() for path in files[start : start + CHUNK_FILES]]
        for name in PERTURBATIONS:
            scores[name].append(detector.predict_encoded([perturb(blob, name) for blob in originals], batch_size))
    results = []
    for name in PERTURBATIONS:
        p_fake = np.concatenate(scores[name])
        metrics = binary_metrics(y, p_fake, detector.config.threshold)
        results.append(
            {
                "model": label,
                "perturbation": name,
                "roc_auc": metrics["roc_auc"],
                "accuracy": metrics["accuracy"],
                "mean_p_fake": float(np.mean(p_fake)),
            }
        )
    return results


def robustness_figure(table: pd.DataFrame):
    """ROC-AUC per perturbation, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 4.2))
    order = list(PERTURBATIONS)
    for model, group in table.groupby("model", sort=False):
        group = group.set_index("perturbation").loc[[p for p in order if p in set(group["perturbation"])]]
        axis.plot(group.index, group["roc_auc"], marker="o", label=model)
    axis.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    axis.set_ylabel("test ROC-AUC (positive class: fake)")
    axis.set_ylim(0.3, 1.0)
    axis.set_title("Robustness to re-compression, down-scaling and blur")
    axis.legend(fontsize=8)
    axis.tick_params(axis="x", rotation=20)
    figure.tight_layout()
    return figure


def pivot(table: pd.DataFrame) -> pd.DataFrame:
    """ROC-AUC with one row per model and the perturbations as columns, in order."""
    wide = table.pivot(index="model", columns="perturbation", values="roc_auc")
    return wide[[name for name in PERTURBATIONS if name in wide.columns]]
