"""train --distribute multi-host: one model fitted by several processes (Keras 3 DataParallel on
JAX), here two processes on 127.0.0.1; process 0 alone logs and registers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import tiny_train_args, wait_until
from mlflow import MlflowClient
from tracking_server import free_port

from deepfake_detection import tracking
from deepfake_detection.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def jax_compilation_cache(tmp_path_factory, monkeypatch):
    """JAX's persistent compilation cache, one for the session (every xdist worker's): each fit's
    XLA programs are compiled once, and the next processes that fit the same model load them."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(root / "jax-compilation-cache"))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def train_args(data: Path, work_dir: Path, port: int, **overrides) -> list[str]:
    """The tiny training, data-parallel over two processes on 127.0.0.1:``port`` (add ``--process-id``)."""
    cluster = {"distribute": "multi-host", "coordinator": f"127.0.0.1:{port}", "num_processes": 2}
    options = {"epochs": 2, "max_trials": 1, "tuner": "random", "batch_size": 8, "distribute_timeout": 60}
    return tiny_train_args(data, work_dir, **(options | cluster | overrides))


class Process:
    """One ``deepfake-detection train`` process, its output in a file."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "deepfake_detection", "train", *args],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    @property
    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, condition, what: str, timeout: float = 240) -> None:
        wait_until(condition, timeout, what, process=self.popen, output=lambda: self.output)

    def finish(self, timeout: float = 300) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise AssertionError(f"still running after {timeout} s:\n{self.output[-3000:]}") from None


def start_cluster(tmp_path: Path, data: Path, port: int, worker_overrides=None, **overrides) -> list[Process]:
    tracking.configure()  # create the SQLite store once, before two processes open it
    return [
        Process(
            train_args(data, tmp_path / f"outputs{i}", port, **{**overrides, **((worker_overrides or {}) if i else {})})
            + ["--process-id", str(i)],
            tmp_path / f"process{i}.log",
        )
        for i in range(2)
    ]


def runs_and_versions():
    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return runs, client.search_model_versions("name = 'deepfake-custom_a'")


def test_two_processes_train_one_model_that_tensorflow_serves(bench_dataset, tmp_path):
    chief, worker = start_cluster(tmp_path, bench_dataset, free_port())
    try:
        assert chief.finish() == 0, chief.output[-3000:]
        assert worker.finish() == 0, worker.output[-3000:]
    finally:
        for process in (chief, worker):
            process.popen.kill()
    assert "process 0 is done; nothing was logged here" in worker.output

    runs, versions = runs_and_versions()
    (child,) = [r for r in runs if r.info.run_name == "train-custom_a"]
    assert child.info.status == "FINISHED"
    assert child.data.params["keras_backend"] == "jax"
    assert child.data.params["num_processes"] == "2" and child.data.params["distribute"] == "multi-host"
    # Every run (train, train-custom_a, the search's trial) comes from process 0.
    assert {r.data.tags["pid"] for r in runs} == {str(chief.popen.pid)}
    assert len(runs) == 3
    # The two processes ended with the same weights (process 0 checked; process 1 printed its digest).
    worker_digest = re.search(r"weights sha256 ([0-9a-f]{12})", worker.output).group(1)
    assert child.data.tags["weights_sha256"].startswith(worker_digest)
    assert child.data.tags["processes_with_these_weights"] == "2"
    (version,) = versions
    assert version.run_id == child.info.run_id

    # Under TensorFlow (this process), predict gives the p_fake process 0 measured under JAX.
    output = tmp_path / "predictions.csv"
    result = CliRunner().invoke(
        main,
        ["predict", "--input", str(bench_dataset / "test"), "--model", "models:/deepfake-custom_a/1"]
        + ["--output", str(output)],
    )
    assert result.exit_code == 0, result.output
    logged = MlflowClient().download_artifacts(child.info.run_id, "predictions/test.json", str(tmp_path))
    table = json.loads(Path(logged).read_text())
    jax_p = pd.DataFrame(table["data"], columns=table["columns"]).set_index("path")["p_fake"]
    tf_p = pd.read_csv(output).assign(path=lambda f: f.path.map(lambda p: str(Path(p).relative_to(bench_dataset))))
    tf_p = tf_p.set_index("path")["p_fake"]
    assert len(tf_p) == len(jax_p) == 8
    np.testing.assert_allclose(tf_p.loc[jax_p.index].to_numpy(), jax_p.to_numpy(), rtol=0, atol=1e-5)

    # The registered network itself, on inputs that spread its outputs: JAX and TensorFlow agree.
    import keras
    import mlflow

    from deepfake_detection.model import KERAS_FILE

    folder = Path(mlflow.artifacts.download_artifacts("models:/deepfake-custom_a/1", dst_path=str(tmp_path / "m")))
    (keras_file,) = folder.rglob(KERAS_FILE)
    pixels = np.random.default_rng(0).uniform(0, 255, size=(16, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "pixels.npy", pixels)
    jax_script = (
        "import sys, numpy as np, keras, deepfake_detection.architectures; "
        "m = keras.saving.load_model(sys.argv[1]); m = keras.Model(m.inputs, [m.outputs[0], "
        "m.get_layer('embedding').output]); np.savez(sys.argv[3], *m.predict(np.load(sys.argv[2]), verbose=0))"
    )
    subprocess.run(
        [sys.executable, "-c", jax_script, str(keras_file), str(tmp_path / "pixels.npy"), str(tmp_path / "jax.npz")],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        check=True,
        timeout=120,
    )
    on_jax = np.load(tmp_path / "jax.npz")
    model = keras.saving.load_model(keras_file)
    on_tf = keras.Model(model.inputs, [model.outputs[0], model.get_layer("embedding").output]).predict(
        pixels, verbose=0
    )
    assert keras.backend.backend() == "tensorflow"
    np.testing.assert_allclose(on_tf[0], on_jax["arr_0"], rtol=0, atol=1e-5)  # p_fake
    np.testing.assert_allclose(on_tf[1], on_jax["arr_1"], rtol=1e-4, atol=1e-7)  # the 512-d embedding
    assert on_tf[1].std(axis=0).max() > 1e-3  # which differs from image to image


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"process_id": 2}, "--process-id must be in 0..1"),
        ({"batch_size": 9}, "choose a multiple of --num-processes 2"),
        ({"coordinator": "localhost"}, "--coordinator must be HOST:PORT"),
        ({"num_processes": 0, "process_id": 0}, "--num-processes must be at least 1"),
    ],
)
def test_a_cluster_that_cannot_work_is_refused_before_any_run(bench_dataset, tmp_path, overrides, message):
    args = train_args(bench_dataset, tmp_path, free_port(), **{"process_id": 0, **overrides})
    result = CliRunner().invoke(main, ["train", *args])
    assert result.exit_code != 0 and message in result.output, result.output
    assert runs_and_versions() == ([], [])


def test_unreachable_coordinator_and_taken_port_fail_within_the_timeout(bench_dataset, tmp_path):
    port = free_port()
    lonely = Process(
        train_args(bench_dataset, tmp_path, port, distribute_timeout=3) + ["--process-id", "1"],
        tmp_path / "lonely.log",
    )
    assert lonely.finish(timeout=120) == 1
    assert f"cannot reach the coordinator 127.0.0.1:{port} within 3 s" in lonely.output

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        blocked = Process(train_args(bench_dataset, tmp_path, port) + ["--process-id", "0"], tmp_path / "blocked.log")
        assert blocked.finish(timeout=120) == 1
    assert f"coordinator on port {port}, but it is taken" in blocked.output
    assert runs_and_versions() == ([], [])


def test_processes_with_different_settings_refuse_to_start(bench_dataset, tmp_path):
    chief, worker = start_cluster(tmp_path, bench_dataset, free_port(), worker_overrides={"epochs": 3})
    assert worker.finish() == 1 and chief.finish() == 1
    assert "settings differ from process 0's: epochs 3 here, 2 on process 0" in worker.output
    assert "process 1 refused to start: settings differ: epochs 3 here, 2 on process 0" in chief.output
    assert runs_and_versions()[1] == []
    assert all(r.data.tags.get("step") != "train-architecture" for r in runs_and_versions()[0])


def fitting() -> bool:
    """Process 0 has logged an epoch of its final fit: both processes are inside the fit's steps."""
    runs, _ = runs_and_versions()
    return any("train_epoch_loss" in r.data.metrics for r in runs if r.info.run_name == "train-custom_a")


