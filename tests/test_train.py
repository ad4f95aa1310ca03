"""train: run tree, metrics, plots, registry (aliases and stages), loading, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import keras
import keras_tuner as kt
import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import PROJECT, mlflow_run, write_keras2_weights
from mlflow import MlflowClient
from tracking_server import free_port

from deepfake_detection import registry
from deepfake_detection.architectures import ARCHITECTURES, WeightsError, get_architecture
from deepfake_detection.config import TrainSettings
from deepfake_detection.errors import DatasetError, DeepfakeError, TrackingError
from deepfake_detection.evaluation import INTERVAL_METRICS, binary_metrics
from deepfake_detection.training import run_training


def _settings(data, tmp_path, **overrides):
    base = dict(
        arch="custom_a",
        data=str(data),
        image_size=32,
        epochs=1,
        max_trials=2,
        tuner="random",
        batch_size=16,
        work_dir=str(tmp_path / "outputs"),
    )
    return TrainSettings(**{**base, **overrides})


def _children(client, experiment_id, parent_id):
    return client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def test_train_tracks_registers_promotes_and_reloads(bench_dataset, tmp_path):
    (first,) = run_training(_settings(bench_dataset, tmp_path))
    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "train"]
    (child,) = _children(client, experiment.experiment_id, parent.info.run_id)
    assert child.info.run_name == "train-custom_a" and child.data.tags["architecture"] == "custom_a"
    assert len(child.data.tags["dataset_digest"]) == 16
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True).stdout.strip()
    assert child.data.tags["mlflow.source.git.commit"] == head
    trials = _children(client, experiment.experiment_id, child.info.run_id)
    assert len(trials) == 2
    for trial in trials:
        assert {"hp.learning_rate", "hp.dropout", "hp.augment"} <= set(trial.data.params)
        assert {"valid_epoch_auc", "valid_epoch_loss", "epochs"} <= set(trial.data.metrics)

    metrics = child.data.metrics
    # The logged test metrics are those of the logged test predictions at the logged threshold.
    table = mlflow.artifacts.load_dict(f"runs:/{child.info.run_id}/predictions/test.json")
    predictions = pd.DataFrame(table["data"], columns=table["columns"])
    y, p_fake = (predictions["label"] == "fake").astype(int), predictions["p_fake"]
    assert metrics["threshold"] == pytest.approx(first.threshold)
    assert predictions["threshold"].to_numpy() == pytest.approx(np.full(len(predictions), first.threshold))
    expected = binary_metrics(y, p_fake, first.threshold)
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer", "ece", "tp", "fp"):
        assert metrics[f"test_{name}"] == pytest.approx(expected[name]), name
        if f"test_{name}_ci_low" in metrics:
            assert metrics[f"test_{name}_ci_low"] <= metrics[f"test_{name}"] <= metrics[f"test_{name}_ci_high"], name
    assert {f"test_{m}_ci_{end}" for m in INTERVAL_METRICS for end in ("low", "high")} <= set(metrics)
    assert list(predictions["predicted"]) == ["fake" if p >= first.threshold else "real" for p in p_fake]
    test_rows = pd.read_csv(bench_dataset / "manifest.csv").query("split == 'test'")
    assert metrics["test_tn"] + metrics["test_fp"] == (test_rows.label == "real").sum()
    assert metrics["test_fn"] + metrics["test_tp"] == (test_rows.label == "fake").sum()
    # Calibrated on valid: the registered model returns sigmoid(logit(p) / T) of the network's output.
    assert metrics["temperature"] > 0 and {"valid_ece_uncalibrated", "test_ece_uncalibrated"} <= set(metrics)
    assert child.data.tags["degenerate"] == str(first.degenerate).lower()
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
    names = ("roc", "precision_recall", "confusion_matrix", "training_curves", "reliability")
    assert plots == {f"{n}.png" for n in names}
    for name in plots:
        png = Path(mlflow.artifacts.download_artifacts(run_id=child.info.run_id, artifact_path=name))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    # The train run: one summary, no per-architecture copies of the test metrics.
    assert set(parent.data.metrics) == {
        "best_valid_roc_auc",
        *(f"best_test_roc_auc{s}" for s in ("", "_ci_low", "_ci_high")),
    }
    assert parent.data.tags["best_architecture"] == "custom_a"
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
    assert [r.info.run_id for r in ranked] == [child.info.run_id]
    assert {c.split("`")[1] for c in board["selectedColumns"] if c.startswith("metrics.")} <= set(metrics)

    # Registry: version 1 is champion and in Production.
    name = "deepfake-custom_a"
    version = client.get_model_version_by_alias(name, "champion")
    assert str(version.version) == first.version == "1" and version.current_stage == "Production"
    assert float(version.tags["test_roc_auc"]) == pytest.approx(first.test["roc_auc"], abs=1e-6)
    assert version.description.startswith(f"test ROC-AUC {first.test['roc_auc']:.3f} [95 % CI ")
    assert child.info.run_id in version.description and "32x32" in client.get_registered_model(name).description
    # The evaluation metrics are attached to the logged model, with the dataset they were measured on.
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"source_run_id = '{child.info.run_id}'",
        output_format="list",
    )
    assert logged.name == "custom_a"  # runs:/<run_id>/custom_a
    on_model = {m.key: m for m in logged.metrics}
    assert on_model["test_roc_auc"].value == pytest.approx(first.test["roc_auc"])
    assert on_model["test_roc_auc"].dataset_digest == child.data.tags["dataset_digest"]

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
    assert list(by_alias["label"]) == list(np.where(by_alias["p_fake"] >= first.threshold, "fake", "real"))
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

    # Same seed, same data: same metrics; not better, so version 2 is the challenger in Staging.
    (second,) = run_training(_settings(bench_dataset, tmp_path, work_dir=str(tmp_path / "outputs2")))
    assert second.test["roc_auc"] == pytest.approx(first.test["roc_auc"], abs=1e-4)
    assert second.version == "2" and second.role == "challenger"
    assert client.get_model_version(name, "2").current_stage == "Staging"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"

    # promote by hand: version 2 becomes champion/Production, version 1 is archived.
    from click.testing import CliRunner

    from deepfake_detection.cli import main

    result = CliRunner().invoke(main, ["promote", "--arch", "custom_a", "--version", "2"])
    assert result.exit_code == 0, result.output
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert client.get_model_version(name, "2").current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"
    aliases = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    assert aliases == {"champion": "2"}  # the challenger alias left with the promotion


def test_a_fixed_augmentation_strength_is_not_searched(bench_dataset, tmp_path):
    run_training(_settings(bench_dataset, tmp_path, augment=0.25, num_samples=12))
    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    trials = [r for r in client.search_runs([experiment.experiment_id]) if "hp.augment" in r.data.params]
    assert len(trials) == 2 and {t.data.params["hp.augment"] for t in trials} == {"0.25"}
    (child,) = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "train-custom_a"]
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


def test_a_budget_gives_every_architecture_the_same_epochs_as_far_as_it_goes():
    from types import SimpleNamespace

    from deepfake_detection.training import plan_epochs

    def arch(name, seconds_per_epoch):
        return SimpleNamespace(name=name, epoch_seconds=lambda images: seconds_per_epoch * images / 1000)

    nets = [arch("slow", 60.0), arch("fast", 5.0), arch("medium", 20.0)]  # seconds per epoch at 1,000 images
    assert plan_epochs(nets, 1000, budget_minutes=0, max_epochs=7) == {"slow": 7, "fast": 7, "medium": 7}
    # 600 s: seven epochs each cost 595 s; the 5 s left buy fast an eighth.
    plan = plan_epochs(nets, 1000, budget_minutes=10, max_epochs=10)
    assert plan == {"slow": 7, "fast": 8, "medium": 7}
    assert list(plan) == ["slow", "fast", "medium"]  # in the order asked for
    assert plan_epochs(nets, 1000, budget_minutes=10, max_epochs=5) == {"slow": 5, "fast": 5, "medium": 5}
    tight = plan_epochs(nets, 1000, budget_minutes=0.5, max_epochs=10)
    assert tight == {"slow": 1, "fast": 1, "medium": 1}  # at least one epoch each, even over the budget
    # Four times the images: slow cannot afford a second epoch; the others share what it leaves.
    assert plan_epochs(nets, 4000, budget_minutes=10, max_epochs=10) == {"slow": 1, "fast": 6, "medium": 3}
    for images, minutes in ((1000, 10), (4000, 10), (2500, 5)):
        plan = plan_epochs(nets, images, budget_minutes=minutes, max_epochs=10)
        assert sum(plan[n.name] * n.epoch_seconds(images) for n in nets) <= minutes * 60


def test_a_budgeted_train_logs_its_plan_and_the_same_seed_gives_the_same_models(bench_dataset, tmp_path):
    settings = _settings(
        bench_dataset, tmp_path, arch="npr,spectrum", tuner="none", epochs=3, budget_minutes=0.0001, num_samples=24
    )
    first = run_training(settings)
    client = MlflowClient()
    for result in first:
        run = client.get_run(result.run_id)
        assert run.data.params["fit_epochs"] == "1"  # 0.006 s cannot buy more than the one epoch each gets
        assert run.data.metrics["epochs_run"] == 1
    again = run_training(replace(settings, work_dir=str(tmp_path / "again")))
    other_seed = run_training(replace(settings, work_dir=str(tmp_path / "other"), seed=7))
    for a, b, c in zip(first, again, other_seed):
        assert a.test == b.test  # every metric, intervals too
        assert a.test != c.test
        table_a, table_b = (mlflow.artifacts.load_dict(f"runs:/{r.run_id}/predictions/test.json") for r in (a, b))
        assert table_a == table_b  # every image's p_fake, to the last digit


def test_failed_promotion_leaves_no_registered_version(bench_dataset, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("registry went away (simulated)")

    monkeypatch.setattr(registry, "promote", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        run_training(_settings(bench_dataset, tmp_path, arch="custom_c", tuner="none"))
    assert MlflowClient().search_model_versions("name='deepfake-custom_c'") == []


def test_bad_training_input_fails_before_training(bench_dataset, tmp_path, monkeypatch):
    with pytest.raises(DeepfakeError, match="unknown architecture.*resnet"):
        run_training(_settings(bench_dataset, tmp_path, arch="custom_a,resnet"))
    with pytest.raises(DatasetError, match="not a prepared dataset"):
        run_training(_settings(tmp_path / "missing", tmp_path))
    one_class = tmp_path / "one_class"
    manifest = pd.read_csv(bench_dataset / "manifest.csv", keep_default_na=False)
    one_class.mkdir()
    manifest[~((manifest.split == "valid") & (manifest.label == "real"))].to_csv(
        one_class / "manifest.csv", index=False
    )
    with pytest.raises(DatasetError, match="split 'valid' has no real images"):
        run_training(_settings(one_class, tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(TrackingError, match="http://127.0.0.1:9"):
        run_training(_settings(bench_dataset, tmp_path))
    assert not (tmp_path / "outputs").exists()


def test_weights_file_of_the_wrong_shape_is_refused(bench_dataset, tmp_path):
    other = get_architecture("npr", 32).build(kt.HyperParameters())
    other.save_weights(tmp_path / "npr.weights.h5")
    with pytest.raises(WeightsError, match="cannot load weights"):
        run_training(_settings(bench_dataset, tmp_path, tuner="none", weights=str(tmp_path / "npr.weights.h5")))
    assert MlflowClient().search_registered_models() == []
    with pytest.raises(WeightsError, match="neither one of"):
        get_architecture("custom_a", 32, weights=str(tmp_path / "nowhere.h5"))


def test_vggface_weights_load_by_layer_name_from_a_legacy_h5(tmp_path):
    keras.utils.set_random_seed(1)
    source = get_architecture("vggface16", 32).build(kt.HyperParameters())
    source.save(tmp_path / "vggface_like.h5")  # legacy HDF5: weights stored by layer name
    keras.utils.set_random_seed(2)
    loaded = get_architecture("vggface16", 32, weights=str(tmp_path / "vggface_like.h5")).build(kt.HyperParameters())
    for layer in ("conv1_1", "conv5_3", "embedding"):
        np.testing.assert_array_equal(
            loaded.get_layer(layer).get_weights()[0], source.get_layer(layer).get_weights()[0]
        )
    with pytest.raises(WeightsError, match="VGGFace16 weights not found"):
        os.environ["KERAS_HOME"] = str(tmp_path / "empty_keras_home")
        try:
            get_architecture("vggface16", 32, weights="vggface").build(kt.HyperParameters())
        finally:
            del os.environ["KERAS_HOME"]


def test_train_with_pretrained_weights_from_the_keras_cache_end_to_end(bench_dataset, tmp_path, monkeypatch):
    """``--weights imagenet`` / ``vggface`` with the files where Keras and the VGGFace instructions put
    them (locally built stand-ins in the published format): trained, registered, and the frozen
    half of the backbone still holds the file's weights."""
    from deepfake_detection.architectures.families import DENSENET_NOTOP_FILE, VGGFACE_FILE
    from deepfake_detection.model import load_detector

    home = tmp_path / "keras"
    keras.utils.set_random_seed(11)
    densenet = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(32, 32, 3))
    write_keras2_weights(densenet, home / "models" / DENSENET_NOTOP_FILE)
    vgg = get_architecture("vggface16", 32).build(kt.HyperParameters())
    write_keras2_weights(keras.Model(vgg.input, vgg.get_layer("pool5").output), home / "models/vggface" / VGGFACE_FILE)
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", None)  # no download can happen
    checks = (("densenet121", "imagenet", densenet, "conv1_conv"), ("vggface16", "vggface", vgg, "conv1_1"))
    for arch, weights, source, first_layer in checks:
        with pytest.warns(UserWarning) if arch == "densenet121" else contextlib.nullcontext():
            (result,) = run_training(
                _settings(bench_dataset, tmp_path, arch=arch, weights=weights, tuner="none", num_samples=16)
            )
        params = MlflowClient().get_run(result.run_id).data.params
        assert params["weights"] == weights and params["best.fine_tune"] == "0.5"
        model = load_detector(result.model_uri).keras_model
        if arch == "densenet121":
            model = model.get_layer("densenet121_backbone")
        for mine, theirs in zip(
            model.get_layer(first_layer).get_weights(), source.get_layer(first_layer).get_weights()
        ):
            np.testing.assert_array_equal(mine, theirs)  # loaded, then frozen by fine_tune 0.5


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_architecture_has_an_embedding_of_the_documented_size(name):
    expected = {
        "vggface16": 2048,
        "densenet121": 1024,
        "custom_a": 512,
        "npr": 512,
        "custom_c": 512,
        "spectrum": 16,
    }[name]  # spectrum: one ring per frequency up to Nyquist, image_size / 2
    model = get_architecture(name, 32).build(kt.HyperParameters())
    assert model.get_layer("embedding").output.shape[-1] == expected
    assert model.output.shape[-1] == 1 and model.input.shape[1:] == (32, 32, 3)


