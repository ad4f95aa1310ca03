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


def test_one_name_per_metric_and_readable_hyperparameters():
    from deepfake_detection.tracking import epoch_metric_names, hyperparameter_params

    logs = {"loss": 0.5, "auc": 0.7, "val_loss": 0.6, "val_auc": 0.65, "learning_rate": 1e-3}
    assert epoch_metric_names(logs) == {
        "train_epoch_loss": 0.5,
        "train_epoch_auc": 0.7,
        "valid_epoch_loss": 0.6,
        "valid_epoch_auc": 0.65,
        "learning_rate": 1e-3,
    }
    values = {"dropout": 0.1 + 0.2, "learning_rate": 0.000123456789, "units": 64, "input": "npr"}
    assert hyperparameter_params(values, "best.") == {
        "best.dropout": "0.3",
        "best.learning_rate": "0.000123457",
        "best.units": 64,
        "best.input": "npr",
    }
