"""PCA + polynomial SVM at scale: exact SVC vs the Nystroem approximation, side by side.

    python benchmarks/compare_scale.py [--sizes 1000,5000,20000,100000] [--dim 2048] [--exact-max 20000]
                                       [--markdown PATH]

Synthetic embeddings with the real dimensions (2048 VGGFace16, 1024 DenseNet-121, 512
custom): the class depends non-linearly on a few latent factors, projected into ``dim``
dimensions with noise. For each size: fit time (scaler + PCA + SVM on train) and predict
time, test accuracy and ROC-AUC; the exact SVC runs only up to ``--exact-max`` rows. The last
column is the approximation's accuracy minus the exact one's, in points, where both ran.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _report import Table, add_markdown_option, write_markdown
from sklearn.metrics import accuracy_score, roc_auc_score

from deepfake_detection.analysis import SVMSettings, fit_pca_svm, svm_scores


def synthetic(n: int, dim: int, rng: np.random.Generator):
    latent = rng.normal(size=(n, 8))
    y = ((latent[:, 0] * latent[:, 1] + 0.5 * latent[:, 2] ** 2 - 0.5 + 0.3 * rng.normal(size=n)) > 0).astype(int)
    x = latent @ rng.normal(size=(8, dim)) + rng.normal(scale=2.0, size=(n, dim))
    return x.astype(np.float32), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,20000,100000", help="training rows (test adds 25%%)")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--exact-max", type=int, default=20000)
    parser.add_argument("--n-components", type=int, default=50)
    parser.add_argument("--landmarks", type=int, default=500, help="Nystroem components")
    add_markdown_option(parser)
    args = parser.parse_args()
    settings = SVMSettings(n_components=args.n_components, landmarks=args.landmarks)
    caption = f"machine: {os.cpu_count()} logical CPUs; embeddings of {args.dim} dims, "
    caption += f"PCA({args.n_components}), poly degree 3"
    print(caption)
    table = Table(
        {
            "train rows": ">10",
            "method": ">9",
            "fit s": ">8.2f",
            "predict s": ">9.2f",
            "accuracy": ">9.3f",
            "ROC-AUC": ">8.3f",
            "vs exact": ">9",
        }
    )
    print(table.header())
    rng = np.random.default_rng(0)
    for n in (int(s) for s in args.sizes.split(",")):
        x, y = synthetic(n + n // 4, args.dim, rng)
        train_x, train_y, test_x, test_y = x[:n], y[:n], x[n:], y[n:]
        exact_accuracy = None
        for method, approximate in (("exact", False), ("nystroem", True)):
            if not approximate and n > args.exact_max:
                continue
            started = time.perf_counter()
            pipeline = fit_pca_svm(train_x, train_y, settings, approximate=approximate)
            fitted = time.perf_counter()
            scores = svm_scores(pipeline, test_x)
            done = time.perf_counter()
            accuracy = accuracy_score(test_y, (pipeline.decision_function(test_x) > 0).astype(int))
            if not approximate:
                exact_accuracy = accuracy
            gap = f"{100 * (accuracy - exact_accuracy):+.2f}" if approximate and exact_accuracy is not None else ""
            auc = roc_auc_score(test_y, scores)
            print(table.row(n, method, fitted - started, done - fitted, accuracy, auc, gap), flush=True)
    write_markdown(args.markdown, caption, table)


if __name__ == "__main__":
    main()
