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
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from deepfake_detection import analysis, evaluation, registry, tracking, views
from deepfake_detection.access import client as access
from deepfake_detection.comparison import (
    TABLE_METRICS,
    ClassifierResult,
    Comparison,
    PCAAnalysis,
    ResolvedModel,
    cnn_head_result,
    pca_svm_result,
)
from deepfake_detection.comparison_report import write_and_log
from deepfake_detection.config import CompareSettings
from deepfake_detection.errors import MissingModelError

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


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

            robust.append(robustness.evaluate(detector, parts["test"], model.label, settings.batch_size))
        dim = embeddings["test"].shape[1]
        threshold = detector.config.threshold
        records.append(cnn_head_result(model, y["test"], heads["test"], threshold, dim, seed=settings.seed))
        # The PCA is analysed on the first SVM: the exact one where it runs, else the Nystroem one.
        records.append(pca_svm_result(model, embeddings, y, svm, approximate=not exact_runs, analyse_pca=True))
        if exact_runs and settings.approximate_too:
            records.append(pca_svm_result(model, embeddings, y, svm, approximate=True))
    return Comparison(tuple(records), pd.concat(robust, ignore_index=True) if robust else None, tuple(files))


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


__all__ = [
    "TABLE_METRICS",
    "ClassifierResult",
    "Comparison",
    "PCAAnalysis",
    "ResolvedModel",
    "cnn_head_result",
    "pca_svm_result",
    "run_compare",
]
