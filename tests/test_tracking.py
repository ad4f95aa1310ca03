"""The MLflow side of runs: experiments created by two processes at once."""

from __future__ import annotations

import mlflow

from deepfake_detection import tracking


def test_an_experiment_created_by_another_process_meanwhile_is_used(monkeypatch):
    """Two trains on a fresh store both find no experiment; the second create fails and must not."""
    created = tracking.ensure_experiment("race")  # the other process wins the race
    real_lookup = mlflow.get_experiment_by_name
    lookups = []

    def stale_then_real(name):
        lookups.append(name)
        return None if len(lookups) == 1 else real_lookup(name)  # this process looked before it existed

    monkeypatch.setattr(mlflow, "get_experiment_by_name", stale_then_real)
    assert tracking.ensure_experiment("race") == created
    assert lookups == ["race", "race"]
