"""``compare``: registered models → embeddings → PCA + polynomial SVM, one report and one run.

For each model: the CNN's own head (its threshold from training) next to StandardScaler →
PCA → SVC(poly) fit on the train embeddings, thresholded on valid and scored on test; where
the exact SVM can run, the Nystroem approximation is reported beside it with fit times.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detection import tracking
from deepfake_detection.config import CompareSettings
from deepfake_detection.errors import MissingModelError

log = logging.getLogger(__name__)
TABLE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")
SPLITS = ("train", "valid", "test")


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
            name = tracking.registered_name(arch)
            uris.append(f"models:/{name}/{settings.stage}" if settings.stage else f"models:/{name}@{settings.alias}")
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
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = [
        "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows]) + "\n"


def run_compare(settings: CompareSettings) -> pd.DataFrame:
    """The whole compare entry point; returns the comparison table."""
    import matplotlib.pyplot as plt
    import mlflow

    from deepfake_detection import analysis, evaluation, plots
    from deepfake_detection.data.pipeline import load_splits
    from deepfake_detection.embeddings import cached_extract
    from deepfake_detection.model import load_detector

    tracking.configure()
    parts = load_splits(settings.data, settings.num_samples, settings.seed, SPLITS)
    models = resolve_models(settings)
    digest = tracking.dataset_digest_of(settings.data)
    y = {s: (parts[s]["label"] == "fake").to_numpy().astype(int) for s in SPLITS}
    svm = analysis.SVMSettings(
        n_components=settings.n_components, degree=settings.degree, C=settings.svm_c, seed=settings.seed
    )
    exact_runs = len(parts["train"]) <= settings.exact_max_samples

    rows, curves, pcs, variances, confusions, robust = [], {}, {}, {}, {}, []
    tags = {f"model.{m.label}": f"{m.name}/{m.version}" for m in models}
    with tracking.run("compare", tags={**tags, "step": "compare", "dataset_digest": digest, "positive_class": "fake"}):
        mlflow.log_params({f"compare.{k}": v for k, v in asdict(settings).items()})
        for model in models:
            detector = load_detector(f"models:/{model.name}/{model.version}")
            size = detector.config.image_size
            embeddings, heads = {}, {}
            for split in SPLITS:
                cache = (
                    Path(settings.work_dir) / "embeddings" / f"{model.name}-v{model.version}-{digest}-{size}px-"
                    f"{split}-n{settings.num_samples}-s{settings.seed}.npz"
                )
                embeddings[split], heads[split] = cached_extract(
                    cache, detector.keras_model, settings.data, parts[split], size, settings.batch_size
                )
                mlflow.log_artifact(str(cache), artifact_path=f"embeddings/{model.label}")
            if settings.robustness:
                from deepfake_detection import robustness

                robust.extend(robustness.evaluate(detector, parts["test"], model.label, settings.batch_size))
            head = evaluation.binary_metrics(y["test"], heads["test"], detector.config.threshold)
            rows.append(
                {
                    "model": model.label,
                    "version": model.version,
                    "classifier": "cnn_head",
                    "embedding_dim": embeddings["test"].shape[1],
                    "fit_seconds": float("nan"),
                    **{k: head[k] for k in TABLE_METRICS},
                }
            )
            curves[f"{model.label} CNN head"] = (y["test"], heads["test"])
            confusions[f"{model.label} CNN head"] = head
            kinds = [("pca_svm", False), ("pca_svm_nystroem", True)] if exact_runs else [("pca_svm_nystroem", True)]
            for kind, approximate in kinds:
                started = time.perf_counter()
                pipeline = analysis.fit_pca_svm(embeddings["train"], y["train"], svm, approximate=approximate)
                seconds = time.perf_counter() - started
                threshold = evaluation.choose_threshold(y["valid"], analysis.svm_scores(pipeline, embeddings["valid"]))
                scores = analysis.svm_scores(pipeline, embeddings["test"])
                result = evaluation.binary_metrics(y["test"], scores, threshold)
                rows.append(
                    {
                        "model": model.label,
                        "version": model.version,
                        "classifier": kind,
                        "embedding_dim": embeddings["test"].shape[1],
                        "fit_seconds": seconds,
                        **{k: result[k] for k in TABLE_METRICS},
                    }
                )
                curves[f"{model.label} PCA+SVM{' (Nystroem)' if approximate else ''}"] = (y["test"], scores)
                if kind == kinds[0][0]:
                    confusions[f"{model.label} PCA+SVM"] = result
                    pca = pipeline.named_steps["pca"]
                    variances[model.label] = np.cumsum(pca.explained_variance_ratio_)
                    components = analysis.principal_components(pipeline, embeddings["test"])
                    pcs[model.label] = (components[:, :2], y["test"])
                    ari = analysis.kmeans_ari(components, y["test"], settings.seed)
                    rows[-1]["kmeans_ari"] = ari
                    mlflow.log_metrics(
                        {f"{model.label}_pca_fit_rows": pca.n_samples_, f"{model.label}_kmeans_ari": ari}
                    )

        table = pd.DataFrame(rows)
        if "kmeans_ari" not in table:
            table["kmeans_ari"] = np.nan
        table = table[["model", "version", "classifier", *TABLE_METRICS, "kmeans_ari", "embedding_dim", "fit_seconds"]]
        for row in table.itertuples(index=False):
            mlflow.log_metrics({f"{row.model}_{row.classifier}_{k}": getattr(row, k) for k in TABLE_METRICS})
        report = Path(settings.work_dir) / "report"
        report.mkdir(parents=True, exist_ok=True)
        table.to_csv(report / "comparison.csv", index=False)
        (report / "comparison.md").write_text("Positive class: fake (1). Test split.\n\n" + _markdown(table))
        table.to_html(report / "comparison.html", index=False, float_format=lambda v: f"{v:.3f}")
        mlflow.log_artifacts(str(report), artifact_path="report")
        figures = {
            "roc_overlay.png": plots.roc_figure(curves, title="Test ROC, all models (positive class: fake)"),
            "pca_explained_variance.png": plots.explained_variance_figure(variances),
            "pca_scatter.png": plots.pca_scatter_figure(pcs),
            "confusion_matrices.png": plots.confusion_grid_figure(confusions),
        }
        if robust:
            from deepfake_detection.robustness import pivot, robustness_figure

            robust_table = pd.DataFrame(robust)
            robust_table.to_csv(report / "robustness.csv", index=False)
            (report / "robustness.md").write_text(
                "Test ROC-AUC per perturbation (positive class: fake).\n\n"
                + _markdown(pivot(robust_table).reset_index())
            )
            mlflow.log_artifact(str(report / "robustness.csv"), artifact_path="report")
            mlflow.log_artifact(str(report / "robustness.md"), artifact_path="report")
            for row in robust_table.itertuples(index=False):
                mlflow.log_metric(f"robustness_{row.model}_{row.perturbation}_roc_auc", row.roc_auc)
            figures["robustness.png"] = robustness_figure(robust_table)
            table.attrs["robustness"] = robust_table
        for name, figure in figures.items():
            mlflow.log_figure(figure, f"plots/{name}")
            figure.savefig(report / name, dpi=100)
            plt.close(figure)
    return table