def test_azimuthal_spectrum_finds_the_frequency_of_a_stripe_pattern():
    from deepfake_detection.architectures.families import AzimuthalSpectrum

    size, frequency = 32, 5
    stripes = np.cos(2 * np.pi * frequency * np.arange(size) / size)[None, :] * np.ones((size, 1))
    images = np.repeat((0.5 + 0.4 * stripes)[None, :, :, None], 3, axis=-1).astype(np.float32)
    flat = np.full_like(images, 0.5)
    layer = AzimuthalSpectrum(size // 2)
    spectrum, spectrum_flat = keras.ops.convert_to_numpy(layer(np.concatenate([images, flat])))
    assert spectrum.shape == (16,)
    assert int(np.argmax(spectrum[1:])) + 1 == frequency  # the stripes' ring stands out, DC aside
    assert spectrum[frequency] - spectrum_flat[frequency] > 1  # mean log power of the ring rises
    np.testing.assert_allclose(spectrum[1:frequency], spectrum_flat[1:frequency], atol=1e-3)
    restored = AzimuthalSpectrum.from_config(layer.get_config())
    assert restored.bins == 16


@pytest.mark.slow
def test_mlflow_run_train_all_architectures(bench_dataset, tmp_path):
    parameters = {
        "arch": "all",
        "data": bench_dataset,
        "image_size": 32,
        "epochs": 1,
        "tuner": "none",
        "num_samples": 8,
        "work_dir": tmp_path / "outputs",
    }
    result = mlflow_run("train", parameters, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient()
    for name in ARCHITECTURES:  # version 1 each: champion in Production, or challenger in Staging if degenerate
        (version,) = client.search_model_versions(f"name = 'deepfake-{name}'")
        champion = version.tags["degenerate"] == "false"
        role, stage = ("champion", "Production") if champion else ("challenger", "Staging")
        assert version.current_stage == stage, name
        assert str(client.get_model_version_by_alias(f"deepfake-{name}", role).version) == "1", name
    (project_run,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("deepfake-detection").experiment_id])
        if r.data.tags.get("mlflow.project.entryPoint") == "train"
    ]
    assert project_run.info.status == "FINISHED" and project_run.info.run_name == "train"  # not a random name
    # The run the UI lists first says which architecture won (on valid) and its test interval.
    children = _children(client, project_run.info.experiment_id, project_run.info.run_id)
    scored = [c for c in children if c.data.tags["degenerate"] == "false"]
    if not scored:  # all at chance on 8 images: no best to name
        assert "best_architecture" not in project_run.data.tags
        return
    top = max(c.data.metrics["valid_roc_auc"] for c in scored)  # ties are likely on 8 images
    (best,) = [c for c in scored if c.data.tags["architecture"] == project_run.data.tags["best_architecture"]]
    assert best.data.metrics["valid_roc_auc"] == top
    assert project_run.data.metrics["best_test_roc_auc"] == pytest.approx(best.data.metrics["test_roc_auc"])
    note = project_run.data.tags["mlflow.note.content"]
    assert note.startswith(f"**Best: {best.data.tags['architecture']}**") and note.count("\n| ") == len(children) + 1


