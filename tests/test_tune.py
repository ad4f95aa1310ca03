"""Distributed tuning: keras-tuner's chief/worker mode over gRPC, one MLflow run per trial."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter

import pytest
from helpers import CLEAN_ONLY, aliases, expected_role, tiny_train_args
from mlflow import MlflowClient
from tracking_server import free_port

from deepfake_detection import tracking
from deepfake_detection.config import TrainSettings
from deepfake_detection.distributed import _exclusive, run_tuning
from deepfake_detection.errors import TuningError


@pytest.mark.train
def test_one_chief_two_workers_share_one_search(bench_dataset, tmp_path):
    common = tiny_train_args(bench_dataset, tmp_path / "outputs", max_trials=4, tuner="random", **CLEAN_ONLY)
    common += ["--oracle", f"127.0.0.1:{free_port()}"]
    tune = [sys.executable, "-m", "deepfake_detection", "tune"]
    tracking.configure()  # create the SQLite store once: three processes creating it at once collide
    tracking.ensure_experiment()
    logs = {name: (tmp_path / f"{name}.log").open("w+") for name in ("chief", "w1", "w2")}
    # Workers first: they wait for the chief's run and for its oracle.
    processes = {
        name: subprocess.Popen(
            tune + ["--role", "worker", "--worker-id", name, "--wait", "120"] + common,
            stdout=logs[name],
            stderr=subprocess.STDOUT,
        )
        for name in ("w1", "w2")
    }
    processes["chief"] = subprocess.Popen(
        tune + ["--role", "chief"] + common, stdout=logs["chief"], stderr=subprocess.STDOUT
    )
    try:
        for name, process in processes.items():
            assert process.wait(timeout=400) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    finally:
        for process in processes.values():
            process.kill()
    assert "custom_a" in (tmp_path / "chief.log").read_text()

    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    runs = client.search_runs([experiment.experiment_id])
    (top,) = [r for r in runs if r.info.run_name == "tune"]
    (chief,) = [r for r in runs if r.info.run_name == "train-custom_a"]
    assert chief.data.tags["mlflow.parentRunId"] == top.info.run_id and chief.info.status == "FINISHED"
    trials = [r for r in runs if r.data.tags.get("step") == "trial"]
    # Every trial exactly once, nested under the chief's run, run by the workers (never by the chief).
    assert sorted(Counter(t.data.tags["trial_id"] for t in trials).values()) == [1, 1, 1, 1]
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {chief.info.run_id}
    assert {t.data.tags["tuner_id"] for t in trials} == {"w1", "w2"}
    assert all(t.info.status == "FINISHED" and "valid_epoch_auc" in t.data.metrics for t in trials)
    # The best trial's hyperparameters were trained once and registered once.
    best = max(trials, key=lambda t: t.data.metrics["valid_epoch_auc"])
    assert float(chief.data.params["best.learning_rate"]) == pytest.approx(float(best.data.params["hp.learning_rate"]))
    (version,) = client.search_model_versions("name = 'deepfake-custom_a'")
    assert str(version.version) == "1" and version.run_id == chief.info.run_id
    role, stage = expected_role("models:/deepfake-custom_a/1", bench_dataset)  # no better than chance: challenger
    assert aliases(client, "deepfake-custom_a") == {role: "1"} and version.current_stage == stage


def test_a_worker_id_in_use_is_refused(tmp_path):
    lock = tmp_path / "search" / "w1.lock"
    with _exclusive(lock, "w1"), pytest.raises(TuningError, match="worker id 'w1' is taken"), _exclusive(lock, "w1"):
        pass
    with _exclusive(lock, "w1"):  # released with its holder: a restarted worker takes it again
        pass


def test_bad_tuning_settings_fail_before_any_search(bench_dataset, tmp_path):
    settings = TrainSettings(arch="custom_a", data=str(bench_dataset), image_size=32, work_dir=str(tmp_path / "out"))
    for changes, role, worker_id, oracle, message in [
        ({"arch": "custom_a,npr"}, "chief", "", "127.0.0.1:1", "one architecture at a time"),
        ({"tuner": "none"}, "chief", "", "127.0.0.1:1", "needs a tuner"),
        ({}, "chief", "", "localhost", "HOST:PORT"),
        ({}, "worker", "", "127.0.0.1:1", "needs --worker-id"),
        ({}, "worker", "chief-2", "127.0.0.1:1", "without the word 'chief'"),
    ]:
        with pytest.raises(TuningError, match=message):
            run_tuning(TrainSettings(**{**settings.__dict__, **changes}), role, oracle, worker_id)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(TuningError, match="cannot listen on 127.0.0.1:.*in use"):
            run_tuning(settings, "chief", f"127.0.0.1:{taken.getsockname()[1]}")
    with pytest.raises(TuningError, match="no chief is running the search"):
        run_tuning(settings, "worker", f"127.0.0.1:{free_port()}", "w1", wait_seconds=0)
    assert not [name for name in os.environ if name.startswith("KERASTUNER_")]  # the role does not outlive the call
    assert not MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()]
    )  # nothing was logged