@pytest.mark.parametrize(
    ("victim", "survivor_codes", "survivor_says", "runs_left"),
    [
        # Process 0's fit fails at its next step: it says so, exits 1 and ends its runs FAILED.
        (1, {1}, ("the data-parallel custom_a fit stopped",), {"FAILED"}),
        # Process 1's fit fails the same way (exit 1), or JAX ends it (SIGABRT) when the coordinator's
        # process is gone; process 0's runs stay as the kill left them.
        (0, {1, -signal.SIGABRT}, ("fit stopped", "another task died"), {"RUNNING"}),
    ],
    ids=["process-1-dies", "process-0-dies"],
)
def test_a_process_dying_mid_fit_stops_the_other_and_registers_nothing(
    bench_dataset, tmp_path, victim, survivor_codes, survivor_says, runs_left
):
    # Many epochs, so the fit is still running when a process is killed.
    processes = start_cluster(tmp_path, bench_dataset, free_port(), epochs=200, patience=200, tuner="none")
    try:
        processes[0].wait_for(fitting, "a finished epoch of process 0's fit")
        processes[victim].popen.send_signal(signal.SIGKILL)
        survivor = processes[1 - victim]
        code = survivor.finish(timeout=120)  # it stops instead of waiting for the dead process
    finally:
        for process in processes:
            process.popen.kill()
    assert code in survivor_codes, survivor.output[-3000:]
    assert any(text in survivor.output for text in survivor_says), survivor.output[-2000:]
    runs, versions = runs_and_versions()
    assert {r.info.status for r in runs} == runs_left
    assert versions == []
