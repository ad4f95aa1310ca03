"""What a comparison is made of: one :class:`ClassifierResult` per (model, classifier), gathered
in a :class:`Comparison` from which the table, curves, confusion matrices and metrics derive."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detection import analysis, evaluation

TABLE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")

TABLE_COLUMNS = (
    "model",
    "version",
    "classifier",
    *(f"{m}{end}" for m in TABLE_METRICS for end in ("", "_ci_low", "_ci_high")),
    "kmeans_ari",
    "embedding_dim",
    "fit_seconds",
)

CLASSIFIER_NAMES = {"cnn_head": "CNN head", "pca_svm": "PCA+SVM", "pca_svm_nystroem": "PCA+SVM (Nystroem)"}


@dataclass(frozen=True)
class ResolvedModel:
    label: str  # short name for tables and plots
    uri: str
    name: str
    version: str


@dataclass(frozen=True)
class PCAAnalysis:
    """What the report shows of an SVM pipeline's scaler + PCA step."""

    fit_rows: int  # rows PCA was fit on: the train split only
    cumulative_variance: np.ndarray  # of the kept components
    test_components: np.ndarray  # first two principal components of the test embeddings
    kmeans_ari: float  # k-means (k = 2) on all kept test components against the labels


@dataclass(frozen=True)
class ClassifierResult:
    """One classifier on one model's embeddings, scored on the test split."""

    model: str  # ResolvedModel.label
    version: str
    classifier: str  # a key of CLASSIFIER_NAMES
    embedding_dim: int
    fit_seconds: float  # nan for the CNN head, trained elsewhere
    threshold: float
    y_test: np.ndarray
    scores: np.ndarray  # p_fake, or SVM decision values squashed to (0, 1)
    metrics: dict[str, float]  # evaluation.binary_metrics at ``threshold``
    pca: PCAAnalysis | None = None  # on each model's first SVM only

    @property
    def name(self) -> str:
        return f"{self.model} {CLASSIFIER_NAMES[self.classifier]}"

    def row(self) -> dict:
        return {
            "model": self.model,
            "version": self.version,
            "classifier": self.classifier,
            **{k: self.metrics[k] for k in TABLE_COLUMNS if k in self.metrics},
            "kmeans_ari": self.pca.kmeans_ari if self.pca else float("nan"),
            "embedding_dim": self.embedding_dim,
            "fit_seconds": self.fit_seconds,
        }


def cnn_head_result(
    model: ResolvedModel, y_test, p_fake, threshold: float, embedding_dim: int, seed: int = 0
) -> ClassifierResult:
    """The CNN's own output at the threshold it was trained with."""
    metrics = evaluation.metrics_with_intervals(y_test, p_fake, threshold, seed=seed)
    return ClassifierResult(
        model.label, model.version, "cnn_head", embedding_dim, float("nan"), threshold, y_test, p_fake, metrics
    )


def pca_svm_result(
    model: ResolvedModel,
    embeddings: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    svm: analysis.SVMSettings,
    approximate: bool = False,
    analyse_pca: bool = False,
) -> ClassifierResult:
    """Scaler → PCA → SVM fit on train, thresholded on valid, scored on test (``embeddings`` and
    ``y`` by split); ``analyse_pca`` also keeps what the report shows of the PCA."""
    started = time.perf_counter()
    pipeline = analysis.fit_pca_svm(embeddings["train"], y["train"], svm, approximate=approximate)
    seconds = time.perf_counter() - started
    threshold = evaluation.choose_threshold(y["valid"], analysis.svm_scores(pipeline, embeddings["valid"]))
    scores = analysis.svm_scores(pipeline, embeddings["test"])
    pca = None
    if analyse_pca:
        components = analysis.principal_components(pipeline, embeddings["test"])
        fitted = pipeline.named_steps["pca"]
        pca = PCAAnalysis(
            fit_rows=fitted.n_samples_,
            cumulative_variance=np.cumsum(fitted.explained_variance_ratio_),
            test_components=components[:, :2],
            kmeans_ari=analysis.kmeans_ari(components, y["test"], svm.seed),
        )
    return ClassifierResult(
        model.label,
        model.version,
        "pca_svm_nystroem" if approximate else "pca_svm",
        embeddings["test"].shape[1],
        seconds,
        threshold,
        y["test"],
        scores,
        evaluation.metrics_with_intervals(y["test"], scores, threshold, seed=svm.seed),
        pca,
    )


