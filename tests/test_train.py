"""train: run tree, metrics, plots, registry (aliases and stages), loading, bad input."""

from __future__ import annotations

import importlib.metadata
import io
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import PROJECT, SHARED_ARCHITECTURES
from helpers import (
    CLEAN_ONLY,
    SEARCH,
    aliases,
    scored_on_valid,
    tiny_settings,
)
from mlflow import MlflowClient

from deepfake_detection import registry
from deepfake_detection.config import TrainSettings
from deepfake_detection.errors import DatasetError, DeepfakeError, TrackingError
from deepfake_detection.evaluation import INTERVAL_METRICS, binary_metrics
from deepfake_detection.training import run_training


def _children(client, experiment_id, parent_id):
    return client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


@pytest.mark.train
def test_a_train_run_logs_its_metrics_plots_and_model_which_loads_by_alias_and_stage(shared_store):
    """What training logged for the shared custom_a (only read here). The search's trials are
    checked where a search runs, a second version and promotion by hand in the budgeted test."""
    bench_dataset = shared_store.data
    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    (parent,) = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "train"]
    children = _children(client, experiment.experiment_id, parent.info.run_id)
    (child,) = [c for c in children if c.data.tags["architecture"] == "custom_a"]
    assert child.info.run_name == "train-custom_a"
    assert len(child.data.tags["dataset_digest"]) == 16
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True).stdout.strip()
    assert child.data.tags["mlflow.source.git.commit"] == head

    metrics = child.data.metrics
    threshold = metrics["threshold"]
    # The logged test metrics are those of the logged test predictions at the logged threshold.
    table = mlflow.artifacts.load_dict(f"runs:/{child.info.run_id}/predictions/test.json")
    predictions = pd.DataFrame(table["data"], columns=table["columns"])
    y, p_fake = (predictions["label"] == "fake").astype(int), predictions["p_fake"]
    assert predictions["threshold"].to_numpy() == pytest.approx(np.full(len(predictions), threshold))
    expected = binary_metrics(y, p_fake, threshold)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer", "ece", "tp", "fp"):
        assert metrics[f"test_{name}"] == pytest.approx(expected[name]), name
    for name in INTERVAL_METRICS:  # each interval logged, around its estimate
        assert metrics[f"test_{name}_ci_low"] <= metrics[f"test_{name}"] <= metrics[f"test_{name}_ci_high"], name
    assert list(predictions["predicted"]) == ["fake" if p >= threshold else "real" for p in p_fake]
    test_rows = pd.read_csv(bench_dataset / "manifest.csv").query("split == 'test'")
    assert metrics["test_tn"] + metrics["test_fp"] == (test_rows.label == "real").sum()
    assert metrics["test_fn"] + metrics["test_tp"] == (test_rows.label == "fake").sum()
    # Calibrated on valid: the registered model returns sigmoid(logit(p) / T) of the network's output.
    assert metrics["temperature"] > 0 and {"valid_ece_uncalibrated", "test_ece_uncalibrated"} <= set(metrics)
    assert child.data.tags["degenerate"] == "false"  # it beats chance on valid, scored here:
    assert scored_on_valid("models:/deepfake-custom_a/1", bench_dataset)[0]
    assert {"test_roc_auc_generator_transpose", "test_roc_auc_generator_upsample"} <= set(metrics)
    assert child.data.params["image_size"] == "32" and child.data.params["architecture"] == "custom_a"
    assert child.inputs.dataset_inputs[0].dataset.digest == child.data.tags["dataset_digest"]
    history = client.get_metric_history(child.info.run_id, "valid_epoch_auc")  # per epoch, step = epoch
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, int(metrics["epochs_run"]) + 1))
    # One name per metric: no step-less validation_* copies, no optimizer_* params.
    assert not [k for k in metrics if k.startswith(("val_", "validation_"))]
    assert not [k for k in child.data.params if k.startswith("optimizer_")]
    assert {"train_epoch_loss", "train_epoch_auc", "valid_epoch_loss"} <= set(metrics)
    # Plots at the artifact root, the only files MLflow's compare-runs page lists.
    plots = {a.path for a in client.list_artifacts(child.info.run_id) if a.path.endswith(".png")}
    names = ("roc", "precision_recall", "confusion_matrix", "training_curves", "reliability", "robustness")
    assert plots == {f"{n}.png" for n in names}
    for name in plots:
        png = Path(mlflow.artifacts.download_artifacts(run_id=child.info.run_id, artifact_path=name))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    # The train run: one summary, no per-architecture copies of the test metrics.
    assert set(parent.data.metrics) == {
        "best_valid_roc_auc",
        "best_valid_score",
        *(
            f"best_test_{k}{s}"
            for k in ("roc_auc", "mean_degraded_roc_auc", "worst_degraded_roc_auc")
            for s in ("", "_ci_low", "_ci_high")
        ),
    }
    # The experiment carries the leaderboard view that `deepfake-detection ui` links to.
    tags = client.get_experiment(experiment.experiment_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    board = json.loads(tags["mlflow.sharedViewState.leaderboard"])
    assert (
        board["searchFilter"] == "tags.step = 'train-architecture'" and board["orderByKey"] == "metrics.`test_roc_auc`"
    )
    ranked = client.search_runs(
        [experiment.experiment_id], board["searchFilter"], order_by=["metrics.test_roc_auc DESC"]
    )
    assert {r.info.run_id for r in ranked} == {c.info.run_id for c in children}
    ranked_auc = [r.data.metrics["test_roc_auc"] for r in ranked]
    assert ranked_auc == sorted(ranked_auc, reverse=True)
    assert {c.split("`")[1] for c in board["selectedColumns"] if c.startswith("metrics.")} <= set(metrics)

    # Registry: version 1 is champion and in Production.
    name = "deepfake-custom_a"
    version = client.get_model_version_by_alias(name, "champion")
    assert str(version.version) == "1" and version.current_stage == "Production"
    assert float(version.tags["test_roc_auc"]) == pytest.approx(metrics["test_roc_auc"], abs=1e-6)
    assert version.description.startswith(f"test ROC-AUC {metrics['test_roc_auc']:.3f} [95 % CI ")
    assert child.info.run_id in version.description and "32x32" in client.get_registered_model(name).description
    # The evaluation metrics are attached to the logged model, with the dataset they were measured on.
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"source_run_id = '{child.info.run_id}'",
        output_format="list",
    )
    assert logged.name == "custom_a"  # runs:/<run_id>/custom_a
    on_model = {m.key: m for m in logged.metrics}
    assert on_model["test_roc_auc"].value == pytest.approx(metrics["test_roc_auc"])
    assert on_model["test_roc_auc"].dataset_digest == child.data.tags["dataset_digest"]
    # Its environment: this package's dependencies at the versions that trained it (the package's
    # own code travels with the model), not what MLflow would infer by loading it.
    requirements = Path(mlflow.artifacts.download_artifacts(f"runs:/{child.info.run_id}/custom_a/requirements.txt"))
    pinned = dict(line.split("==") for line in requirements.read_text().split())
    assert pinned["tensorflow"] == importlib.metadata.version("tensorflow")
    assert pinned["keras"] == keras.__version__ and "deepfake-image-detection" not in pinned

    # Loading by alias and by stage predicts what the trained model predicted on test.
    logged = pd.read_json(
        io.StringIO(
            Path(
                mlflow.artifacts.download_artifacts(run_id=child.info.run_id, artifact_path="predictions/test.json")
            ).read_text()
        ),
        orient="split",
    )
    images = pd.DataFrame({"image": [(bench_dataset / p).read_bytes() for p in logged["path"]]})
    by_alias = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(images)
    by_stage = mlflow.pyfunc.load_model(f"models:/{name}/Production").predict(images)
    np.testing.assert_allclose(by_alias["p_fake"], logged["p_fake"], atol=1e-5)
    np.testing.assert_allclose(by_stage["p_fake"], logged["p_fake"], atol=1e-5)
    assert set(by_alias["label"]) <= {"fake", "real"}
    assert list(by_alias["label"]) == list(np.where(by_alias["p_fake"] >= threshold, "fake", "real"))
    from deepfake_detection.architectures import TemperatureScaling
    from deepfake_detection.model import load_detector

    detector = load_detector(f"models:/{name}@champion")  # calibrated inside the model: every consumer sees it
    assert isinstance(detector.keras_model.layers[-1], TemperatureScaling)
    assert detector.keras_model.layers[-1].temperature == pytest.approx(metrics["temperature"])
    assert detector.config.temperature == pytest.approx(metrics["temperature"])
    paths = pd.DataFrame({"path": [str(bench_dataset / p) for p in logged["path"]]})
    np.testing.assert_allclose(
        mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(paths)["p_fake"], logged["p_fake"], atol=1e-5
    )


