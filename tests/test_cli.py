"""The command-line interface and the MLproject entry points that call it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import click
import mlflow
import pytest
import yaml
from click.testing import CliRunner
from conftest import PROJECT, mlflow_run, write_ciplab
from helpers import aliases, scored_on_valid

from deepfake_detection.cli import main

TINY_BENCH = ["--image-size", "16", "--num-images", "6", "--generator-steps", "2"]


def _invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "command",
    [[], ["prepare"], ["train"], ["promote"], ["compare"], ["main"], ["predict"], ["explain"], ["serve"], ["ui"]]
    + [["access"], ["access", "init"], ["access", "grant"], ["access", "show"]],
)
def test_help(command):
    result = _invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


def test_mlproject_parameters_match_the_cli():
    """Both ways: every CLI command is an entry point with every one of its options, and every
    entry-point parameter is a CLI option with the same default. ``access`` administers a server's
    users and roles with the admin's login: not a project step, so not an entry point."""
    spec = yaml.safe_load((PROJECT / "MLproject").read_text())
    assert set(spec["entry_points"]) == set(main.commands) - {"access"}
    for name, entry in spec["entry_points"].items():
        command = main.commands[name]
        options = {
            p.opts[-1].lstrip("-").replace("-", "_"): p
            for p in command.params
            if isinstance(p, click.Option) and p.name != "help"
        }
        assert set(entry["parameters"]) == set(options), name
        for parameter, declared in entry["parameters"].items():
            assert f"{{{parameter}}}" in entry["command"], (name, parameter)
            assert f"--{parameter.replace('_', '-')} {{{parameter}}}" in " ".join(entry["command"].split())
            option = options[parameter]
            if "default" not in declared:  # a required parameter of the entry point is required by the CLI too
                assert option.required, (name, parameter)
                continue
            default = option.default
            if isinstance(default, bool):
                assert str(declared["default"]).lower() == str(default).lower(), (name, parameter)
            elif isinstance(default, (int, float)):
                assert declared["type"] == "float" and float(declared["default"]) == default, (name, parameter)
            else:
                assert declared["type"] == "string" and declared["default"] == default, (name, parameter)


@pytest.mark.slow  # builds a benchmark, training its generators
def test_prepare_bench_logs_a_run_with_its_dataset(tmp_path):
    result = _invoke("prepare", "--output", str(tmp_path / "data"), *TINY_BENCH)
    assert result.exit_code == 0, result.output
    assert "fake=1 positive" in result.output and "spectrum_auc" in result.output
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "prepare-bench"
    assert run.data.params["prepare.num_images"] == "6" and run.data.params["prepare.source"] == "bench"
    assert run.data.metrics["images_total"] == 12 and run.data.metrics["images_rejected"] == 0
    assert 0 <= run.data.metrics["colour_histogram_auc"] <= 1
    assert run.data.tags["positive_class"] == "fake" and len(run.data.tags["dataset_digest"]) == 16
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "dataset")}
    assert artifacts == {"dataset/manifest.csv", "dataset/rejected.csv", "dataset/dataset.json"}
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == run.data.tags["dataset_digest"]
    assert dataset_input.tags[0].value == "prepared"
    assert Path(client.get_experiment(experiment.experiment_id).artifact_location.replace("file://", "")) == (
        tmp_path / "mlruns"
    )


