"""``compare``: registered models → embeddings → PCA + polynomial SVM, one report and one run.

For each model: the CNN's own head (its threshold from training) next to StandardScaler →
PCA → SVC(poly) fit on the train embeddings, thresholded on valid and scored on test; where
the exact SVM can run, the Nystroem approximation is reported beside it with fit times.

Compute, then publish: each (model, classifier) pair is one ``ClassifierResult``;
``compute_comparison`` gathers them (and the optional robustness rows) into a ``Comparison``,
from which the table, curves, confusion matrices and metrics are derived; ``write_and_log``
writes the report files and logs them with the metrics, embeddings and plots to the run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detection import access, analysis, evaluation, registry, tracking, views
from deepfake_detection.config import CompareSettings
from deepfake_detection.errors import MissingModelError

log = logging.getLogger(__name__)
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
SPLITS = ("train", "valid", "test")
CLASSIFIER_NAMES = {"cnn_head": "CNN head", "pca_svm": "PCA+SVM", "pca_svm_nystroem": "PCA+SVM (Nystroem)"}


@dataclass(frozen=True)
class ResolvedModel:
    label: str  # short name for tables and plots
    uri: str
    name: str
    version: str


def resolve_models(settings: CompareSettings) -> list[ResolvedModel]:
    """Turn ``models`` + alias/stage into registered versions; name every missing one."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from deepfake_detection.architectures import ARCHITECTURES, parse_architectures

    client = MlflowClient()
    requested = [m.strip() for m in settings.models.split(",") if m.strip()]
    uris = []
    if requested and all(m.startswith("models:/") for m in requested):
        uris = requested
    else:
        names = list(ARCHITECTURES) if settings.models.strip() == "all" else parse_architectures(settings.models)
        for arch in names:
            name = registry.registered_name(arch)
            uris.append(f"models:/{name}/{settings.stage}" if settings.stage else f"models:/{name}@{settings.alias}")
    access.require(
        "load " + ", ".join(uris),
        models=[registry.name_in_uri(uri) for uri in uris],
        model_level="READ",
    )
    resolved, missing = [], []
    for uri in uris:
        body = uri.removeprefix("models:/")
        try:
            if "@" in body:
                name, alias = body.split("@", 1)
                version = client.get_model_version_by_alias(name, alias)
            else:
                name, which = body.split("/", 1)
                if which.isdigit():
                    version = client.get_model_version(name, which)
                else:
                    import warnings

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", FutureWarning)
                        found = client.get_latest_versions(name, stages=[which])
                    if not found:
                        raise MlflowException(f"no version in stage {which}")
                    version = found[0]
        except (MlflowException, ValueError) as error:
            missing.append(f"{uri} ({str(error).splitlines()[0][:120]})")
            continue
        label = name.removeprefix("deepfake-")
        resolved.append(ResolvedModel(label, uri, name, str(version.version)))
    if missing and not settings.skip_missing:
        raise MissingModelError(
            "registered model(s) not found: " + "; ".join(missing) + ". Train them first, or pass --skip-missing true"
        )
    for item in missing:
        log.warning("skipping missing model %s", item)
        print(f"warning: skipping missing model {item}")
    if not resolved:
        raise MissingModelError("none of the requested models exist; train them first")
    return resolved


def _markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".3f") + "\n"


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
                robust.setdefault(row.model, {})[f"robustness_{row.perturbation}_roc_auc"] = float(row.roc_auc)
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


def _embeddings(settings: CompareSettings, model: ResolvedModel, detector, parts: dict, digest: str):
    """``(embeddings, head outputs, folders)`` of every split, streamed to and mapped from disk."""
    from deepfake_detection.embeddings import cached_extract

    size = detector.config.image_size
    embeddings, heads, folders = {}, {}, []
    for split in SPLITS:
        folder = (
            Path(settings.work_dir) / "embeddings" / f"{model.name}-v{model.version}-{digest}-{size}px-"
            f"{split}-n{len(parts[split])}-s{settings.seed}"
        )
        stored = cached_extract(folder, detector.keras_model, settings.data, parts[split], size, settings.batch_size)
        embeddings[split], heads[split] = stored.embedding, stored.p_fake
        folders.append(folder)
    return embeddings, heads, folders


def compute_comparison(
    settings: CompareSettings, parts: dict[str, pd.DataFrame], models: list[ResolvedModel], digest: str
) -> Comparison:
    """Each model's CNN head and PCA + SVM classifier(s), and the robustness pass when asked for."""
    from deepfake_detection.model import load_detector

    y = {s: evaluation.fake_labels(parts[s]) for s in SPLITS}
    svm = analysis.SVMSettings(
        n_components=settings.n_components, degree=settings.degree, C=settings.svm_c, seed=settings.seed
    )
    exact_runs = len(parts["train"]) <= settings.exact_max_samples
    records, robust, files = [], [], []
    for model in models:
        detector = load_detector(f"models:/{model.name}/{model.version}")
        embeddings, heads, paths = _embeddings(settings, model, detector, parts, digest)
        files += [(model.label, path) for path in paths]
        if settings.robustness:
            from deepfake_detection import robustness

            robust += robustness.evaluate(detector, parts["test"], model.label, settings.batch_size)
        dim = embeddings["test"].shape[1]
        threshold = detector.config.threshold
        records.append(cnn_head_result(model, y["test"], heads["test"], threshold, dim, seed=settings.seed))
        # The PCA is analysed on the first SVM: the exact one where it runs, else the Nystroem one.
        records.append(pca_svm_result(model, embeddings, y, svm, approximate=not exact_runs, analyse_pca=True))
        if exact_runs and settings.approximate_too:
            records.append(pca_svm_result(model, embeddings, y, svm, approximate=True))
    return Comparison(tuple(records), pd.DataFrame(robust) if robust else None, tuple(files))