@pytest.mark.train
def test_a_search_logs_its_trials_under_the_architecture_run_and_a_fixed_augmentation_is_not_searched(
    bench_dataset, tmp_path
):
    run_training(
        tiny_settings(bench_dataset, tmp_path / "outputs", **SEARCH, **CLEAN_ONLY, augment=0.25, num_samples=12)
    )
    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    (parent,) = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "train"]
    (child,) = _children(client, experiment.experiment_id, parent.info.run_id)
    assert child.info.run_name == "train-custom_a" and child.data.tags["architecture"] == "custom_a"
    trials = _children(client, experiment.experiment_id, child.info.run_id)
    assert len(trials) == 2
    for trial in trials:
        assert {"hp.learning_rate", "hp.dropout", "hp.augment"} <= set(trial.data.params)
        assert {"valid_epoch_auc", "valid_epoch_loss", "epochs"} <= set(trial.data.metrics)
        assert trial.data.params["hp.augment"] == "0.25"  # fixed, not searched
    assert list((tmp_path / "outputs").glob(f"{child.data.tags['study']}/tuner"))  # its own study folder


def test_a_study_is_keyed_on_every_setting_that_changes_what_a_trial_scores(tmp_path):
    from dataclasses import replace

    from deepfake_detection.training import study_dir

    base = TrainSettings(work_dir=str(tmp_path))
    study = study_dir("custom_a", base, "digest")
    assert study_dir("custom_a", replace(base, max_trials=9, patience=1, arch="x"), "digest") == study  # resumes
    changes = [
        {"epochs": 5},
        {"tuner": "bayesian"},
        {"batch_size": 8},
        {"weights": "weights.h5"},
        {"executions_per_trial": 2},
        {"num_samples": 10},
        {"augment": 0.25},
        {"seed": 1},
        {"image_size": 32},
    ]
    others = {study_dir("custom_a", replace(base, **change), "digest") for change in changes}
    assert study not in others and len(others) == len(changes)  # each a study of its own
    assert study_dir("custom_a", base, "other-data") != study != study_dir("custom_c", base, "digest")


