"""What the benchmarks share: their arguments as the user typed them, a private workspace with its
own tracking store, a dataset, and what a process they started said before it died.

Path arguments are made absolute while argparse parses them (``type=user_path``,
``existing_path``, ``dataset_path``, ``model_uri``), so before any benchmark changes directory;
:func:`user_store` does the same for the tracking store a benchmark reads.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import tempfile
from pathlib import Path

SQLITE = "sqlite:///"


def user_path(text: str) -> Path:
    """argparse ``type`` of a path argument: absolute against the folder the command was started in."""
    return Path(text).expanduser().resolve()


def existing_path(text: str) -> Path:
    """argparse ``type`` of an input path: :func:`user_path`, refused when there is nothing there."""
    path = user_path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file or directory: {text} ({path})")
    return path


def dataset_path(text: str) -> Path:
    """argparse ``type`` of ``--data``: a prepared dataset (a folder with ``manifest.csv``); nothing is built there."""
    path = existing_path(text)
    if not (path / "manifest.csv").is_file():
        raise argparse.ArgumentTypeError(
            f"{text} is not a prepared dataset (no manifest.csv in {path}); build one with `deepfake-detection prepare`"
        )
    return path


def model_uri(text: str) -> str:
    """argparse ``type`` of ``--model``: a URI (``models:/…``) as given, a local model folder made absolute."""
    return text if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text) else str(existing_path(text))


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (relative or absolute as written), else None."""
    file = uri[len(SQLITE) :].partition("?")[0] if uri.startswith(SQLITE) else ""
    return Path(file) if file and file != ":memory:" else None


def absolute_store(uri: str) -> str:
    """``uri`` with a relative SQLite file (``sqlite:///mlflow.db``) made absolute against the current
    folder; any other URI as it is."""
    file = sqlite_file(uri)
    if file is None or file.is_absolute():
        return uri
    _, question, query = uri.partition("?")
    return f"{SQLITE}{file.resolve()}{question}{query}"


def user_store(uri: str | None = None) -> str:
    """The user's tracking store that a benchmark reads: ``uri``, else ``MLFLOW_TRACKING_URI``, else
    ``sqlite:///mlflow.db``, made absolute (call it before any chdir) and exported as
    ``MLFLOW_TRACKING_URI``. A SQLite file that is not there is refused in one line: MLflow would
    create an empty one and report nothing found."""
    uri = absolute_store(uri or os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE}mlflow.db")
    file = sqlite_file(uri)
    if file is not None and not file.is_file():
        raise SystemExit(
            f"no tracking store at {uri} (no file {file}): run `make run` first or set MLFLOW_TRACKING_URI"
        )
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return uri


def last_lines(output: str | Path, count: int = 20) -> str:
    """The last ``count`` non-blank lines of a log file (a Path) or of captured output, indented for an
    error message; of a line a progress bar rewrote (``\\r``), what it showed last."""
    text = output.read_text(errors="replace") if isinstance(output, Path) else output or ""
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1].rstrip() for line in text.split("\n")]
    return "\n".join(f"  | {line}" for line in [line for line in lines if line.strip()][-count:])


def died(what: str, code: int | None, output: str | Path) -> SystemExit:
    """The SystemExit for a process a benchmark started that ended with ``code``: it quotes the
    process's last lines of output (``output``: its log file or what it printed)."""
    log = f" (log: {output})" if isinstance(output, Path) else ""
    tail = last_lines(output)
    return SystemExit(
        f"{what} exited with {code}{log}" + (f"; its last lines:\n{tail}" if tail else "; it printed nothing")
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def private_workspace(prefix: str) -> Path:
    """A fresh temporary folder with its own SQLite tracking store (``MLFLOW_TRACKING_URI`` points there)."""
    import mlflow

    workspace = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workspace / 'mlflow.db'}"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return workspace


def bench_data(given: Path | None, workspace: Path, image_size: int, seed: int = 42, num_images: int = 500) -> Path:
    """``given`` (a dataset :func:`dataset_path` checked), else the offline benchmark built in ``workspace``."""
    if given:
        return Path(given)
    data = workspace / "data"
    from deepfake_detection.data.prepare import prepare_bench

    print(f"building a benchmark dataset in {data} …", flush=True)
    prepare_bench(data, image_size=image_size, num_images=num_images, seed=seed, progress=False)
    return data


def scoring_workspace(prefix: str, model: str) -> Path:
    """A fresh temporary working folder, made the working directory, for a benchmark that scores
    ``model``: its tracking store stays the user's (:func:`user_store`, made absolute before the
    chdir); with no ``model``, a private store in the workspace."""
    import mlflow

    if model:
        user_store()
    workspace = Path(tempfile.mkdtemp(prefix=prefix))
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
