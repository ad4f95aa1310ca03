"""``evaluate``: labelled sets in every form the issue names, and a registered detector scored on
them clean and degraded, with intervals, refused files counted and one MLflow run logged."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import jpeg_bytes, mlflow_run, write_140k, write_ciplab, zip_folder
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from deepfake_detection.cli import main
from deepfake_detection.data.labelled import load_set, load_sets
from deepfake_detection.errors import DatasetError, LayoutError
from deepfake_detection.inference import read_predictions, run_predict


def _folder(root: Path, real: int = 3, fake: int = 2) -> Path:
    for label, count in (("real", real), ("fake", fake)):
        (root / label / "sub").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / label / ("sub" if i % 2 else "") / f"{label}{i}.jpg").write_bytes(jpeg_bytes(i + 10 * count))
    return root


def test_a_folder_with_real_and_fake_is_read_recursively_with_its_labels(tmp_path):
    found = load_set(str(_folder(tmp_path / "mine")))
    assert found.name == "mine" and found.counts() == {"real": 3, "fake": 2}
    assert list(found.y) == [0, 0, 0, 1, 1]  # fake is the positive class
    assert found.read[0]() == Path(found.rows["file"][0]).read_bytes()


def test_a_csv_of_path_and_label_takes_words_or_digits_relative_to_itself(tmp_path):
    _folder(tmp_path / "images")
    (tmp_path / "set.csv").write_text("path,label\nimages/real/real0.jpg,real\nimages/fake/fake0.jpg,1\n")
    found = load_set(str(tmp_path / "set.csv"))
    assert list(found.rows["label"]) == ["real", "fake"]
    assert found.read[1]() == (tmp_path / "images" / "fake" / "fake0.jpg").read_bytes()
    (tmp_path / "bad.csv").write_text("path,label\na.jpg,real\nb.jpg,maybe\n")
    with pytest.raises(LayoutError, match=r"label must be real, fake, 0 or 1.*'maybe' \(lines 3\)"):
        load_set(str(tmp_path / "bad.csv"))
    (tmp_path / "nolabel.csv").write_text("path\na.jpg\n")
    with pytest.raises(LayoutError, match="missing label"):
        load_set(str(tmp_path / "nolabel.csv"))


def test_a_prepared_dataset_gives_its_test_split_or_the_split_named(bench_dataset):
    test = load_set(str(bench_dataset))
    manifest = pd.read_csv(bench_dataset / "manifest.csv")
    assert len(test.rows) == (manifest["split"] == "test").sum()
    valid = load_set(f"{bench_dataset}:valid")
    assert valid.name.endswith("_valid") and len(valid.rows) == (manifest["split"] == "valid").sum()


def test_kaggle_downloads_as_folders_or_zips(tmp_path):
    write_140k(tmp_path / "140k", per_class=2)
    assert load_set(str(tmp_path / "140k")).counts() == {"real": 2, "fake": 2}  # its test split
    archive = zip_folder(tmp_path / "140k", tmp_path / "140k.zip")
    zipped = load_set(f"{archive}:train")
    assert zipped.counts() == {"real": 2, "fake": 2} and zipped.read[0]()[:2] == b"\xff\xd8"
    write_ciplab(tmp_path / "ciplab", per_level=1, real=2)
    assert load_set(str(tmp_path / "ciplab")).counts() == {"real": 2, "fake": 3}


def test_bad_sets_are_refused_saying_what_was_wrong(tmp_path):
    (tmp_path / "only-real" / "real").mkdir(parents=True)
    (tmp_path / "only-real" / "real" / "a.jpg").write_bytes(jpeg_bytes(1))
    with pytest.raises(DatasetError, match="only real files \\(1\\): it has real/ but no fake/"):
        load_set(str(tmp_path / "only-real"))
    _folder(tmp_path / "no-fakes", real=2, fake=0)
    with pytest.raises(DatasetError, match="has only real files"):
        load_set(str(tmp_path / "no-fakes"))
    (tmp_path / "random").mkdir()
    (tmp_path / "random" / "x.txt").write_text("x")
    with pytest.raises(LayoutError, match="is not a labelled set: give a prepared dataset"):
        load_set(str(tmp_path / "random"))
    with pytest.raises(LayoutError, match="does not exist"):
        load_set(str(tmp_path / "missing"))
    a, b = load_sets([str(_folder(tmp_path / "x" / "set")), str(_folder(tmp_path / "y" / "set"))])
    assert (a.name, b.name) == ("set", "set_2")


@pytest.fixture
def labelled(bench_dataset, tmp_path) -> Path:
    """Bench test images under real/ and fake/, with a truncated image, an empty file and a non-image."""
    folder = tmp_path / "labelled"
    for label in ("real", "fake"):
        (folder / label).mkdir(parents=True)
        for path in sorted((bench_dataset / "test" / label).iterdir()):
            shutil.copy(path, folder / label / path.name)
    good = next((folder / "real").iterdir())
    (folder / "real" / "truncated.png").write_bytes(good.read_bytes()[:60])
    (folder / "fake" / "empty.png").write_bytes(b"")
    (folder / "fake" / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.train
def test_evaluate_scores_a_registered_model_clean_and_degraded_and_logs_one_run(shared_store, labelled, tmp_path):
    result = CliRunner().invoke(
        main,
        ["evaluate", "--model", "custom_c", "--data", str(labelled), "--degradations", "jpeg_q50,downscale_0.5x"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "positive class: fake = 1" in result.output and "none (clean)" in result.output
    assert "labelled: clean ROC-AUC" in result.output and "worst" in result.output
    run_id = result.output.split("logged to run ")[1].split()[0]
    run = MlflowClient().get_run(run_id)
    metrics = run.data.metrics
    for condition in ("none", "jpeg_q50", "downscale_0.5x"):
        assert metrics[f"labelled/{condition}/refused"] == 3  # the three bad files, under every condition
        for name in ("roc_auc", "average_precision", "eer", "accuracy", "real_accuracy", "fake_accuracy"):
            low, value, high = (metrics[f"labelled/{condition}/{name}{s}"] for s in ("_ci_low", "", "_ci_high"))
            assert low <= value <= high
    # the clean ROC-AUC is what predict's scores of the same files give
    predict = run_predict(str(labelled), "custom_c", tmp_path / "p.csv", progress=False)
    scores = read_predictions(predict.output).dropna(subset=["p_fake"])
    y = np.array(["/fake/" in p for p in scores["path"]], dtype=int)
    assert metrics["labelled/none/roc_auc"] == pytest.approx(roc_auc_score(y, scores["p_fake"]), abs=1e-9)
    assert metrics["labelled/none/images"] == len(scores)
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "labelled"
    assert {t.key: t.value for t in dataset.tags}["mlflow.data.context"] == "evaluation"
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id)}
    assert {"evaluation.csv", "refused.csv", "roc_labelled.png", "auc_vs_severity.png"} <= artifacts
    refused = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/refused.csv"))
    assert sorted(Path(f).name for f in refused.query("degradation == 'none'")["file"]) == [
        "empty.png",
        "notes.txt",
        "truncated.png",
    ]
    assert refused["error"].str.len().min() > 0  # each says why


def _evaluate_runs() -> list:
    experiment = mlflow.get_experiment_by_name("deepfake-detection")
    return MlflowClient().search_runs([experiment.experiment_id], "tags.step = 'evaluate'")


@pytest.mark.train
def test_evaluate_refuses_a_one_class_set_before_any_run(shared_store, labelled):
    before = len(_evaluate_runs())  # the shared store may hold other tests' evaluations
    shutil.rmtree(labelled / "fake")
    result = CliRunner().invoke(main, ["evaluate", "--model", "custom_c", "--data", str(labelled)])
    assert result.exit_code == 1 and "only real files" in result.output
    assert len(_evaluate_runs()) == before


@pytest.mark.train
def test_mlflow_run_evaluate_entry_point(shared_store, labelled):
    done = mlflow_run(
        "evaluate",
        {"model": "custom_c", "data": str(labelled), "degradations": "none"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "none (clean)" in done.stdout
    (run,) = [r for r in _evaluate_runs() if r.data.tags.get("mlflow.project.entryPoint") == "evaluate"]
    assert "labelled/none/roc_auc" in run.data.metrics and run.info.run_name == "evaluate"


@pytest.mark.train
def test_training_scores_valid_and_test_under_the_suite_and_the_registry_keeps_the_worst(bench_dataset, tmp_path):
    from helpers import tiny_settings

    from deepfake_detection.training import run_training

    settings = tiny_settings(
        bench_dataset, tmp_path / "outputs", arch="spectrum", degradations="jpeg_q50,downscale_0.5x"
    )
    (result,) = run_training(settings)
    client = MlflowClient()
    metrics = client.get_run(result.run_id).data.metrics
    for split in ("valid", "test"):
        each = [metrics[f"{split}_{name}_roc_auc"] for name in ("jpeg_q50", "downscale_0.5x")]
        assert metrics[f"{split}_worst_degraded_roc_auc"] == pytest.approx(min(each))
        assert metrics[f"{split}_mean_degraded_roc_auc"] == pytest.approx(np.mean(each))
    for key in ("mean_degraded_roc_auc", "worst_degraded_roc_auc"):
        assert metrics[f"test_{key}_ci_low"] <= metrics[f"test_{key}"] <= metrics[f"test_{key}_ci_high"]
    table = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="robustness.csv"))
    clean = table.query("degradation == 'none'").set_index("split")["roc_auc"]
    # undegraded, the suite's pass scores what training's evaluation did: the same detector, the same files
    assert clean["test"] == pytest.approx(metrics["test_roc_auc"], abs=1e-6)
    assert clean["valid"] == pytest.approx(metrics["valid_roc_auc"], abs=1e-6)
    assert "robustness.png" in {a.path for a in client.list_artifacts(result.run_id)}
    version = client.get_model_version("deepfake-spectrum", result.version)
    assert float(version.tags["valid_worst_degraded_roc_auc"]) == pytest.approx(metrics["valid_worst_degraded_roc_auc"])
    assert "under the degradation suite: mean" in version.description
    assert result.score() == pytest.approx((metrics["valid_roc_auc"] + metrics["valid_worst_degraded_roc_auc"]) / 2)