@pytest.mark.train
def test_a_planned_train_logs_its_plan_the_same_seed_gives_the_same_models_and_promote_by_hand(bench_dataset, tmp_path):
    # The earlier recipe at 0.5: one epoch of 24 images, under which seed 42's npr is known to beat
    # chance (the upload recipe at npr's 0.75, or flips alone, leave it at chance at this size).
    settings = tiny_settings(
        bench_dataset,
        tmp_path / "outputs",
        arch="npr",
        epochs=3,
        plan="npr=1",
        num_samples=24,
        augment=0.5,
        augment_recipe="chain",
    )
    first = run_training(settings)
    client = MlflowClient()
    for result in first:
        run = client.get_run(result.run_id)
        assert run.data.params["fit_epochs"] == "1"  # the plan's, not --epochs' 3
        assert run.data.metrics["epochs_run"] == 1
    assert (first[0].version, first[0].role) == ("1", "champion"), "seed 42 must give an npr better than chance"
    again = run_training(replace(settings, work_dir=str(tmp_path / "again")))
    for a, b in zip(first, again):
        assert a.test == b.test  # every metric, intervals too
        table_a, table_b = (mlflow.artifacts.load_dict(f"runs:/{r.run_id}/predictions/test.json") for r in (a, b))
        assert table_a == table_b  # every image's p_fake, to the last digit
    # Same scores, so not better: version 2 is the challenger, in Staging.
    name = "deepfake-npr"
    assert (again[0].version, again[0].role) == ("2", "challenger")
    assert client.get_model_version(name, "2").current_stage == "Staging"
    assert aliases(client, name) == {"champion": "1", "challenger": "2"}
    # promote by hand: version 2 becomes champion/Production, version 1 is archived.
    from click.testing import CliRunner

    from deepfake_detection.cli import main

    result = CliRunner().invoke(main, ["promote", "--arch", "npr", "--version", "2"])
    assert result.exit_code == 0, result.output
    assert client.get_model_version(name, "2").current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"
    assert aliases(client, name) == {"champion": "2"}  # the challenger alias left with the promotion
    (other_seed,) = run_training(replace(settings, arch="npr", plan="npr=1", work_dir=str(tmp_path / "other"), seed=7))
    assert other_seed.test != first[0].test


