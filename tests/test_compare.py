"""compare: registered models → embeddings → PCA + polynomial SVM, report and plots."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from deepfake_detection import analysis
from deepfake_detection.compare import MissingModelError, run_compare
from deepfake_detection.config import CompareSettings, TrainSettings
from deepfake_detection.training import run_training


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
    assert -1 <= analysis.kmeans_ari(x[:, :2], y) <= 1


def test_compare_report_from_registered_models(bench_dataset, tmp_path):
    run_training(
        TrainSettings(
            arch="custom_a,custom_c",
            data=str(bench_dataset),
            image_size=32,
            epochs=1,
            tuner="none",
            batch_size=16,
            work_dir=str(tmp_path / "outputs"),
        )
    )
    settings = CompareSettings(
        models="custom_a,custom_c",
        data=str(bench_dataset),
        n_components=8,
        robustness=True,
        work_dir=str(tmp_path / "outputs"),
    )
    table = run_compare(settings)
    assert list(table["model"]) == ["custom_a"] * 3 + ["custom_c"] * 3
    assert list(table["classifier"][:3]) == ["cnn_head", "pca_svm", "pca_svm_nystroem"]
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision"):
        assert table[metric].between(0, 1).all(), metric
    assert set(table["embedding_dim"]) == {512}
    assert table.dropna(subset=["kmeans_ari"])["kmeans_ari"].between(-1, 1).all()

    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    (run,) = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "compare"]
    assert run.data.tags["model.custom_a"] == "deepfake-custom_a/1"
    assert run.data.tags["model.custom_c"] == "deepfake-custom_c/1"
    train_rows = (pd.read_csv(bench_dataset / "manifest.csv").split == "train").sum()
    assert run.data.metrics["custom_a_pca_fit_rows"] == train_rows  # PCA saw the train rows only
    assert 0 <= run.data.metrics["custom_c_pca_svm_roc_auc"] <= 1
    report = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report"))
    csv = pd.read_csv(report / "comparison.csv")
    assert len(csv) == 6 and "fake" in (report / "comparison.md").read_text()
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
    assert len(robust) == 2 * 6 and robust["roc_auc"].between(0, 1).all()
    assert set(robust["perturbation"]) == {"none", "jpeg_q95", "jpeg_q75", "jpeg_q50", "downscale_0.5x", "blur_sigma1"}
    # Unperturbed, the robustness pass scores exactly what the CNN head did in the table.
    none = robust.query("perturbation == 'none'").set_index("model")["roc_auc"]
    heads = table.query("classifier == 'cnn_head'").set_index("model")["roc_auc"]
    np.testing.assert_allclose(none.loc[["custom_a", "custom_c"]], heads.loc[["custom_a", "custom_c"]], atol=1e-6)
    assert "robustness_custom_c_jpeg_q50_roc_auc" in run.data.metrics
    for png in plots.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    embeddings = {a.path for a in client.list_artifacts(run.info.run_id, "embeddings/custom_a")}
    assert len(embeddings) == 3
    stored = np.load(next(Path(tmp_path / "outputs" / "embeddings").glob("deepfake-custom_a-v1-*-test-*.npz")))
    assert stored["embedding"].shape[1] == 512 and set(stored["label"]) == {"real", "fake"}

    # By stage, with the embeddings cache reused; and a clear error for a model that is not there.
    by_stage = run_compare(
        CompareSettings(
            models="custom_a",
            stage="Production",
            data=str(bench_dataset),
            n_components=8,
            work_dir=str(tmp_path / "outputs"),
        )
    )
    pd.testing.assert_frame_equal(
        by_stage.drop(columns="fit_seconds"),
        table[table.model == "custom_a"].drop(columns="fit_seconds").reset_index(drop=True),
    )
    with pytest.raises(MissingModelError, match="deepfake-vggface16@champion"):
        run_compare(
            CompareSettings(
                models="custom_a,vggface16", data=str(bench_dataset), n_components=8, work_dir=str(tmp_path / "outputs")
            )
        )
    skipped = run_compare(
        CompareSettings(
            models="custom_a,vggface16",
            data=str(bench_dataset),
            n_components=8,
            skip_missing=True,
            work_dir=str(tmp_path / "outputs"),
        )
    )
    assert set(skipped["model"]) == {"custom_a"}


def test_perturbations_change_the_image_as_named(tmp_path):
    import io

    from PIL import Image

    from deepfake_detection import robustness

    pixels = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    original = buffer.getvalue()
    assert robustness.perturb(original, "none") == original
    sizes = {}
    for name in robustness.PERTURBATIONS:
        with Image.open(io.BytesIO(robustness.perturb(original, name))) as picture:
            sizes[name] = (picture.format, picture.size)
            if name == "blur_sigma1":
                assert np.asarray(picture, dtype=float).std() < pixels.std() * 0.8  # blur smooths noise
    assert sizes["downscale_0.5x"] == ("PNG", (30, 20))
    assert sizes["jpeg_q50"] == ("JPEG", (60, 40))
    q95, q50 = (len(robustness.perturb(original, f"jpeg_q{q}")) for q in (95, 50))
    assert q50 < q95  # lower quality, fewer bytes