def test_prepare_kaggle_from_the_cli(tmp_path):
    ciplab = write_ciplab(tmp_path / "ciplab")
    result = _invoke(
        "prepare", "--source", "kaggle", "--ciplab", str(ciplab), "--output", str(tmp_path / "out"), "--track", "false"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "test_ciplab").is_dir()
    assert not (tmp_path / "mlflow.db").exists()  # --track false touches no tracking store


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "kaggle"], "needs --kaggle-140k and/or --ciplab"),
        (["--source", "kaggle", "--ciplab", "/no/such/download.zip"], "does not exist"),
        (["--split", "0.5,0.6,0.1"], "summing to 1"),
        (["--source", "somewhere"], "Invalid value for '--source'"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_message(tmp_path, args, message):
    result = CliRunner().invoke(main, ["prepare", "--output", str(tmp_path / "out"), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--arch", "custom_a", "--image-size", "16"], "custom_a needs images of at least 32 px, got 16"),
        (["train", "--arch", "custom_a,resnet"], "unknown architecture(s) resnet"),
        (["train", "--arch", "densenet121", "--weights", "no-such.h5"], "weights 'no-such.h5' is neither"),
        (["main", "--arch", "custom_a", "--image-size", "16"], "custom_a needs images of at least 32 px, got 16"),
        (["prepare", "--image-size", "30"], "bench image size must be a multiple of 4 and at least 16, got 30"),
    ],
)
def test_wrong_settings_are_one_line_errors_before_any_run(tmp_path, args, message):
    where = "--output" if args[0] == "prepare" else "--data"
    result = CliRunner().invoke(main, [*args, where, str(tmp_path / "data")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # click's own error exit, not an uncaught exception
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert message in result.output
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()  # no run was opened


def test_unreachable_tracking_server_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    started = time.monotonic()
    result = CliRunner().invoke(main, ["prepare", "--output", str(tmp_path / "out"), *TINY_BENCH])
    assert result.exit_code == 1
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:9" in result.output
    assert time.monotonic() - started < 30
    assert not (tmp_path / "out").exists()


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "deepfake_detection", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "prepare" in result.stdout


@pytest.mark.slow
def test_mlflow_run_prepare_entry_point_in_a_uv_environment_built_from_conda_yaml(tmp_path):
    """The prepare entry point, by the route for users without conda: `mlflow run . --env-manager uv`
    builds an isolated environment from conda.yaml with uv (from PyPI; cached after the first time)
    and runs in it. The local environment manager runs the train, evaluate, explain and predict
    entry points in other tests."""
    parameters = {"output": tmp_path / "data", "image_size": 16, "num_images": 6, "generator_steps": 2}
    result = mlflow_run("prepare", parameters, env_manager="uv", capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # It ran inside the environment MLflow made (or reused) with uv, not this virtual environment.
    assert re.search(r"Running command 'source \S+/mlflow-\w+/bin/activate && ", result.stderr), result.stderr[-3000:]
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("deepfake-detection").experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics["images_total"] == 12
    assert run.data.tags["mlflow.project.entryPoint"] == "prepare"
    assert run.inputs.dataset_inputs
    assert (tmp_path / "data" / "manifest.csv").is_file()


def test_ui_links_open_the_published_views(monkeypatch):
    missing = _invoke("ui", "--links-only", "true")
    assert missing.exit_code == 1 and "no experiment 'deepfake-detection'" in missing.output
    experiment_id = mlflow.create_experiment("deepfake-detection")
    result = _invoke("ui", "--links-only", "true", "--port", "5123")
    assert result.exit_code == 0, result.output
    for key in ("leaderboard", "comparison"):
        link = f"http://127.0.0.1:5123/#/experiments/{experiment_id}/runs?viewStateShareKey={key}"
        assert link in result.output
    tags = mlflow.MlflowClient().get_experiment(experiment_id).tags
    assert {"mlflow.sharedViewState.leaderboard", "mlflow.sharedViewState.comparison"} <= set(tags)
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    mlflow.MlflowClient().set_experiment_tag(experiment_id, "mlflow.experimentKind", "genai_development")
    assert _invoke("ui", "--links-only", "true").exit_code == 0  # a kind someone chose is left alone
    assert mlflow.MlflowClient().get_experiment(experiment_id).tags["mlflow.experimentKind"] == "genai_development"


@pytest.mark.train
def test_main_builds_the_benchmark_once_and_nests_its_runs(tmp_path):
    data = tmp_path / "data"
    args = [
        "main",
        "--data",
        str(data),
        "--image-size",
        "32",
        "--num-images",
        "12",
        "--arch",
        "custom_a",
        "--epochs",
        "1",
        "--max-trials",
        "1",
    ]
    first = _invoke(*args)
    assert first.exit_code == 0, first.output
    assert "pca_svm" in first.output and "main finished" in first.output
    summary = (data / "dataset.json").read_text()
    second = _invoke(*args[:-2], "--max-trials", "0", "--budget-minutes", "0")  # no search, no measuring
    assert second.exit_code == 0 and "using the existing dataset" in second.output
    assert (data / "dataset.json").read_text() == summary
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("deepfake-detection").experiment_id])
    by_name = {}
    for run in runs:
        by_name.setdefault(run.info.run_name, []).append(run)
    assert len(by_name["main"]) == 2 and len(by_name["prepare-bench"]) == 1
    assert len(by_name["train"]) == 2 and len(by_name["compare"]) == 2
    main_ids = {run.info.run_id for run in by_name["main"]}
    for step in ("prepare-bench", "train", "compare"):
        assert all(run.data.tags["mlflow.parentRunId"] in main_ids for run in by_name[step]), step
    # Two versions, scored here on valid: one no better than chance there (likely at 12 images a
    # class, 1 epoch) is never champion; of the others the best ROC-AUC is, the earlier on a tie.
    # main compares the versions it trained, champion or not.
    versions = client.search_model_versions("name = 'deepfake-custom_a'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    scored = {v: scored_on_valid(f"models:/deepfake-custom_a/{v}", data) for v in ("1", "2")}
    candidates = [v for v, (beats_chance, _) in scored.items() if beats_chance]
    best = max(candidates, key=lambda v: (scored[v][1], -int(v)), default=None)
    assert aliases(client, "deepfake-custom_a").get("champion") == best
    stages = {str(v.version): v.current_stage for v in versions}
    assert [n for n, stage in stages.items() if stage == "Production"] == ([best] if best else [])
    compared = {run.data.tags["model.custom_a"] for run in by_name["compare"]}
    assert compared == {"deepfake-custom_a/1", "deepfake-custom_a/2"}
    assert ("degenerate" in first.output) == (not scored["1"][0])  # said when it is
