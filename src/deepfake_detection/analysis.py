"""Scaler → PCA → polynomial-kernel SVM on CNN embeddings, fit on ``train`` only.

The original notebooks fit the scaler and PCA on all the data before splitting, which leaks
the test rows into the features; here every step is fit on the training embeddings alone.
Exact SVC is quadratic or worse in samples, so above a size the kernel is approximated
(Nystroem features of the same polynomial kernel + a linear SVM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.kernel_approximation import Nystroem
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC


@dataclass(frozen=True)
class SVMSettings:
    n_components: int = 50
    degree: int = 3
    C: float = 1.0
    coef0: float = 1.0
    gamma: str | float = "scale"
    landmarks: int = 500  # Nystroem components for the approximate kernel
    seed: int = 42


def kernel_gamma(settings: SVMSettings, features: np.ndarray) -> float:
    """The polynomial kernel's gamma, one definition for the exact and the approximate SVM:
    ``"scale"`` is scikit-learn's ``1 / (n_features * features.var())`` on the PCA components."""
    if settings.gamma != "scale":
        return float(settings.gamma)
    variance = float(features.var())
    return 1.0 / (features.shape[1] * variance) if variance > 0 else 1.0


def build_pipeline(settings: SVMSettings, n_samples: int, n_features: int, approximate: bool = False) -> Pipeline:
    """The unfitted pipeline; PCA keeps at most ``min(n_components, n_samples, n_features)``.

    PCA centres the scaler's output in place (``copy=False``): that output is already a private
    copy, so fitting holds the training embeddings at most once more, not twice."""
    components = max(1, min(settings.n_components, n_samples, n_features))
    steps = [
        ("scaler", StandardScaler()),
        ("pca", PCA(n_components=components, copy=False, random_state=settings.seed)),
    ]
    if approximate:
        steps += [
            (
                "kernel",
                Nystroem(
                    kernel="poly",
                    degree=settings.degree,
                    coef0=settings.coef0,
                    n_components=min(settings.landmarks, n_samples),
                    random_state=settings.seed,
                ),
            ),
            ("kernel_scaler", StandardScaler()),
            ("svm", LinearSVC(C=settings.C, dual=False, max_iter=5000, random_state=settings.seed)),
        ]
    else:
        steps.append(
            (
                "svm",
                SVC(
                    kernel="poly",
                    degree=settings.degree,
                    C=settings.C,
                    coef0=settings.coef0,
                    gamma=settings.gamma,
                    random_state=settings.seed,
                ),
            )
        )
    return Pipeline(steps)


def fit_pca_svm(train_x: np.ndarray, train_y: np.ndarray, settings: SVMSettings, approximate: bool = False) -> Pipeline:
    """Fit scaler, PCA and SVM on the training embeddings only; returns the fitted pipeline.

    The kernel's gamma is computed once from the training components (:func:`kernel_gamma`) and
    given to the exact SVC or to the Nystroem map alike, so both use the same kernel.
    """
    pipeline = build_pipeline(settings, *train_x.shape, approximate=approximate)
    components = pipeline[:2].fit_transform(train_x)  # scaler, PCA
    pipeline.set_params(**{"kernel__gamma" if approximate else "svm__gamma": kernel_gamma(settings, components)})
    pipeline[2:].fit(components, train_y)
    return pipeline


CHUNK_ROWS = 4096  # rows transformed at a time: memory stays bounded for any number of rows


def _chunked(function, x: np.ndarray) -> np.ndarray:
    """``function`` over ``x`` (an array or a memory map) a chunk of rows at a time, concatenated."""
    return np.concatenate([function(np.asarray(x[i : i + CHUNK_ROWS])) for i in range(0, len(x), CHUNK_ROWS)])


def svm_scores(pipeline: Pipeline, x: np.ndarray) -> np.ndarray:
    """Decision values squashed to (0, 1) so they read like p_fake (monotone: AUC unchanged)."""
    return expit(_chunked(pipeline.decision_function, x))


def principal_components(pipeline: Pipeline, x: np.ndarray) -> np.ndarray:
    """``x`` projected by the fitted scaler + PCA."""
    pca, scaler = pipeline.named_steps["pca"], pipeline.named_steps["scaler"]
    return _chunked(lambda rows: pca.transform(scaler.transform(rows)), x)


def kmeans_ari(components: np.ndarray, labels: np.ndarray, seed: int = 42) -> float:
    """Unsupervised check: k-means (k = 2) on PCA components vs the real/fake labels (ARI)."""
    clusters = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(components)
    return float(adjusted_rand_score(labels, clusters))
