"""Shared fixtures: a private SQLite tracking store per test, fixed seeds, small datasets."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def isolated_tracking(tmp_path, monkeypatch):
    """Every test gets its own working folder, SQLite tracking store and ./mlruns."""
    monkeypatch.chdir(tmp_path)
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # the CLI sets it process-wide; reset it for each test
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    random.seed(0)
    np.random.seed(0)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()


PROJECT = Path(__file__).resolve().parents[1]


def mlflow_run(entry_point: str, parameters: dict, env_manager: str = "local", **kwargs) -> subprocess.CompletedProcess:
    """``mlflow run <project> -e ENTRY --env-manager local -P k=v …`` against the test's tracking
    store, in the experiment ``deepfake-detection``; ``kwargs`` go to ``subprocess.run``."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_EXPERIMENT_NAME": "deepfake-detection",
    }
    command = [sys.executable, "-m", "mlflow", "run", str(PROJECT), "-e", entry_point, "--env-manager", env_manager]
    for name, value in parameters.items():
        command += ["-P", f"{name}={value}"]
    return subprocess.run(command, env=env, **{"timeout": 900, **kwargs})


def jpeg_bytes(seed: int, size=(24, 24), quality: int = 90, mode: str = "RGB", **save) -> bytes:
    """A small JPEG of random content: distinct bytes for each seed."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    picture = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality, **save)
    return buffer.getvalue()


def write_140k(root: Path, per_class: int = 3, start: int = 0) -> Path:
    """A miniature '140k real and fake faces' download: real_vs_fake/real-vs-fake/{split}/{label}."""
    base = root / "real_vs_fake" / "real-vs-fake"
    seed = start
    for split in ("train", "valid", "test"):
        for label in ("real", "fake"):
            folder = base / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(per_class):
                seed += 1
                (folder / f"{label[0]}{seed:05d}.jpg").write_bytes(jpeg_bytes(seed))
    return root


def write_ciplab(root: Path, per_level: int = 4, real: int = 12, start: int = 1000) -> Path:
    """A miniature ciplab download: real_and_fake_face/{training_real,training_fake}."""
    base = root / "real_and_fake_face"
    (base / "training_real").mkdir(parents=True, exist_ok=True)
    (base / "training_fake").mkdir(parents=True, exist_ok=True)
    seed = start
    for i in range(real):
        seed += 1
        (base / "training_real" / f"real_{i + 1:05d}.jpg").write_bytes(jpeg_bytes(seed))
    for level in ("easy", "mid", "hard"):
        for i in range(per_level):
            seed += 1
            (base / "training_fake" / f"{level}_{i + 1}_1011.jpg").write_bytes(jpeg_bytes(seed))
    return root


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip ``folder``'s contents the way Kaggle downloads are zipped (paths relative to it)."""
    import zipfile

    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(folder).as_posix())
    return archive


@pytest.fixture(scope="session")
def bench_dataset(tmp_path_factory) -> Path:
    """A tiny benchmark dataset built once per test session (32 px, 24 images per class)."""
    from deepfake_detection.data.prepare import prepare_bench

    output = tmp_path_factory.mktemp("bench") / "data"
    prepare_bench(output, image_size=32, num_images=24, generator_steps=10, progress=False, check=False)
    return output


@pytest.fixture(scope="module")
def tracking_server():
    """A private PostgreSQL (unix socket only) behind a real ``mlflow server`` with served artifacts
    on 127.0.0.1, fresh for each test module; stopped and removed afterwards. Tests point at it with
    ``monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.url)``."""
    from tracking_server import tracking_server as start

    with start() as server:
        yield server


def write_keras2_weights(model, path: Path) -> Path:
    """Write ``model``'s weights as Keras 2's ``save_weights`` wrote ``.h5`` files (one group per
    layer name): the format of the files keras.applications and rcmalli's VGGFace release publish."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return path
