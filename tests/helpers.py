"""Helpers the tests share: the tiny training, waiting on a condition, the registry's aliases, and
whether a registered model beats chance on valid, computed without the run's own tags."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# Architectures that take seconds to build: their build tests are left out of the fast tier.
SLOW_TO_BUILD = ("densenet121", "vggface16")


def build_params(rows) -> list:
    """Parametrize rows whose first value is an architecture name, those in SLOW_TO_BUILD marked slow."""
    import pytest

    marked = []
    for row in rows:
        values = row if isinstance(row, tuple) else (row,)
        marked.append(pytest.param(*values, marks=pytest.mark.slow) if values[0] in SLOW_TO_BUILD else row)
    return marked


# The tiny training of the end-to-end tests: 32 px bench images, one epoch, no search (valid
# and test also scored under the standard degradation suite, as by default). Keys are
# TrainSettings fields, which are also the MLproject parameters and (dashed) the CLI options.
TINY_TRAINING = {"arch": "custom_a", "image_size": 32, "epochs": 1, "tuner": "none", "batch_size": 16}
# For a test that checks neither degraded scores nor the election that weighs them: valid and test
# scored clean only, without the suite's 22 more scoring passes (about a quarter of a tiny training).
CLEAN_ONLY = {"degradations": "none"}
SEARCH = {"tuner": "random", "max_trials": 2}  # a search of two trials before the final fit


def tiny_training(data, work_dir, **overrides) -> dict:
    """The tiny training on ``data`` with its state in ``work_dir``, ``overrides`` on top: the
    parameters of ``mlflow run . -e train``, or see :func:`tiny_settings` / :func:`tiny_train_args`."""
    return {**TINY_TRAINING, "data": str(data), "work_dir": str(work_dir), **overrides}


def tiny_settings(data, work_dir, **overrides):
    """:func:`tiny_training` as the ``TrainSettings`` of ``run_training``."""
    from deepfake_detection.config import TrainSettings

    return TrainSettings(**tiny_training(data, work_dir, **overrides))


def cli_options(options: dict) -> list[str]:
    """``{"image_size": 32}`` as ``["--image-size", "32"]``."""
    return [item for key, value in options.items() for item in (f"--{key.replace('_', '-')}", str(value))]


def tiny_train_args(data, work_dir, **overrides) -> list[str]:
    """:func:`tiny_training` as the options of ``deepfake-detection train`` (or ``tune``)."""
    return cli_options(tiny_training(data, work_dir, **overrides))


def wait_until(
    condition: Callable,
    timeout: float,
    what: str,
    *,
    process: subprocess.Popen | None = None,
    output: Callable[[], str] = lambda: "",
    interval: float = 0.2,
):
    """Poll ``condition()`` until it returns something true, and return that. Fails (AssertionError
    naming ``what``, with the tail of ``output()``) after ``timeout`` s, or as soon as ``process``
    has exited without the condition being met."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise AssertionError(f"exited ({process.returncode}) before {what}:\n{output()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:g} s:\n{output()[-3000:]}")
        time.sleep(interval)


def answers(url: str) -> bool:
    """Whether ``url`` answers a GET with 200 (False while nothing listens yet)."""
    import requests

    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def aliases(client, name: str) -> dict[str, str]:
    """The aliases of registered model ``name``: ``{"champion": "2", ...}``."""
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def scored_on_valid(model_uri: str, data: Path) -> tuple[bool, float]:
    """(beats chance, ROC-AUC) of the model on the valid split of ``data``, computed here from the
    model's own scores with scikit-learn, not from what the run logged or tagged. Beating chance is
    the README's rule for a version that may become champion: Youden's J > 0 at some threshold.
    The whole valid split is scored: for trainings whose ``num_samples`` leaves it whole."""
    import mlflow
    import pandas as pd
    from sklearn.metrics import roc_auc_score, roc_curve

    valid = pd.read_csv(Path(data) / "manifest.csv", keep_default_na=False).query("split == 'valid'")
    images = pd.DataFrame({"image": [(Path(data) / path).read_bytes() for path in valid["path"]]})
    p_fake = mlflow.pyfunc.load_model(model_uri).predict(images)["p_fake"]
    is_fake = valid["label"] == "fake"
    fpr, tpr, _ = roc_curve(is_fake, p_fake)
    return bool((tpr - fpr).max() > 0), float(roc_auc_score(is_fake, p_fake))


def expected_role(model_uri: str, data: Path) -> tuple[str, str]:
    """(alias, stage) the first version of a registered model gets by the README's rule: champion
    in Production when it beats chance on valid (:func:`scored_on_valid`), else challenger in
    Staging."""
    return ("champion", "Production") if scored_on_valid(model_uri, data)[0] else ("challenger", "Staging")
