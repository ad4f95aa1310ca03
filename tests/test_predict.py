"""predict, REST serving and explain with a real registered detector (the shared custom_c: 32 px, 1 epoch)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from click.testing import CliRunner
from conftest import jpeg_bytes, mlflow_run
from helpers import answers, build_params, wait_until
from PIL import Image
from tracking_server import free_port

from deepfake_detection import explain
from deepfake_detection.cli import main
from deepfake_detection.errors import MissingModelError
from deepfake_detection.inference import COLUMNS, InputError, read_predictions, run_predict

CHAMPION = "models:/deepfake-custom_c@champion"


@pytest.fixture
def images(bench_dataset, tmp_path) -> Path:
    """A folder tree of bench test images, with a non-image, a truncated PNG and a nested folder."""
    folder = tmp_path / "to-score"
    for label in ("real", "fake"):
        for path in sorted((bench_dataset / "test" / label).iterdir())[:3]:
            target = folder / label / "nested" / path.name if label == "fake" else folder / label / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    good = next((folder / "real").iterdir())
    (folder / "notes.txt").write_text("not an image")
    (folder / "real" / "truncated.jpg").write_bytes(good.read_bytes()[:60])
    return folder


def _start(command: list[str], port: int, env: dict) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(
            lambda: answers(f"http://127.0.0.1:{port}/ping"),
            180,
            "answer to /ping",
            process=process,
            output=lambda: process.stdout.read() if process.poll() is not None else "",
        )
    except AssertionError:
        process.kill()
        raise
    return process


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _payload(paths: list[Path]) -> dict:
    return {
        "dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(p.read_bytes()).decode()] for p in paths]}
    }


@pytest.mark.train
def test_predict_folder_writes_csv_and_reports_bad_files(shared_store, images, tmp_path):
    summary = run_predict(str(images), "custom_c", tmp_path / "out" / "predictions.csv", batch_size=4, progress=False)
    table = read_predictions(summary.output)
    assert tuple(table.columns) == COLUMNS
    assert len(table) == summary.images == 8  # 6 images, a truncated file, a non-image
    assert summary.errors == 2 and summary.fake + summary.real == 6
    bad = table[table["error"] != ""]
    assert {Path(p).name for p in bad["path"]} == {"truncated.jpg", "notes.txt"}
    assert bad["p_fake"].isna().all() and (bad["label"] == "").all()
    good = table[table["error"] == ""]
    assert good["p_fake"].between(0, 1).all()
    expected = np.where(good["p_fake"] >= good["threshold"], "fake", "real")
    assert (good["label"] == expected).all()
    assert (table["model_uri"] == CHAMPION).all()
    assert any("/nested/" in p for p in good["path"])  # folders are searched recursively
    assert not list((tmp_path / "out").glob(".*partial*"))


@pytest.mark.train
def test_predict_pyfunc_and_stage_uri_agree(shared_store, images, tmp_path):
    files = sorted(images.rglob("bench_*"))
    assert len(files) == 6
    by_alias = read_predictions(run_predict(str(images), CHAMPION, tmp_path / "a.csv", progress=False).output)
    by_stage = read_predictions(
        run_predict(str(images), "models:/deepfake-custom_c/Production", tmp_path / "b.csv", progress=False).output
    )
    np.testing.assert_allclose(by_alias["p_fake"], by_stage["p_fake"])
    pyfunc = mlflow.pyfunc.load_model(CHAMPION)
    from_bytes = pyfunc.predict(pd.DataFrame({"image": [p.read_bytes() for p in files]}))
    from_paths = pyfunc.predict(pd.DataFrame({"path": [str(p) for p in files]}))
    expected = by_alias.set_index("path").loc[[str(p) for p in files]]
    np.testing.assert_allclose(from_bytes["p_fake"], expected["p_fake"], atol=1e-6)
    np.testing.assert_allclose(from_paths["p_fake"], expected["p_fake"], atol=1e-6)
    assert list(from_bytes["label"]) == list(expected["label"])


@pytest.mark.train
def test_mlflow_models_serve_agrees_with_predict_and_refuses_bad_requests(shared_store, images, tmp_path):
    files = sorted(p for p in images.rglob("bench_*"))
    expected = read_predictions(run_predict(str(images), CHAMPION, tmp_path / "p.csv", progress=False).output)
    expected = expected.set_index("path").loc[[str(p) for p in files]]
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DEEPFAKE_MAX_REQUEST_BYTES": "200000",
    }
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        CHAMPION,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    server = _start(command, port, env)
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        answer = requests.post(url, json=_payload(files), timeout=60)
        assert answer.status_code == 200, answer.text
        rows = pd.DataFrame(answer.json()["predictions"])
        np.testing.assert_allclose(rows["p_fake"], expected["p_fake"], atol=1e-6)
        assert list(rows["label"]) == list(expected["label"])
        # A bad image in the batch is reported in its row; the others are still scored.
        bad = {
            "dataframe_split": {
                "columns": ["image"],
                "data": [
                    [base64.b64encode(b"not an image").decode()],
                    _payload(files[:1])["dataframe_split"]["data"][0],
                ],
            }
        }
        answer = requests.post(url, json=bad, timeout=60)
        assert answer.status_code == 200, answer.text
        first, second = answer.json()["predictions"]
        assert first["p_fake"] is None and "not an image" in first["error"] and second["label"] in ("fake", "real")
        big = tmp_path / "big.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(big)
        answer = requests.post(url, json=_payload([big]), timeout=60)  # ~270 kB > the 200 kB limit
        assert answer.status_code == 400 and "request too large" in answer.text
        answer = requests.post(
            url, json={"dataframe_split": {"columns": ["path"], "data": [["/etc/passwd"]]}}, timeout=60
        )
        assert answer.status_code == 400 and "refused by the server" in answer.text
        assert requests.get(f"http://127.0.0.1:{port}/ping", timeout=5).status_code == 200  # still serving
    finally:
        _stop(server)


@pytest.mark.train
def test_serve_command_binds_locally_and_answers_413_before_reading(shared_store, images):
    from concurrent.futures import ThreadPoolExecutor

    files = sorted(p for p in images.rglob("bench_*"))
    port = free_port()
    command = [
        *(sys.executable, "-m", "deepfake_detection", "serve", "--model", "custom_c", "--port", str(port)),
        *("--max-request-mb", "0.05", "--workers", "2"),
    ]
    server = _start(command, port, dict(os.environ))
    try:
        url = f"http://127.0.0.1:{port}/invocations"
        expected = requests.post(url, json=_payload(files), timeout=60).json()["predictions"]
        assert len(expected) == len(files) == 6

        def post(index: int):
            if index == 5:  # an over-limit request among the others: refused alone, before its body is read
                return requests.post(url, data=b"x" * 200_000, headers={"Content-Type": "application/json"}, timeout=60)
            subset = [files[(index + k) % len(files)] for k in range(3)]
            return requests.post(url, json=_payload(subset), timeout=120), subset

        with ThreadPoolExecutor(8) as pool:  # 16 requests, 8 at a time, on 2 worker processes
            answers = list(pool.map(post, range(16)))
        refused = answers.pop(5)
        assert refused.status_code == 413 and "over the limit" in refused.text
        by_name = {f.name: row for f, row in zip(files, expected)}
        for answer, subset in answers:
            assert answer.status_code == 200, answer.text
            rows = answer.json()["predictions"]
            assert len(rows) == 3
            for file, row in zip(subset, rows):
                assert row["label"] == by_name[file.name]["label"]
                assert row["p_fake"] == pytest.approx(by_name[file.name]["p_fake"], abs=1e-5)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        _stop(server)


@pytest.mark.train
def test_predict_bad_input_gives_clear_errors(shared_store, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no files to score"):
        run_predict(str(tmp_path / "empty"), "custom_c", tmp_path / "x.csv")
    with pytest.raises(InputError, match="does not exist"):
        run_predict(str(tmp_path / "missing.jpg"), "custom_c", tmp_path / "x.csv")
    with pytest.raises(InputError, match="matches no files"):
        run_predict(str(tmp_path / "*.jpg"), "custom_c", tmp_path / "x.csv")
    (tmp_path / "one.jpg").write_bytes(jpeg_bytes(1))
    with pytest.raises(MissingModelError, match="deepfake-npr@champion"):
        run_predict(str(tmp_path / "one.jpg"), "npr", tmp_path / "x.csv")  # never registered in this store
    with pytest.raises(MissingModelError, match="deepfake-custom_c@nope"):
        run_predict(str(tmp_path / "one.jpg"), "models:/deepfake-custom_c@nope", tmp_path / "x.csv")
    with pytest.raises(MissingModelError, match="not a model this tool can load"):
        run_predict(str(tmp_path / "one.jpg"), "s3://bucket/model", tmp_path / "x.csv")
    from sklearn.dummy import DummyClassifier

    with mlflow.start_run() as run:  # an MLflow model of the wrong kind
        mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="model")
    with pytest.raises(MissingModelError, match="is not a deepfake detector"):
        run_predict(str(tmp_path / "one.jpg"), f"runs:/{run.info.run_id}/model", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    result = CliRunner().invoke(main, ["predict", "--input", str(tmp_path / "empty"), "--model", "custom_c"])
    assert result.exit_code == 1 and "no files to score" in result.output


def _gradcam_toy_model():
    """One 1x1 conv (identity on the red channel) → global average → dense with weight +1."""
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(
        1,
        1,
        activation="relu",
        name="conv",
        kernel_initializer=keras.initializers.Constant([[[[1.0], [0.0], [0.0]]]]),
        bias_initializer="zeros",
    )(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    output = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="ones", bias_initializer="zeros")(pooled)
    return keras.Model(inputs, output)


def test_gradcam_points_at_the_evidence():
    model = _gradcam_toy_model()
    image = np.zeros((1, 8, 8, 3), np.float32)
    image[0, :4, :4, 0] = 1.0  # only the top-left quadrant raises p_fake
    cam_model, layer = explain.gradcam_model(model)
    assert layer == "conv"
    heat, p_fake = explain.gradcam(cam_model, image, "fake", 0.5)
    assert p_fake[0] > 0.5 and heat.shape == (1, 8, 8)
    assert heat[0, :4, :4].min() == pytest.approx(1.0) and heat[0, 4:, :].max() == 0 and heat[0, :, 4:].max() == 0
    heat_real, _ = explain.gradcam(cam_model, image, "real", 0.5)
    assert heat_real.max() == 0  # nothing in the image argues for "real"


@pytest.mark.parametrize(
    "arch, layer",
    build_params(
        [
            ("vggface16", "conv5_3_relu"),
            ("densenet121", "densenet121_backbone"),
            ("custom_a", "block6_bn"),
            ("npr", "stage2_block1_out"),
            ("custom_c", "res2_relu"),
        ]
    ),
)
def test_gradcam_finds_the_last_feature_map_of_every_architecture(arch, layer):
    import keras_tuner as kt

    from deepfake_detection.architectures import get_architecture

    model = get_architecture(arch, 32).build(kt.HyperParameters())
    cam_model, chosen = explain.gradcam_model(model)
    assert chosen == layer
    heat, p_fake = explain.gradcam(cam_model, np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)), "fake", 0.5)
    assert heat.shape[0] == 2 and heat.ndim == 3 and heat.min() >= 0 and heat.max() <= 1 and p_fake.shape == (2,)
    with pytest.raises(explain.ExplainError, match="has no layer 'nope'"):
        explain.gradcam_model(model, "nope")


@pytest.mark.train
def test_explain_writes_overlays_and_reports_bad_files(shared_store, images, tmp_path):
    results = explain.run_explain(str(images), "custom_c", tmp_path / "cams", target="fake", max_images=0)
    done = [r for r in results if not r.error]
    assert len(done) == 6 and {Path(r.source).name for r in results if r.error} == {"truncated.jpg", "notes.txt"}
    for item in done:
        assert item.overlay.is_file() and item.layer == "res2_relu" and item.target == "fake"
        with Image.open(item.overlay) as picture:
            assert picture.format == "PNG" and picture.width > picture.height  # original beside the overlay


@pytest.mark.train
def test_mlflow_run_explain_logs_overlays(shared_store, images):
    parameters = {"input": images / "fake", "model": "custom_c", "max_images": 2}
    result = mlflow_run("explain", parameters, capture_output=True, text=True, cwd=shared_store.root, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("deepfake-detection")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`mlflow.project.entryPoint` = 'explain'")
    assert run.info.status == "FINISHED"
    logged = [a.path for a in client.list_artifacts(run.info.run_id, "gradcam")]
    assert len(logged) == 2 and all(p.endswith("_gradcam.png") for p in logged)


def test_gradcam_refuses_a_model_without_feature_maps():
    import keras_tuner as kt

    from deepfake_detection.architectures import get_architecture

    model = get_architecture("spectrum", 32).build(kt.HyperParameters())
    with pytest.raises(explain.ExplainError, match="no convolutional layer"):
        explain.gradcam_model(model)


@pytest.mark.train
def test_short_batches_are_padded_to_a_few_shapes(shared_store):
    """Whatever batch sizes callers send (Spark's Arrow batches, REST requests), the network
    sees at most log2(batch) + 1 input shapes, so it is traced a few times, not per call."""
    from deepfake_detection.model import load_detector, padded_rows

    detector = load_detector(CHAMPION)
    seen = []
    original = detector.keras_model.predict_on_batch

    def record(x):
        seen.append(int(x.shape[0]))
        return original(x)

    images = [jpeg_bytes(i, size=(32, 32)) for i in range(100)]
    detector.keras_model.predict_on_batch = record
    try:
        whole = detector.predict_encoded(images, batch_size=64)
        parts = np.concatenate(
            [detector.predict_encoded(images[i : i + n], 64) for i, n in ((0, 3), (3, 50), (53, 47))]
        )
    finally:
        del detector.keras_model.predict_on_batch
    np.testing.assert_allclose(parts, whole, atol=1e-6)  # padding changes no score
    assert set(seen) <= {1, 2, 4, 8, 16, 32, 64} and len(set(seen)) <= 4
    assert [padded_rows(n, 64) for n in (1, 3, 33, 64, 65)] == [1, 4, 64, 64, 64]


@pytest.mark.spark
@pytest.mark.train
def test_spark_engine_scores_as_the_local_engine(shared_store, images, tmp_path):
    """predict --engine spark (Spark's binaryFile + mlflow.pyfunc.spark_udf) gives the local
    engine's p_fake per file and the same error rows; Parquet through `mlflow run -e predict`,
    CSV from a session this test starts on 127.0.0.1 and stops."""
    from pyspark.sql import SparkSession

    from deepfake_detection.spark_scoring import run_predict_spark, session

    (images / "fake" / "empty.png").write_bytes(b"")  # Spark's file scan skips empty files: a row all the same
    local = read_predictions(run_predict(str(images), "custom_c", tmp_path / "local.csv", progress=False).output)
    parameters = {"input": images, "model": "custom_c", "output": tmp_path / "out.parquet", "engine": "spark"}
    result = mlflow_run("predict", parameters, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "9 images scored" in result.stdout
    parquet = pd.read_parquet(tmp_path / "out.parquet")
    assert list(parquet.columns) == list(COLUMNS)

    spark = session("local[2]", batch_rows=16)
    try:
        assert spark.conf.get("spark.driver.host") == "127.0.0.1"
        summary = run_predict_spark(str(images), "custom_c", tmp_path / "spark.csv", batch_size=4, spark=spark)
    finally:
        spark.stop()
    assert SparkSession.getActiveSession() is None
    csv = read_predictions(summary.output)
    assert summary.images == 9 and summary.errors == 3
    assert "empty file (0 bytes)" in set(csv["error"])
    for table in (parquet, csv):
        merged = local.merge(table, on="path", suffixes=("_local", "_spark"), validate="one_to_one")
        assert len(merged) == len(local) == 9
        np.testing.assert_allclose(merged["p_fake_spark"], merged["p_fake_local"], atol=1e-5)
        assert (merged["label_spark"] == merged["label_local"]).all()
        assert (merged["error_spark"].fillna("") == merged["error_local"]).all()
        assert (merged["threshold_spark"] == merged["threshold_local"]).all()
    assert not list(tmp_path.glob(".*partial*"))