def _wait_for(process, root: Path, pattern: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.glob(pattern)):
        assert process.poll() is None, f"train ended ({process.returncode}) before {pattern} appeared"
        assert time.monotonic() < deadline, f"{pattern} did not appear in {timeout} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_train_killed_mid_search_and_mid_fit_resumes_and_leaves_no_orphans(bench_dataset, tmp_path):
    work = tmp_path / "outputs"
    command = [
        sys.executable,
        "-m",
        "deepfake_detection",
        "train",
        "--arch",
        "custom_a",
        "--data",
        str(bench_dataset),
        "--image-size",
        "32",
        "--epochs",
        "6",
        "--max-trials",
        "2",
        "--tuner",
        "random",
        "--batch-size",
        "8",
        "--patience",
        "10",
        "--work-dir",
        str(work),
    ]
    log = (tmp_path / "train.log").open("w")
    first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    _wait_for(first, work, "custom_a-*/tuner/search/trial_*")  # inside the first trial
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    _wait_for(second, work, "custom_a-*/fit-*-epochs/backup/training_metadata.json")  # the fit has backed up an epoch
    second.send_signal(signal.SIGKILL)
    second.wait()
    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    assert client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")  # left behind by the kills
    assert client.search_registered_models() == []

    # The third goes through `mlflow run`, which resumes a project run it made: orphans are reaped there too.
    options = dict(zip(command[4::2], command[5::2]))
    third = mlflow_run(
        "train",
        {option.removeprefix("--").replace("-", "_"): value for option, value in options.items()},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    assert third.returncode == 0, (tmp_path / "train.log").read_text()[-3000:]
    assert "custom_a: resuming study" in (tmp_path / "train.log").read_text()
    runs = client.search_runs([experiment.experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    orphans = [r for r in runs if r.data.tags.get("failure", "").startswith("orphaned")]
    assert orphans and all(r.info.status == "FAILED" for r in orphans)
    assert {r.data.tags.get("pid") for r in orphans if "pid" in r.data.tags} == {str(first.pid), str(second.pid)}
    (version,) = client.search_model_versions("name = 'deepfake-custom_a'")
    assert str(version.version) == "1"
    assert len(list(work.glob("custom_a-*/tuner/search/trial_*"))) == 2  # the search resumed, no trial added
    (final,) = [r for r in runs if r.info.run_name == "train-custom_a" and r.info.status == "FINISHED"]
    assert final.data.metrics["epochs_run"] < 6  # the fit went on from its backup instead of starting over


MIRRORED = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from deepfake_detection.config import TrainSettings
from deepfake_detection.training import run_training

(result,) = run_training(TrainSettings(arch="custom_a", data=sys.argv[1], image_size=32, epochs=1, max_trials=1,
                                       batch_size=16, distribute="mirrored", work_dir=sys.argv[2]))
print("registered", result.version, result.test["roc_auc"])
"""


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_logical_devices(bench_dataset, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(bench_dataset), str(tmp_path / "outputs")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "registered 1" in result.stdout
    client = MlflowClient()
    (child,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("deepfake-detection").experiment_id])
        if r.info.run_name == "train-custom_a"
    ]
    assert child.data.params["distribute"] == "mirrored"
    assert child.data.params["devices"].split(",") == [
        "/job:localhost/replica:0/task:0/device:CPU:0",
        "/job:localhost/replica:0/task:0/device:CPU:1",
    ]
    assert child.data.metrics["test_roc_auc"] == pytest.approx(float(result.stdout.split("registered 1")[1].split()[0]))
    images = pd.DataFrame({"image": [p.read_bytes() for p in sorted((bench_dataset / "test").rglob("*.jpg"))[:4]]})
    assert len(mlflow.pyfunc.load_model("models:/deepfake-custom_a@champion").predict(images)) == 4


MULTI_WORKER = """
import json, os, sys
ports, index = sys.argv[1].split(","), int(sys.argv[2])
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                      "task": {"type": "worker", "index": index}})
import numpy as np, tensorflow as tf, keras
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy")
x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
model.fit(tf.data.Dataset.from_tensor_slices((x, x[:, 0] > 0.5)).batch(16), epochs=1, verbose=0)
print("fit finished on worker", index)
"""


@pytest.mark.slow
@pytest.mark.xfail(
    raises=AssertionError,
    strict=False,
    reason="Keras 3 fit under MultiWorkerMirroredStrategy: 'unsupported type PerReplica' "
    "(keras-team/keras#20585); passes once the upstream fix lands",
)
def test_multi_worker_mirrored_strategy_fits_across_two_processes(tmp_path):
    ports = ",".join(str(free_port()) for _ in range(2))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", MULTI_WORKER, ports, str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [worker.communicate(timeout=180)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        if worker.returncode != 0 and "PerReplica" not in output:  # not the known bug: a real failure
            raise RuntimeError(output[-3000:])
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-1500:]
    assert all("fit finished" in output for output in outputs)
