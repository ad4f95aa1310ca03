"""What the benchmarks that train share: a private workspace with its own tracking store, and a dataset."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def private_workspace(prefix: str) -> Path:
    """A fresh temporary folder with its own SQLite tracking store, made the working directory."""
    import mlflow

    workspace = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workspace / 'mlflow.db'}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return workspace


def bench_data(given: str, workspace: Path, image_size: int, seed: int = 42, num_images: int = 500) -> Path:
    """``given`` if it names a prepared dataset, else the offline benchmark built in ``workspace``."""
    data = Path(given).resolve() if given else workspace / "data"
    if not (data / "manifest.csv").is_file():
        from deepfake_detection.data.prepare import prepare_bench

        print(f"building a benchmark dataset in {data} …", flush=True)
        prepare_bench(data, image_size=image_size, num_images=num_images, seed=seed, progress=False)
    return data


def scoring_workspace(prefix: str, model: str) -> Path:
    """A fresh temporary working folder, made the working directory, for a benchmark that scores
    ``model``: its tracking store stays the one it was started with (``MLFLOW_TRACKING_URI``,
    else that folder's ``mlflow.db``); with no ``model``, a private store in the workspace."""
    import mlflow

    workspace = Path(tempfile.mkdtemp(prefix=prefix))
    if model and not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    os.chdir(workspace)
    if not model:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workspace / 'mlflow.db'}"
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return workspace


def trained_detector(arch: str, data: Path, image_size: int, workspace: Path) -> str:
    """Train ``arch`` on ``data`` (no tuning, 1 epoch) into the current store; its champion's URI."""
    from deepfake_detection.config import TrainSettings
    from deepfake_detection.training import run_training

    print(f"training {arch} (no tuning, 1 epoch) …", flush=True)
    settings = TrainSettings(
        arch=arch, data=str(data), image_size=image_size, epochs=1, tuner="none", work_dir=str(workspace / "outputs")
    )
    run_training(settings)
    return f"models:/deepfake-{arch}@champion"
