"""What the benchmarks that train share: a private workspace with its own tracking store, and a dataset."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
