"""The MLflow UI as a user sees it after a run: REST checks and screenshots in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import PROJECT, SHARED_ARCHITECTURES

CHROMIUM = shutil.which("chromium")
SCREENSHOTS = (
    "leaderboard.png",
    "compare_roc.png",
    "compare_confusion_matrix.png",
    "train_run.png",
    "registered_model.png",
    "model_version.png",
    "comparison.png",
)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (bash .ci/ensure-chromium)")
def test_the_ui_opens_on_the_leaderboard_and_shows_plots_side_by_side(shared_models, shared_comparison, tmp_path):
    """benchmarks/ui_check.py on the shared store (every architecture trained and registered,
    custom_a and custom_c compared): it fails on any check of the pages it opens (the leaderboard's rows in test
    ROC-AUC order, ROC curves and confusion matrices of every architecture run on the compare
    page, descriptions on the runs and registered models)."""
    screenshots = tmp_path / "screenshots"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "benchmarks" / "ui_check.py"),
            *("--workdir", str(shared_models.root), "--screenshots", str(screenshots)),
            *("--chromium", CHROMIUM),
        ],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "making a tiny run" not in result.stdout  # it checked the shared store, not a run of its own
    assert f"{len(SHARED_ARCHITECTURES)} architecture runs ranked" in result.stdout
    for name in SCREENSHOTS:
        png = screenshots / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000, name
        assert f"{name}:" in result.stdout