def _figures(comparison: Comparison) -> dict:
    """File name → Figure."""
    from deepfake_detection import plots

    figures = {
        "roc_overlay.png": plots.roc_panels_figure(comparison.roc_panels()),
        "pca_explained_variance.png": plots.explained_variance_figure(comparison.explained_variance()),
        "pca_scatter.png": plots.pca_scatter_figure(comparison.pca_points(), comparison.explained_variance()),
        "confusion_matrices.png": plots.confusion_grid_figure(comparison.confusions()),
    }
    if comparison.robustness is not None:
        from deepfake_detection.robustness import robustness_figure

        figures["robustness.png"] = robustness_figure(comparison.robustness)
    return figures


def write_and_log(comparison: Comparison, differences: pd.DataFrame, report: Path, dataset=None) -> None:
    """Write the report files under ``report`` and log them, the metrics, embeddings and plots to
    the active run; one child run per model and classifier, with ``dataset`` as its input."""
    import matplotlib.pyplot as plt
    import mlflow

    for label, folder in comparison.embedding_files:
        mlflow.log_artifacts(str(folder), artifact_path=f"embeddings/{label}/{folder.name}")
    for name, params, metrics in comparison.classifier_runs():  # long format: one run per model and classifier
        tags = {
            "step": "compare-classifier",
            "positive_class": "fake",
            **{k: str(params[k]) for k in ("architecture", "classifier")},
        }
        with tracking.run(name, tags=tags):
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            if dataset is not None:
                tracking.log_input(dataset, context="evaluation")
    table = comparison.table()
    mlflow.log_table(table.assign(version=table["version"].astype(str)), "comparison.json")
    report.mkdir(parents=True, exist_ok=True)
    table.to_csv(report / "comparison.csv", index=False)
    (report / "comparison.md").write_text(
        "Positive class: fake (1). Test split; `_ci_low` / `_ci_high`: 95 % stratified bootstrap interval.\n\n"
        + _markdown(table)
    )
    differences.to_csv(report / "differences.csv", index=False)
    (report / "differences.md").write_text(
        "Test ROC-AUC of a minus b, paired bootstrap on the same test images, 95 % interval "
        "(positive class: fake). Significant when the interval excludes 0.\n\n" + _markdown(differences)
    )
    mlflow.log_metric("significant_differences", int(differences["significant"].sum()))
    table.to_html(report / "comparison.html", index=False, float_format=lambda v: f"{v:.3f}")
    mlflow.log_artifacts(str(report), artifact_path="report")  # the whole folder, with what earlier runs left there
    if comparison.robustness is not None:
        from deepfake_detection.robustness import pivot

        comparison.robustness.to_csv(report / "robustness.csv", index=False)
        (report / "robustness.md").write_text(
            "Test ROC-AUC per perturbation (positive class: fake).\n\n"
            + _markdown(pivot(comparison.robustness).reset_index())
        )
        for name in ("robustness.csv", "robustness.md"):
            mlflow.log_artifact(str(report / name), artifact_path="report")
    for name, figure in _figures(comparison).items():
        mlflow.log_figure(figure, f"plots/{name}")
        figure.savefig(report / name, dpi=100)
        plt.close(figure)


def run_compare(settings: CompareSettings) -> pd.DataFrame:
    """The whole compare entry point; returns the comparison table."""
    import mlflow

    from deepfake_detection.data.pipeline import load_splits, sample

    tracking.configure()
    access.require(
        f"log compare runs in experiment {settings.experiment!r} (readers compare with --experiment "
        f"{access.COMPARISONS})",
        experiment=settings.experiment,
        experiment_level="EDIT",
    )
    parts = load_splits(settings.data, settings.num_samples, settings.seed, SPLITS)
    # PCA + SVM are fit on train and thresholded on valid: a capped share of them is enough.
    parts |= {s: sample(parts[s], settings.fit_samples, settings.seed) for s in ("train", "valid")}
    models = resolve_models(settings)
    digest = tracking.dataset_digest_of(settings.data)
    tags = {f"model.{m.label}": f"{m.name}/{m.version}" for m in models}
    with tracking.run(
        "compare",
        experiment=settings.experiment,
        tags={**tags, "step": "compare", "dataset_digest": digest, "positive_class": "fake"},
    ):
        mlflow.log_params({f"compare.{k}": v for k, v in asdict(settings).items()})
        dataset = tracking.log_dataset_input(settings.data, parts, digest, context="evaluation")
        comparison = compute_comparison(settings, parts, models, digest)
        differences = comparison.differences(seed=settings.seed)
        write_and_log(comparison, differences, Path(settings.work_dir) / "report", dataset)
        views.publish(mlflow.active_run().info.experiment_id)
    table = comparison.table()
    table.attrs["differences"] = differences
    return table
