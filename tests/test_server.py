"""A shared tracking server: train + compare against a real ``mlflow server`` on PostgreSQL,
checked through its REST API (not the Python client)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import psycopg2
import pytest
import requests
from helpers import aliases as registered_aliases
from helpers import expected_role, tiny_settings, tiny_train_args
from mlflow import MlflowClient

from deepfake_detection import registry, tracking
from deepfake_detection.compare import run_compare
from deepfake_detection.config import CompareSettings
from deepfake_detection.training import run_training

pytestmark = [pytest.mark.server, pytest.mark.slow]

PNG = b"\x89PNG\r\n\x1a\n"


def _api(server, method: str, endpoint: str, **kwargs) -> dict:
    response = requests.request(method, f"{server.url}/api/2.0/{endpoint}", timeout=30, **kwargs)
    assert response.status_code == 200, f"{endpoint}: HTTP {response.status_code} {response.text[:500]}"
    return response.json()


def _tags(run: dict) -> dict:
    return {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}


def test_train_and_compare_against_a_shared_tracking_server(tracking_server, bench_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    work_dir = str(tmp_path / "outputs")
    run_training(tiny_settings(bench_dataset, work_dir))
    run_compare(CompareSettings(models="custom_a", data=str(bench_dataset), n_components=8, work_dir=work_dir))

    # Runs: the train parent, its child and the compare run, all FINISHED.
    experiment = _api(
        tracking_server, "GET", "mlflow/experiments/get-by-name", params={"experiment_name": "deepfake-detection"}
    )["experiment"]
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")  # the server's, not a local path
    runs = _api(
        tracking_server,
        "POST",
        "mlflow/runs/search",
        json={"experiment_ids": [experiment["experiment_id"]], "max_results": 100},
    )["runs"]
    by_name = {run["info"]["run_name"]: run for run in runs}
    classifiers = {f"compare-custom_a-{c}" for c in ("cnn_head", "pca_svm", "pca_svm_nystroem")}
    assert set(by_name) == {"train", "train-custom_a", "compare", *classifiers}  # compare in long format
    assert {run["info"]["status"] for run in runs} == {"FINISHED"}
    train, child, compare = by_name["train"], by_name["train-custom_a"], by_name["compare"]
    assert _tags(child)["mlflow.parentRunId"] == train["info"]["run_id"]
    assert _tags(compare)["model.custom_a"] == "deepfake-custom_a/1"

    # Registry: version 1 of deepfake-custom_a from the child run; champion unless it is no better
    # than chance on valid (which 1 epoch on 24 images a class can be), else challenger.
    model = _api(tracking_server, "GET", "mlflow/registered-models/get", params={"name": "deepfake-custom_a"})[
        "registered_model"
    ]
    role, stage = expected_role("models:/deepfake-custom_a/1", bench_dataset)
    assert {(a["alias"], a["version"]) for a in model["aliases"]} == {(role, "1")}
    version = _api(
        tracking_server,
        "GET",
        "mlflow/registered-models/alias",
        params={"name": "deepfake-custom_a", "alias": role},
    )["model_version"]
    assert version["version"] == "1" and version["run_id"] == child["info"]["run_id"]
    assert version["current_stage"] == stage

    # Artifacts: listed and served by the server, stored under its --artifacts-destination.
    files = _api(tracking_server, "GET", "mlflow/artifacts/list", params={"run_id": child["info"]["run_id"]})["files"]
    plots = ("roc", "precision_recall", "confusion_matrix", "training_curves", "reliability")
    assert {f"{name}.png" for name in plots} <= {f["path"] for f in files}
    for run, path in ((child, "roc.png"), (compare, "plots/roc_overlay.png")):
        served = requests.get(
            f"{tracking_server.url}/get-artifact", timeout=30, params={"run_id": run["info"]["run_id"], "path": path}
        )
        assert served.status_code == 200 and served.content[:8] == PNG, path
        root = run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:").lstrip("/")  # <experiment>/<run>/artifacts
        proxied = requests.get(f"{tracking_server.url}/api/2.0/mlflow-artifacts/artifacts/{root}/{path}", timeout=30)
        assert proxied.status_code == 200 and proxied.content == served.content
        stored = tracking_server.artifacts / root / path
        assert stored.read_bytes() == served.content
    assert not (tmp_path / "mlruns").exists()  # nothing went to the client's local store

    # The runs live in PostgreSQL.
    with (
        psycopg2.connect(
            host=str(tracking_server.socket_dir), port=tracking_server.pg_port, user="mlflow", dbname="mlflow"
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT name, status FROM runs")
        assert sorted(cursor.fetchall()) == sorted(
            (name, "FINISHED") for name in ("compare", "train", "train-custom_a", *classifiers)
        )
    connection.close()


def test_the_database_is_not_exposed(tracking_server):
    """PostgreSQL has no TCP listener at all: only the unix socket in a private folder."""
    assert (tracking_server.socket_dir / f".s.PGSQL.{tracking_server.pg_port}").is_socket()
    with pytest.raises(OSError):  # connection refused: nothing listens on the database port
        socket.create_connection(("127.0.0.1", tracking_server.pg_port), timeout=2).close()
    connection = psycopg2.connect(
        host=str(tracking_server.socket_dir), port=tracking_server.pg_port, user="mlflow", dbname="mlflow"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW listen_addresses")
            assert cursor.fetchone() == ("",)
    finally:
        connection.close()
    assert (tracking_server.socket_dir.stat().st_mode & 0o077) == 0  # the socket folder is private
    assert requests.get(f"{tracking_server.url}/health", timeout=5).status_code == 200


def _train_command(data, work_dir, seed: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "deepfake_detection",
        "train",
        *tiny_train_args(data, work_dir, arch="npr", seed=seed),
    ]


def test_two_trains_registering_at_once_get_consecutive_versions_and_one_champion(
    tracking_server, bench_dataset, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    client = MlflowClient(tracking_server.url)
    before = {r.info.run_id for e in client.search_experiments() for r in client.search_runs([e.experiment_id])}
    logs = [(tmp_path / f"train{i}.log").open("w+") for i in (1, 2)]
    processes = [
        subprocess.Popen(
            _train_command(bench_dataset, tmp_path / f"outputs{i}", seed=i), stdout=log, stderr=subprocess.STDOUT
        )
        for i, log in zip((1, 2), logs)
    ]
    try:
        for i, process in zip((1, 2), processes):
            assert process.wait(timeout=300) == 0, (tmp_path / f"train{i}.log").read_text()[-3000:]
    finally:
        for process in processes:
            process.kill()
    experiment = client.get_experiment_by_name("deepfake-detection")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_id not in before]
    assert sorted(r.info.run_name for r in runs) == ["train", "train", "train-npr", "train-npr"]
    assert {r.info.status for r in runs} == {"FINISHED"}  # no run lost or left RUNNING
    name = "deepfake-npr"
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    assert [str(v.version) for v in versions] == ["1", "2"]
    assert {v.run_id for v in versions} == {r.info.run_id for r in runs if r.info.run_name == "train-npr"}
    # the election's own rule (registry.robust_score: clean and worst-degraded valid ROC-AUC), the earlier on a tie
    best = max(versions, key=lambda v: (registry.robust_score(v.tags), -int(v.version)))
    aliases = registered_aliases(client, name)
    print(f"observed: versions {[(v.version, v.tags['valid_roc_auc']) for v in versions]}, aliases {aliases}")
    expected = {"champion": str(best.version)} | ({"challenger": "2"} if str(best.version) == "1" else {})
    assert aliases == expected  # the challenger is the newest version after the champion, if any
    stages = {str(v.version): v.current_stage for v in client.search_model_versions(f"name = '{name}'")}
    other = "1" if str(best.version) == "2" else "2"
    assert stages[str(best.version)] == "Production"
    # Newer than the champion: the challenger, in Staging. Older: archived if it was ever champion,
    # else never staged ("None"), depending on which registration the first election saw.
    assert stages[other] in ({"Staging"} if other == "2" else {"Archived", "None"}), stages


def test_many_registrations_at_once_elect_the_best_version(tracking_server, monkeypatch):
    """The election under real contention: 12 threads register and elect at the same moment."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)
    import mlflow

    mlflow.set_tracking_uri(tracking_server.url)
    client = MlflowClient(tracking_server.url)
    name = registry.registered_name("race")
    client.create_registered_model(name)
    experiment_id = tracking.ensure_experiment("race")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_text("not a model: the registry only stores where it is", "model/MLmodel")
    source = f"{run.info.artifact_uri}/model"
    scores = [0.61, 0.74, 0.52, 0.74, 0.69, 0.58, 0.71, 0.66, 0.49, 0.73, 0.55, 0.60]
    start = threading.Barrier(len(scores))
    errors = []

    def register(score: float) -> None:
        try:
            start.wait()
            tags = {"dataset_digest": "d", "valid_roc_auc": f"{score:.6f}", "test_roc_auc": f"{1 - score:.6f}"}
            client.create_model_version(name, source, run_id=run.info.run_id, tags=tags)
            registry.settle(client, "race", "d")
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=register, args=(score,)) for score in scores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    versions = {int(v.version): v for v in client.search_model_versions(f"name = '{name}'")}
    assert sorted(versions) == list(range(1, len(scores) + 1))  # consecutive, none lost
    # Chosen on valid (test is 1 - valid here, so a choice on test would pick the worst).
    best = max(versions.values(), key=lambda v: (float(v.tags["valid_roc_auc"]), -int(v.version)))
    assert float(best.tags["valid_roc_auc"]) == max(scores)
    newest = str(len(scores))
    expected = {"champion": str(best.version)} | ({"challenger": newest} if str(best.version) != newest else {})
    assert (
        registered_aliases(client, name) == expected
    )  # the challenger is the newest version after the champion, if any
    stages = {str(n): v.current_stage for n, v in versions.items()}
    assert [role for role, stage in stages.items() if stage == "Production"] == [str(best.version)]
    assert [role for role, stage in stages.items() if stage == "Staging"] == (
        [newest] if str(best.version) != newest else []
    )