@dataclass(frozen=True)
class Comparison:
    """Every classifier of every model, and what the report and the run derive from them."""

    records: tuple[ClassifierResult, ...]
    robustness: pd.DataFrame | None = None  # robustness.evaluate rows of every model, when asked for
    embedding_files: tuple[tuple[str, Path], ...] = ()  # (model label, embeddings folder) to log

    def table(self) -> pd.DataFrame:
        """One row per record; the robustness rows ride along as ``attrs["robustness"]``."""
        table = pd.DataFrame([r.row() for r in self.records], columns=list(TABLE_COLUMNS))
        if self.robustness is not None:
            table.attrs["robustness"] = self.robustness
        return table

    def differences(self, seed: int = 0) -> pd.DataFrame:
        """Paired bootstrap of the test ROC-AUC: every two models under the same classifier, and each
        model's CNN head against its PCA+SVM. A pair differs when the 95 % interval excludes 0."""
        by_kind: dict[str, list[ClassifierResult]] = {}
        for r in self.records:
            by_kind.setdefault(r.classifier, []).append(r)
        pairs = [(a, b) for group in by_kind.values() for i, a in enumerate(group) for b in group[i + 1 :]]
        heads = {r.model: r for r in by_kind.get("cnn_head", [])}
        pairs += [(heads[r.model], r) for r in by_kind.get("pca_svm", []) if r.model in heads]
        rows = []
        for a, b in pairs:
            d = evaluation.paired_roc_auc_difference(a.y_test, a.scores, b.scores, seed=seed)
            better = a.name if d.difference > 0 else b.name
            verdict = f"{better} is better" if d.significant else "no significant difference"
            rows.append(
                {
                    "a": a.name,
                    "b": b.name,
                    "roc_auc_difference": d.difference,
                    "ci_low": d.low,
                    "ci_high": d.high,
                    "significant": d.significant,
                    "verdict": verdict,
                }
            )
        return pd.DataFrame(
            rows, columns=["a", "b", "roc_auc_difference", "ci_low", "ci_high", "significant", "verdict"]
        )

    def roc_panels(self) -> dict[str, dict[str, evaluation.RocCurve]]:
        """Classifier title → model → its test ROC curve, classifiers in the table's order."""
        panels: dict[str, dict[str, evaluation.RocCurve]] = {}
        for r in self.records:
            panels.setdefault(CLASSIFIER_NAMES[r.classifier], {})[r.model] = evaluation.roc_points(r.y_test, r.scores)
        return panels

    def confusions(self) -> dict[str, dict]:
        """Every classifier of every model, titled like the table (e.g. "npr PCA+SVM (Nystroem)")."""
        return {r.name: r.metrics for r in self.records}

    def explained_variance(self) -> dict[str, np.ndarray]:
        return {r.model: r.pca.cumulative_variance for r in self.records if r.pca}

    def pca_points(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {r.model: (r.pca.test_components, r.y_test) for r in self.records if r.pca}

    def classifier_runs(self) -> list[tuple[str, dict, dict[str, float]]]:
        """``(run name, params, metrics)`` per model and classifier, in long format: the same
        metric keys in every run (the table's metrics and their intervals, the counts,
        ``fit_seconds``; ``pca_fit_rows`` and ``kmeans_ari`` on the PCA's SVM; the robustness
        ROC-AUCs on the CNN head), params ``architecture``, ``classifier``, ``version``."""
        robust: dict[str, dict[str, float]] = {}
        if self.robustness is not None:
            for row in self.robustness.itertuples(index=False):
                robust.setdefault(row.model, {})[f"robustness_{row.degradation}_roc_auc"] = float(row.roc_auc)
        runs = []
        for r in self.records:
            metrics = {k: float(v) for k, v in r.metrics.items() if np.isfinite(v)}
            if np.isfinite(r.fit_seconds):
                metrics["fit_seconds"] = r.fit_seconds
            if r.pca:
                metrics |= {"pca_fit_rows": float(r.pca.fit_rows), "kmeans_ari": r.pca.kmeans_ari}
            if r.classifier == "cnn_head":
                metrics |= robust.get(r.model, {})
            params = {"architecture": r.model, "classifier": r.classifier, "version": r.version}
            runs.append((f"compare-{r.model}-{r.classifier}", params | {"embedding_dim": r.embedding_dim}, metrics))
        return runs
