"""compare: registered models → embeddings → PCA + polynomial SVM, report and plots."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn import metrics as skm

from deepfake_detection import analysis, evaluation, plots
from deepfake_detection.compare import (
    TABLE_METRICS,
    ClassifierResult,
    Comparison,
    MissingModelError,
    PCAAnalysis,
    ResolvedModel,
    cnn_head_result,
    pca_svm_result,
    run_compare,
)
from deepfake_detection.config import CompareSettings
from deepfake_detection.degradations import STANDARD

Y = np.array([0, 0, 0, 1, 1, 1, 1])
SEPARATED = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 0.95])  # every fake above every real
NOISY = np.array([0.1, 0.6, 0.3, 0.4, 0.8, 0.9, 0.2])


def _model(label: str) -> ResolvedModel:
    return ResolvedModel(label, f"models:/deepfake-{label}@champion", f"deepfake-{label}", "2")


def _records(label: str, worst_metrics: dict) -> tuple[ClassifierResult, ...]:
    """A perfect CNN head and two hand-made SVMs that rank every fake below every real."""
    worst = SEPARATED[::-1]
    pca = PCAAnalysis(
        fit_rows=10, cumulative_variance=np.array([0.6, 0.9]), test_components=np.ones((7, 2)), kmeans_ari=0.25
    )
    return (
        cnn_head_result(_model(label), Y, SEPARATED, threshold=0.5, embedding_dim=4),
        ClassifierResult(label, "2", "pca_svm", 4, 1.5, 0.5, Y, worst, worst_metrics, pca),
        ClassifierResult(label, "2", "pca_svm_nystroem", 4, 0.5, 0.5, Y, worst, worst_metrics),
    )


@pytest.fixture(scope="module")  # its tests run on one worker (conftest's ONE_WORKER_FIXTURES)
def comparison_records() -> dict[str, tuple[ClassifierResult, ...]]:
    """The records of models "a" and "b", made once: each bootstrap of their metrics takes seconds."""
    worst_metrics = evaluation.metrics_with_intervals(Y, SEPARATED[::-1], 0.5)
    return {label: _records(label, worst_metrics) for label in "ab"}


@pytest.fixture
def comparison(comparison_records) -> Comparison:
    robust = pd.DataFrame([{"model": "a", "degradation": "none", "roc_auc": 0.75, "accuracy": 0.5, "mean_p_fake": 0.4}])
    return Comparison((*comparison_records["a"], *comparison_records["b"]), robustness=robust)


TAIL = ["kmeans_ari", "embedding_dim", "fit_seconds"]


def test_a_perfectly_separating_head_scores_one_and_counts_by_its_threshold():
    result = cnn_head_result(_model("a"), Y, SEPARATED, threshold=0.85, embedding_dim=4)
    assert result.metrics["roc_auc"] == 1.0 and result.metrics["average_precision"] == 1.0
    assert {k: result.metrics[k] for k in ("tn", "fp", "fn", "tp")} == {"tn": 3, "fp": 0, "fn": 2, "tp": 2}
    assert result.metrics["precision"] == 1.0 and result.metrics["recall"] == 0.5
    assert result.name == "a CNN head" and result.pca is None and np.isnan(result.fit_seconds)


def test_comparison_table_rows_and_metrics_of_two_models(comparison, comparison_records):
    worst_ap = np.mean([1 / 4, 2 / 5, 3 / 6, 4 / 7])  # precision at each fake, ranked last
    rows = [
        [label, "2", classifier, *values, ari, 4, seconds]
        for label in ("a", "b")
        for classifier, values, ari, seconds in (
            ("cnn_head", [1.0] * 6, np.nan, np.nan),
            ("pca_svm", [1 / 7, 0.25, 0.25, 0.25, 0.0, worst_ap], 0.25, 1.5),
            ("pca_svm_nystroem", [1 / 7, 0.25, 0.25, 0.25, 0.0, worst_ap], np.nan, 0.5),
        )
    ]
    table = comparison.table()
    with_intervals = [f"{m}{end}" for m in TABLE_METRICS for end in ("", "_ci_low", "_ci_high")]
    assert list(table.columns) == ["model", "version", "classifier", *with_intervals, *TAIL]
    shown = ["model", "version", "classifier", *TABLE_METRICS, *TAIL]
    pd.testing.assert_frame_equal(table[shown], pd.DataFrame(rows, columns=shown))
    for metric in TABLE_METRICS:  # each interval holds its estimate
        assert ((table[f"{metric}_ci_low"] <= table[metric]) & (table[metric] <= table[f"{metric}_ci_high"])).all()
    assert table.attrs["robustness"] is comparison.robustness

    runs = comparison.classifier_runs()
    assert [name for name, _, _ in runs] == [
        f"compare-{m}-{c}" for m in "ab" for c in ("cnn_head", "pca_svm", "pca_svm_nystroem")
    ]
    extras = {"fit_seconds", "pca_fit_rows", "kmeans_ari", "robustness_none_roc_auc"}
    keys = {frozenset(set(metrics) - extras) for _, _, metrics in runs}
    assert len(keys) == 1 and set(with_intervals) <= next(iter(keys))  # the same keys in every run
    by_name = {name: (params, metrics) for name, params, metrics in runs}
    params, metrics = by_name["compare-a-pca_svm"]
    assert params == {"architecture": "a", "classifier": "pca_svm", "version": "2", "embedding_dim": 4}
    assert metrics["pca_fit_rows"] == 10 and metrics["kmeans_ari"] == 0.25 and metrics["roc_auc"] == 0.0
    assert by_name["compare-b-cnn_head"][1]["f1"] == 1.0 and "fit_seconds" not in by_name["compare-b-cnn_head"][1]
    assert by_name["compare-a-cnn_head"][1]["robustness_none_roc_auc"] == 0.75

    confusions = comparison.confusions()
    assert list(confusions) == [f"{m} {c}" for m in "ab" for c in ("CNN head", "PCA+SVM", "PCA+SVM (Nystroem)")]
    assert [confusions["b PCA+SVM"][k] for k in ("tn", "fp", "fn", "tp")] == [0, 3, 3, 1]
    assert list(comparison.explained_variance()) == ["a", "b"] and list(comparison.pca_points()) == ["a", "b"]
    assert Comparison(comparison_records["a"]).table().attrs == {}


def test_roc_curves_are_sklearns(comparison_records):
    panels = Comparison((cnn_head_result(_model("a"), Y, NOISY, 0.5, 4), *comparison_records["a"][1:])).roc_panels()
    assert {c: list(m) for c, m in panels.items()} == {"CNN head": ["a"], "PCA+SVM": ["a"], "PCA+SVM (Nystroem)": ["a"]}
    fpr, tpr, _ = skm.roc_curve(Y, NOISY)
    np.testing.assert_array_equal(panels["CNN head"]["a"].fpr, fpr)
    np.testing.assert_array_equal(panels["CNN head"]["a"].tpr, tpr)
    assert panels["CNN head"]["a"].auc == skm.roc_auc_score(Y, NOISY)
    assert panels["PCA+SVM"]["a"].auc == 0.0
    precision, recall, _ = skm.precision_recall_curve(Y, NOISY)
    pr = evaluation.pr_points(Y, NOISY)
    np.testing.assert_array_equal(pr.precision, precision)
    np.testing.assert_array_equal(pr.recall, recall)
    assert pr.average_precision == skm.average_precision_score(Y, NOISY) and pr.prevalence == 4 / 7


def test_plots_draw_exactly_the_computed_curves_and_counts(comparison):
    import matplotlib.pyplot as plt

    roc = evaluation.roc_points(Y, NOISY)
    axis = plots.roc_figure({"a test": roc}).axes[0]
    line, chance = axis.lines
    np.testing.assert_array_equal(line.get_xydata(), np.column_stack([roc.fpr, roc.tpr]))
    np.testing.assert_array_equal(chance.get_xydata(), [[0, 0], [1, 1]])
    assert line.get_label() == f"a test (AUC = {roc.auc:.2f})"  # scikit-learn's RocCurveDisplay
    assert axis.get_xlabel() == "false positive rate (real called fake)"

    pr = evaluation.pr_points(Y, NOISY)
    axis = plots.pr_figure(pr).axes[0]
    line, chance = axis.lines
    np.testing.assert_array_equal(line.get_xydata(), np.column_stack([pr.recall, pr.precision]))
    assert line.get_label() == f"AP = {pr.average_precision:.2f}" and list(chance.get_ydata()) == [4 / 7, 4 / 7]
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("recall (fake)", "precision (fake)")

    axis = plots.confusion_figure({"tn": 3, "fp": 1, "fn": 2, "tp": 5}, title="t").axes[0]
    assert [t.get_text() for t in axis.texts] == ["3", "1", "2", "5"]  # rows true, columns predicted
    np.testing.assert_array_equal(axis.images[0].get_array(), [[3, 1], [2, 5]])
    grid = plots.confusion_grid_figure(comparison.confusions())
    titles = [a.get_title() for a in grid.axes if a.axison]
    assert titles == [f"{m} {c}" for m in "ab" for c in ("CNN head", "PCA+SVM", "PCA+SVM (Nystroem)")]
    plt.close("all")


def test_comparison_plots_are_readable(comparison):
    """One ROC panel per classifier with a model's style kept across panels; counts readable on
    their cells; PCA axes with their variance; integer epochs."""
    import matplotlib.pyplot as plt

    figure = plots.roc_panels_figure(comparison.roc_panels())
    assert [a.get_title() for a in figure.axes] == ["CNN head", "PCA+SVM", "PCA+SVM (Nystroem)"]
    for axis in figure.axes:
        lines = {line.get_label().split(" (AUC")[0]: line for line in axis.lines[:2]}
        assert set(lines) == {"a", "b"} and lines["a"].get_color() != lines["b"].get_color()
    colours = {(a.lines[0].get_color(), a.lines[0].get_linestyle()) for a in figure.axes}
    assert len(colours) == 1  # model "a" looks the same in every panel
    styles = {tuple(plots.line_style(i).values()) for i in range(20)}
    assert len(styles) == 20  # twenty models, twenty looks

    axis = plots.confusion_figure({"tn": 1000, "fp": 430, "fn": 10, "tp": 990}).axes[0]
    colours = {t.get_text(): t.get_color() for t in axis.texts}
    # 990 and 1000 sit on dark cells, 10 on a white one; 430 is a light blue cell just under the middle.
    assert (colours["1000"], colours["990"], colours["10"], colours["430"]) == ("white", "white", "black", "black")

    cumulative = {"a": np.array([0.6, 0.9])}
    axis = plots.pca_scatter_figure({"a": (np.ones((7, 2)), Y)}, cumulative).axes[0]
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("PC 1 (60% of variance)", "PC 2 (30% of variance)")

    axis = plots.training_curves_figure({"loss": [0.7, 0.6, 0.5], "val_loss": [0.8, 0.7, 0.6]}).axes[0]
    figure = axis.figure
    figure.canvas.draw()
    assert all(float(t).is_integer() for t in axis.get_xticks() if 1 <= t <= 3)
    plt.close("all")


@pytest.mark.slow  # three 1,000-resample bootstraps
def test_pca_svm_result_is_the_pipeline_fit_on_train():
    rng = np.random.default_rng(2)
    y = {split: np.arange(n) % 2 for split, n in (("train", 60), ("valid", 20), ("test", 30))}
    embeddings = {split: rng.normal(0, 1, (len(labels), 16)) + labels[:, None] for split, labels in y.items()}
    svm = analysis.SVMSettings(n_components=5)
    exact = pca_svm_result(_model("a"), embeddings, y, svm, analyse_pca=True)
    approx = pca_svm_result(_model("a"), embeddings, y, svm, approximate=True)
    assert (exact.classifier, approx.classifier) == ("pca_svm", "pca_svm_nystroem") and approx.pca is None
    assert (exact.model, exact.version, exact.embedding_dim) == ("a", "2", 16) and exact.fit_seconds > 0

    pipeline = analysis.fit_pca_svm(embeddings["train"], y["train"], svm)
    np.testing.assert_allclose(exact.scores, analysis.svm_scores(pipeline, embeddings["test"]))
    assert exact.threshold == evaluation.choose_threshold(
        y["valid"], analysis.svm_scores(pipeline, embeddings["valid"])
    )
    assert exact.metrics == evaluation.metrics_with_intervals(y["test"], exact.scores, exact.threshold, seed=svm.seed)
    components = analysis.principal_components(pipeline, embeddings["test"])
    assert exact.pca.fit_rows == 60
    np.testing.assert_allclose(exact.pca.test_components, components[:, :2])
    np.testing.assert_allclose(
        exact.pca.cumulative_variance, np.cumsum(pipeline.named_steps["pca"].explained_variance_ratio_)
    )
    assert exact.pca.kmeans_ari == analysis.kmeans_ari(components, y["test"], svm.seed)


def test_pca_is_fit_on_train_rows_only():
    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(0, 1, (60, 20)), rng.normal(5, 3, (40, 20))  # test is shifted on purpose
    train_y = np.arange(60) % 2
    pipeline = analysis.fit_pca_svm(train_x, train_y, analysis.SVMSettings(n_components=5))
    scaler, pca = pipeline.named_steps["scaler"], pipeline.named_steps["pca"]
    assert scaler.n_samples_seen_ == 60 and pca.n_samples_ == 60
    np.testing.assert_allclose(scaler.mean_, train_x.mean(axis=0))
    leaky = np.concatenate([train_x, test_x]).mean(axis=0)
    assert np.abs(scaler.mean_ - leaky).max() > 1.0  # what a fit on all rows would have learned
    assert pca.n_components_ == 5
    scores = analysis.svm_scores(pipeline, test_x)
    assert scores.shape == (40,) and np.all((scores >= 0) & (scores <= 1))


def test_exact_and_approximate_kernels_agree_on_an_easy_problem():
    rng = np.random.default_rng(1)
    latent = rng.normal(0, 1, (400, 4))
    x = latent @ rng.normal(0, 1, (4, 30)) + rng.normal(0, 0.05, (400, 30))  # embeddings live in 4 dimensions
    y = (latent[:, 0] * latent[:, 1] + latent[:, 2] > 0).astype(int)
    settings = analysis.SVMSettings(n_components=10, landmarks=200)
    exact = analysis.fit_pca_svm(x[:300], y[:300], settings)
    approx = analysis.fit_pca_svm(x[:300], y[:300], settings, approximate=True)
    from sklearn.metrics import roc_auc_score

    auc_exact = roc_auc_score(y[300:], analysis.svm_scores(exact, x[300:]))
    auc_approx = roc_auc_score(y[300:], analysis.svm_scores(approx, x[300:]))
    assert auc_exact > 0.8 and abs(auc_exact - auc_approx) < 0.1


def test_kmeans_ari_is_one_when_the_labels_follow_the_clusters_and_known_when_they_cross_them():
    rng = np.random.default_rng(3)
    blobs = np.concatenate([rng.normal(-5, 0.3, (20, 2)), rng.normal(5, 0.3, (20, 2))])  # two far-apart clusters
    follows = np.repeat([0, 1], 20)
    assert analysis.kmeans_ari(blobs, follows) == 1.0
    assert analysis.kmeans_ari(blobs, 1 - follows) == 1.0  # however k-means numbers its clusters
    crossed = np.tile([0, 1], 20)  # half of each cluster in each class: a 2 x 2 table of tens
    # By hand: pairs together in both = 4 C(10, 2) = 180; in each alone: 2 C(20, 2) = 380 (both ways);
    # expected by chance 380 * 380 / C(40, 2); ARI = (180 - expected) / (380 - expected), about -0.026.
    expected = 380 * 380 / 780
    assert analysis.kmeans_ari(blobs, crossed) == pytest.approx((180 - expected) / (380 - expected))


@pytest.mark.train
def test_compare_report_from_registered_models(shared_store, shared_comparison):
    bench_dataset, outputs, table = shared_store.data, shared_store.root / "outputs", shared_comparison.table
    assert list(table["model"]) == ["custom_a"] * 3 + ["custom_c"] * 3
    assert list(table["classifier"][:3]) == ["cnn_head", "pca_svm", "pca_svm_nystroem"]
    assert set(table["embedding_dim"]) == {512}
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision"):
        assert (table[f"{metric}_ci_low"] <= table[metric]).all() and (
            table[metric] <= table[f"{metric}_ci_high"]
        ).all()
    # The CNN head scores what training scored: the registered (calibrated) model, its own threshold.
    for arch in ("custom_a", "custom_c"):
        trained = shared_store.architecture_run(arch).data.metrics
        head = table.query(f"model == '{arch}' and classifier == 'cnn_head'").iloc[0]
        assert head["roc_auc"] == pytest.approx(trained["test_roc_auc"], abs=1e-3)
        assert head["accuracy"] == pytest.approx(trained["test_accuracy"], abs=1e-9)
    differences = table.attrs["differences"]
    assert len(differences) == 3 + 2  # one pair per classifier (2 models), plus head vs PCA+SVM per model
    assert (differences["significant"] == ((differences["ci_low"] > 0) | (differences["ci_high"] < 0))).all()

    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    run = client.get_run(shared_comparison.run_id)
    assert run.data.tags["model.custom_a"] == "deepfake-custom_a/1"
    assert run.data.tags["model.custom_c"] == "deepfake-custom_c/1"
    train_rows = (pd.read_csv(bench_dataset / "manifest.csv").split == "train").sum()
    # Long format: one child run per model and classifier, the same metric keys in each.
    children = {
        c.info.run_name: c
        for c in client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    }
    assert len(children) == len(table) == 6
    assert children["compare-custom_a-pca_svm"].data.metrics["pca_fit_rows"] == train_rows  # PCA saw train only
    for row in table.itertuples(index=False):
        child = children[f"compare-{row.model}-{row.classifier}"]
        assert (child.data.params["architecture"], child.data.params["classifier"]) == (row.model, row.classifier)
        for metric in TABLE_METRICS:
            assert child.data.metrics[metric] == pytest.approx(getattr(row, metric))
    aris = table.query("classifier == 'pca_svm'").set_index("model")["kmeans_ari"]
    assert children["compare-custom_c-pca_svm"].data.metrics["kmeans_ari"] == pytest.approx(aris["custom_c"])
    assert not [k for k in run.data.metrics if k.startswith(("custom_a_", "custom_c_"))]  # no wide keys left
    assert "comparison.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # The dataset is an input of compare and of each classifier run, in the evaluation context.
    for logged in (run, *children.values()):
        (used,) = logged.inputs.dataset_inputs
        assert used.dataset.digest == run.data.tags["dataset_digest"]
        assert {t.key: t.value for t in used.tags}["mlflow.data.context"] == "evaluation"
    view = json.loads(client.get_experiment(experiment.experiment_id).tags["mlflow.sharedViewState.comparison"])
    ranked = client.search_runs([experiment.experiment_id], view["searchFilter"], order_by=["metrics.roc_auc DESC"])
    assert {r.info.run_id for r in ranked} == {c.info.run_id for c in children.values()}
    report = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report"))
    csv = pd.read_csv(report / "comparison.csv")
    assert len(csv) == 6 and "fake" in (report / "comparison.md").read_text()
    pd.testing.assert_frame_equal(csv.astype({"version": str}), table)
    assert "<table" in (report / "comparison.html").read_text()
    plots = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="plots"))
    names = {p.name for p in plots.glob("*.png")}
    assert names == {
        "roc_overlay.png",
        "pca_explained_variance.png",
        "pca_scatter.png",
        "confusion_matrices.png",
        "robustness.png",
    }
    robust = pd.read_csv(report / "robustness.csv")
    assert len(robust) == 2 * 12 and robust["roc_auc"].between(0, 1).all()
    assert list(robust["degradation"][:12]) == ["none", *(d.name for d in STANDARD)]
    assert (robust["roc_auc_ci_low"] <= robust["roc_auc"]).all() and (
        robust["roc_auc"] <= robust["roc_auc_ci_high"]
    ).all()
    # Undegraded, the robustness pass scores exactly what the CNN head did in the table.
    none = robust.query("degradation == 'none'").set_index("model")["roc_auc"]
    heads = table.query("classifier == 'cnn_head'").set_index("model")["roc_auc"]
    np.testing.assert_allclose(none.loc[["custom_a", "custom_c"]], heads.loc[["custom_a", "custom_c"]], atol=1e-6)
    assert "robustness_jpeg_q50_roc_auc" in children["compare-custom_c-cnn_head"].data.metrics
    for png in plots.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    embeddings = {a.path for a in client.list_artifacts(run.info.run_id, "embeddings/custom_a")}
    assert len(embeddings) == 3
    folder = next(Path(outputs / "embeddings").glob("deepfake-custom_a-v1-*-test-*"))
    stored = np.load(folder / "embedding.npy", mmap_mode="r")  # on disk, mapped, never loaded whole
    rows = pd.read_csv(folder / "rows.csv")
    assert stored.shape == (len(rows), 512) and set(rows["label"]) == {"real", "fake"}
    assert (rows["target"] == (rows["label"] == "fake")).all()
    logged = {a.path for a in client.list_artifacts(run.info.run_id, f"embeddings/custom_a/{folder.name}")}
    assert {p.rsplit("/", 1)[1] for p in logged} == {"embedding.npy", "p_fake.npy", "rows.csv"}

    # By stage, with the embeddings cache reused; and a clear error for a model that is not there.
    by_stage = run_compare(
        CompareSettings(
            models="custom_a",
            stage="Production",
            data=str(bench_dataset),
            n_components=8,
            work_dir=str(outputs),
        )
    )
    pd.testing.assert_frame_equal(
        by_stage.drop(columns="fit_seconds"),
        table[table.model == "custom_a"].drop(columns="fit_seconds").reset_index(drop=True),
    )
    with pytest.raises(MissingModelError, match="deepfake-vggface16@champion"):
        run_compare(
            CompareSettings(models="custom_a,vggface16", data=str(bench_dataset), n_components=8, work_dir=str(outputs))
        )
    skipped = run_compare(
        CompareSettings(
            models="custom_a,vggface16",
            data=str(bench_dataset),
            n_components=8,
            skip_missing=True,
            work_dir=str(outputs),
        )
    )
    assert set(skipped["model"]) == {"custom_a"}


def test_exact_and_nystroem_svms_share_one_kernel_and_converge():
    from scipy.stats import spearmanr
    from sklearn.metrics.pairwise import polynomial_kernel

    rng = np.random.default_rng(1)
    latent = rng.normal(0, 1, (500, 4))
    x = latent @ rng.normal(0, 1, (4, 30)) + rng.normal(0, 0.3, (500, 30))
    y = (latent[:, 0] * latent[:, 1] + latent[:, 2] > 0).astype(int)
    exact = analysis.fit_pca_svm(x[:300], y[:300], analysis.SVMSettings(n_components=10))
    gamma = exact.named_steps["svm"]._gamma  # what SVC(gamma="scale") resolved to
    components = analysis.principal_components(exact, x[:300])
    kernel = polynomial_kernel(components, degree=3, gamma=gamma, coef0=1.0)
    errors, agreement = [], []
    for landmarks in (10, 30, 100, 300):
        settings = analysis.SVMSettings(n_components=10, landmarks=landmarks)
        approx = analysis.fit_pca_svm(x[:300], y[:300], settings, approximate=True)
        nystroem = approx.named_steps["kernel"]
        assert nystroem.gamma == pytest.approx(gamma)  # one kernel definition for both
        features = nystroem.transform(components)
        errors.append(np.linalg.norm(features @ features.T - kernel) / np.linalg.norm(kernel))
        agreement.append(spearmanr(exact.decision_function(x[300:]), approx.decision_function(x[300:]))[0])
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-6  # exact with every row a landmark
    assert agreement[0] < 0.9 < min(agreement[1:])  # decision values follow the exact SVM's


def test_valid_auc_curves_figure_draws_one_line_per_model_and_chance():
    axis = plots.valid_auc_curves_figure({"npr": [0.7, 0.9, 0.95], "spectrum": [0.6, 0.8]}).axes[0]
    lines = {line.get_label(): line for line in axis.get_lines()}
    assert set(lines) == {"npr", "spectrum", "chance"}
    assert list(lines["npr"].get_xdata()) == [1, 2, 3] and list(lines["spectrum"].get_ydata()) == [0.6, 0.8]
    assert list(lines["chance"].get_ydata()) == [0.5, 0.5]
