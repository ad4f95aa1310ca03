"""train across processes: killed twice with SIGKILL and resumed (orphaned runs reaped, the
search and the fit go on from their backups), the mirrored strategy on two logical devices in a
process of its own, and the multi-worker strategy (an upstream Keras bug, expected to fail)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import mlflow_run
from helpers import CLEAN_ONLY, SEARCH, cli_options, tiny_training, wait_until
from mlflow import MlflowClient
from tracking_server import free_port


def _wait_for(process, root: Path, pattern: str) -> None:
    wait_until(lambda: list(root.glob(pattern)), 300, pattern, process=process, interval=0.05)


@pytest.mark.train
def test_train_killed_mid_search_and_mid_fit_resumes_and_leaves_no_orphans(bench_dataset, tmp_path):
    work = tmp_path / "outputs"
    options = tiny_training(bench_dataset, work, epochs=6, batch_size=8, patience=10, **SEARCH, **CLEAN_ONLY)
    command = [sys.executable, "-m", "deepfake_detection", "train", *cli_options(options)]
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
    third = mlflow_run("train", options, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
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
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from deepfake_detection.config import TrainSettings
from deepfake_detection.training import run_training

(result,) = run_training(TrainSettings(**json.loads(sys.argv[1])))
print("registered", result.version, result.test["roc_auc"])
"""


@pytest.mark.train
def test_mirrored_strategy_trains_on_two_logical_devices(bench_dataset, tmp_path):
    settings = tiny_training(
        bench_dataset, tmp_path / "outputs", tuner="random", max_trials=1, distribute="mirrored", **CLEAN_ONLY
    )
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED, json.dumps(settings)],
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


@pytest.mark.train
@pytest.mark.xfail(
    raises=AssertionError,
    strict=True,  # a pass is news: the README says this is no route because of the bug
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
