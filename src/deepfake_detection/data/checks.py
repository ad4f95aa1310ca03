"""Shortcut checks: cheap classifiers that a good benchmark must not let win too easily.

* colour histograms + logistic regression must stay near chance (subject matter and colour
  statistics are matched between classes),
* the 2-D log Fourier spectrum + logistic regression must land in a band that is neither
  trivial nor hopeless (generation artefacts are present but partly hidden by
  post-processing).

Both fit on the ``train`` split and report ROC-AUC on ``test`` with ``fake`` as positive class.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

COLOUR_BINS = 32


def colour_histograms(images: np.ndarray, bins: int = COLOUR_BINS) -> np.ndarray:
    """Per-channel normalised histograms, ``N x (3 * bins)``."""
    features = np.empty((len(images), 3 * bins), dtype=np.float64)
    for i, image in enumerate(images):
        for channel in range(3):
            counts, _ = np.histogram(image[..., channel], bins=bins, range=(0, 256))
            features[i, channel * bins : (channel + 1) * bins] = counts / counts.sum()
    return features


def log_spectra(images: np.ndarray) -> np.ndarray:
    """Centred 2-D log-magnitude Fourier spectrum of the grey image, flattened."""
    grey = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    spectrum = np.fft.fftshift(np.fft.fft2(grey), axes=(1, 2))
    return np.log1p(np.abs(spectrum)).reshape(len(images), -1)


def _auc(features: np.ndarray, targets: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    model.fit(features[train], targets[train])
    return float(roc_auc_score(targets[test], model.predict_proba(features[test])[:, 1]))


def shortcut_aucs(images: np.ndarray, targets: np.ndarray, splits: np.ndarray) -> dict[str, float]:
    """Test ROC-AUC of the colour-histogram and the spectral logistic regressions.

    Args:
        images: ``N x H x W x 3`` uint8 images.
        targets: 1 for fake, 0 for real.
        splits: split name of each image; fits on ``train``, scores on ``test``.
    """
    targets = np.asarray(targets)
    splits = np.asarray(splits)
    train, test = splits == "train", splits == "test"
    for name, mask in (("train", train), ("test", test)):
        if len(np.unique(targets[mask])) < 2:
            raise ValueError(f"the {name} split needs both classes for the shortcut checks")
    return {
        "colour_histogram_auc": _auc(colour_histograms(images), targets, train, test),
        "spectrum_auc": _auc(log_spectra(images), targets, train, test),
    }


def load_split_images(root, splits=("train", "test"), size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the images of ``splits`` from a prepared dataset, resized to ``size`` if needed."""
    from pathlib import Path

    import pandas as pd
    from PIL import Image

    root = Path(root)
    manifest = pd.read_csv(root / "manifest.csv", keep_default_na=False)
    manifest = manifest[manifest["split"].isin(splits)]
    images = np.empty((len(manifest), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(manifest["path"]):
        with Image.open(root / path) as picture:
            picture = picture.convert("RGB")
            if picture.size != (size, size):
                picture = picture.resize((size, size), Image.Resampling.BILINEAR)
            images[i] = np.asarray(picture)
    return images, manifest["target"].to_numpy(), manifest["split"].to_numpy()


def check_dataset(root, size: int | None = None) -> dict[str, float]:
    """Shortcut checks on a prepared dataset (train → test), at its own image size by default."""
    from pathlib import Path

    import pandas as pd

    if size is None:
        manifest = pd.read_csv(Path(root) / "manifest.csv", usecols=["width"])
        size = int(manifest["width"].mode().iloc[0])
    return shortcut_aucs(*load_split_images(root, size=size))