@pytest.mark.train
def test_failed_promotion_leaves_no_registered_version(bench_dataset, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("registry went away (simulated)")

    monkeypatch.setattr(registry, "promote", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        run_training(tiny_settings(bench_dataset, tmp_path / "outputs", arch="custom_c", **CLEAN_ONLY))
    assert MlflowClient().search_model_versions("name='deepfake-custom_c'") == []


def test_bad_training_input_fails_before_training(bench_dataset, tmp_path, monkeypatch):
    with pytest.raises(DeepfakeError, match="unknown architecture.*resnet"):
        run_training(tiny_settings(bench_dataset, tmp_path / "outputs", arch="custom_a,resnet"))
    with pytest.raises(DatasetError, match="not a prepared dataset"):
        run_training(tiny_settings(tmp_path / "missing", tmp_path / "outputs"))
    one_class = tmp_path / "one_class"
    manifest = pd.read_csv(bench_dataset / "manifest.csv", keep_default_na=False)
    one_class.mkdir()
    manifest[~((manifest.split == "valid") & (manifest.label == "real"))].to_csv(
        one_class / "manifest.csv", index=False
    )
    with pytest.raises(DatasetError, match="split 'valid' has no real images"):
        run_training(tiny_settings(one_class, tmp_path / "outputs"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(TrackingError, match="http://127.0.0.1:9"):
        run_training(tiny_settings(bench_dataset, tmp_path / "outputs", **SEARCH))
    assert not (tmp_path / "outputs").exists()


def test_the_train_run_names_the_best_architecture_that_beats_chance_and_none_when_none_does():
    from deepfake_detection.training import ArchitectureResult, log_summary

    def result(name: str, valid_roc_auc: float, valid_youden_j: float) -> ArchitectureResult:
        valid = {"roc_auc": valid_roc_auc, "youden_j": valid_youden_j}
        test = {"roc_auc": valid_roc_auc - 0.1, "roc_auc_ci_low": 0.2, "roc_auc_ci_high": 0.9}
        return ArchitectureResult(name, name, f"models:/deepfake-{name}/1", "1", "", 0.5, valid, test, 1.0, {})

    client = MlflowClient()
    with mlflow.start_run() as run:  # every architecture at chance on valid (J <= 0 at its threshold)
        assert log_summary([result("npr", 0.5, 0.0), result("spectrum", 0.45, -0.25)]) is None
    logged = client.get_run(run.info.run_id).data
    assert logged.metrics == {} and not {"best_architecture", "mlflow.note.content"} & set(logged.tags)
    results = [result("npr", 0.5, 0.0), result("spectrum", 0.6, 0.25), result("custom_a", 0.7, 0.5)]
    with mlflow.start_run() as run:
        assert log_summary(results) is results[2]  # the best valid ROC-AUC among those beating chance
    logged = client.get_run(run.info.run_id).data
    assert logged.tags["best_architecture"] == "custom_a"
    assert logged.metrics == {
        "best_valid_roc_auc": 0.7,
        "best_valid_score": 0.7,  # no degraded scores: the clean valid ROC-AUC
        "best_test_roc_auc": pytest.approx(0.6),
        "best_test_roc_auc_ci_low": 0.2,
        "best_test_roc_auc_ci_high": 0.9,
    }
    note = logged.tags["mlflow.note.content"]
    assert note.startswith("**Best: custom_a** (chosen on the valid ROC-AUC, 0.700), test ROC-AUC 0.600 [0.200, 0.900]")
    rows = [line for line in note.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| custom_a", "| spectrum", "| npr"]  # by valid ROC-AUC


@pytest.mark.train
def test_mlflow_run_train_many_architectures(shared_store):
    """The shared models' `mlflow run . -e train -P arch=...` (it returned 0): one run named train,
    every architecture registered by the README's rule, the best one named on the train run."""
    bench_dataset = shared_store.data
    client = MlflowClient()
    (project_run,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("deepfake-detection").experiment_id])
        if r.data.tags.get("mlflow.project.entryPoint") == "train"
    ]
    assert project_run.info.status == "FINISHED" and project_run.info.run_name == "train"  # not a random name
    children = _children(client, project_run.info.experiment_id, project_run.info.run_id)
    assert sorted(c.data.tags["architecture"] for c in children) == sorted(SHARED_ARCHITECTURES)
    # Each architecture's version 1, scored here on valid: champion in Production when it beats
    # chance there, else challenger in Staging.
    valid_auc = {}
    for name in SHARED_ARCHITECTURES:
        (version,) = client.search_model_versions(f"name = 'deepfake-{name}'")
        beats_chance, auc = scored_on_valid(f"models:/deepfake-{name}/1", bench_dataset)
        role, stage = ("champion", "Production") if beats_chance else ("challenger", "Staging")
        assert (version.current_stage, aliases(client, f"deepfake-{name}")) == (stage, {role: "1"}), name
        if beats_chance:
            valid_auc[name] = auc
    # The run the UI lists first says which architecture won: on valid, among those that beat
    # chance, the mean of the clean ROC-AUC (scored here) and the worst degraded one (logged).
    assert valid_auc, "seed 42 must give at least one architecture that beats chance on valid"
    worst = {c.data.tags["architecture"]: c.data.metrics["valid_worst_degraded_roc_auc"] for c in children}
    score = {name: (auc + worst[name]) / 2 for name, auc in valid_auc.items()}
    top = max(score.values())  # ties are likely on 8 images: the first in the order trained wins
    winner = next(name for name, value in score.items() if value == pytest.approx(top, abs=1e-6))
    assert project_run.data.tags["best_architecture"] == winner
    (best,) = [c for c in children if c.data.tags["architecture"] == winner]
    assert best.data.metrics["valid_roc_auc"] == pytest.approx(valid_auc[winner], abs=1e-6)
    assert project_run.data.metrics["best_test_roc_auc"] == pytest.approx(best.data.metrics["test_roc_auc"])
    note = project_run.data.tags["mlflow.note.content"]
    assert note.startswith(f"**Best: {winner}**") and note.count("\n| ") == len(children) + 1
