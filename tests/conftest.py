"""Shared fixtures: a private SQLite tracking store per test, fixed seeds, small datasets, and the
tiny models several slow tests read (trained once per worker). Markers: ``train``, ``server``,
``browser`` and ``spark`` imply ``slow``; ``pytest -m "not slow"`` is the fast tier."""

from __future__ import annotations

import contextlib
import io
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMPLY_SLOW = ("train", "server", "browser", "spark")
# Session fixtures that train a model (only slow tests may use them), and the fixtures whose tests
# run on one xdist worker (--dist loadgroup), so that what the fixture makes is made once.
TRAINING_FIXTURES = {"shared_models"}
ONE_WORKER_FIXTURES = ("shared_models", "auth_server", "tracking_server", "comparison_records", "shortcut_numbers")


@pytest.hookimpl(tryfirst=True)  # before -m deselects and before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(name) for name in IMPLY_SLOW):
            item.add_marker(pytest.mark.slow)
        trains = TRAINING_FIXTURES & set(item.fixturenames)
        if trains and not item.get_closest_marker("slow"):
            raise pytest.UsageError(f"{item.nodeid} uses {', '.join(sorted(trains))}, which trains: mark it slow")
        for name in ONE_WORKER_FIXTURES:
            if name in item.fixturenames:
                _one_worker(config, item, name)
                break
        else:  # in `make test-fast`, the one worker that reads the tiny benchmark builds it
            if "bench_dataset" in item.fixturenames and not item.get_closest_marker("slow"):
                _one_worker(config, item, "bench_dataset")
    # Slow tests first (and the groups, which xdist hands out first): the long ones start while
    # the other worker still has short ones to take, instead of ending the run alone.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _one_worker(config, item, group: str) -> None:
    """Mark ``item`` xdist_group ``group`` and do what --dist loadgroup then does: put the group
    in the nodeid, which its scheduler reads. pytest-xdist 3.8 sets ``item._nodeid`` for that,
    which pytest 9 no longer reads (a node's id is ``item._id``), so it is done here too."""
    item.add_marker(pytest.mark.xdist_group(group))
    if getattr(config.option, "loadgroup", False) and not item.nodeid.endswith(f"@{group}"):
        item._id = type(item._id).parse(f"{item.nodeid}@{group}")


@pytest.fixture(scope="session", autouse=True)
def migrated_stores(tmp_path_factory):
    """A new SQLite store opened by a test's own process starts as a copy of one that MLflow
    migrated once per worker, instead of running its migrations again (about a second per store,
    and every end-to-end test opens one). The copy is made where MLflow would migrate, so a store
    still appears only when MLflow opens it; subprocesses migrate as they always do."""
    import sqlite3
    import threading

    import sqlalchemy
    from mlflow.store.db import utils
    from mlflow.store.model_registry import sqlalchemy_store as registry_store

    migrate, lock = utils._initialize_tables, threading.Lock()
    template = tmp_path_factory.mktemp("migrated") / "mlflow.db"

    def initialize(engine) -> None:
        database = engine.url.database
        if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            return migrate(engine)
        with lock:
            if not template.exists():
                blank = sqlalchemy.create_engine(f"sqlite:///{template}")
                migrate(blank)
                blank.dispose()
        source, target = sqlite3.connect(template), sqlite3.connect(database)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, "_initialize_tables", initialize)
        patch.setattr(registry_store, "_initialize_tables", initialize)
        yield


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


@pytest.fixture
def bench(monkeypatch):
    """benchmarks/ importable, as it is for a script run from there."""
    monkeypatch.syspath_prepend(str(PROJECT / "benchmarks"))
    import _report
    import _workspace

    return _workspace, _report


@contextlib.contextmanager
def tracking_store(root: Path):
    """Work in ``root`` with its SQLite tracking store (``root/mlflow.db``, artifacts in
    ``root/mlruns``) while the ``with`` block lasts; yields its URI. For session fixtures: a test
    is pointed at a store with :func:`use_store`."""
    import mlflow

    uri, previous = f"sqlite:///{root / 'mlflow.db'}", mlflow.get_tracking_uri()
    try:
        with pytest.MonkeyPatch.context() as patch:
            use_store(patch, root, uri)
            yield uri
    finally:
        mlflow.set_tracking_uri(previous)


def use_store(monkeypatch, root: Path, uri: str) -> None:
    import mlflow

    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # the autouse fixture sets it again for the next test


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


# The shared models: every architecture but the two generic backbones, densenet121 (its one tiny
# epoch costs about 100 s of TensorFlow building its training graph) and vggface16 (a third of the
# shared training's time). Both are trained end to end (registered, weights loaded) by
# test_train_with_pretrained_weights_from_the_keras_cache_end_to_end; the NPR-residual input they
# take from scratch is npr's, trained here.
SHARED_ARCHITECTURES = ("custom_a", "custom_c", "npr", "spectrum")


@dataclass(frozen=True)
class SharedModels:
    """Each of :data:`SHARED_ARCHITECTURES` after the tiny training (version 1 of each registered
    model), trained by one ``mlflow run . -e train`` in a tracking store of its own under ``root``."""

    root: Path
    uri: str
    data: Path

    def architecture_run(self, name: str):
        """The run ``train-<name>`` (read it with the store in use: :func:`shared_store`)."""
        from mlflow import MlflowClient

        client = MlflowClient(self.uri)
        experiment = client.get_experiment_by_name("deepfake-detection")
        (run,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = 'train-{name}'")
        return run


@pytest.fixture(scope="session")
def shared_models(bench_dataset, tmp_path_factory) -> SharedModels:
    """:data:`SHARED_ARCHITECTURES` trained and registered once per session by the train entry point: its
    tests run on one worker (ONE_WORKER_FIXTURES). For the tests that read the models (predict,
    serve, explain, compare, the UI) or what training logged; a test that changes the registry or
    trains again uses a store of its own instead."""
    from helpers import tiny_training

    root = tmp_path_factory.mktemp("shared-models")
    with tracking_store(root) as uri:
        parameters = tiny_training(bench_dataset, root / "outputs", arch=",".join(SHARED_ARCHITECTURES))
        done = mlflow_run("train", parameters, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return SharedModels(root, uri, bench_dataset)


@pytest.fixture
def shared_store(shared_models, monkeypatch) -> SharedModels:
    """This test works in the shared models' folder and tracking store (what it logs stays there)."""
    use_store(monkeypatch, shared_models.root, shared_models.uri)
    return shared_models


@dataclass(frozen=True)
class SharedComparison:
    table: object  # run_compare's table
    run_id: str  # the compare run


@pytest.fixture(scope="session")
def shared_comparison(shared_models) -> SharedComparison:
    """``compare`` of the shared custom_a and custom_c (with the robustness pass), once."""
    from mlflow import MlflowClient

    from deepfake_detection.compare import run_compare
    from deepfake_detection.config import CompareSettings

    settings = CompareSettings(
        models="custom_a,custom_c",
        data=str(shared_models.data),
        n_components=8,
        robustness=True,
        work_dir=str(shared_models.root / "outputs"),
    )
    with tracking_store(shared_models.root):
        table = run_compare(settings)
        client = MlflowClient()
        experiment = client.get_experiment_by_name(settings.experiment)
        (run,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'compare'")
    return SharedComparison(table, run.info.run_id)


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
