"""Ready-made views of the experiment in the MLflow UI, and the links that open them.

MLflow's UI shares a view of an experiment's runs (filter, sort order, columns) as an
experiment tag ``mlflow.sharedViewState.<key>`` holding the view as JSON, opened by
``#/experiments/<id>/runs?viewStateShareKey=<key>``: what its "Share" button does. ``train``
and ``compare`` publish two such views, so ``make ui`` can print links that open straight onto
the leaderboard instead of a table with no metric columns:

- ``leaderboard``: the architecture runs (``tags.step = 'train-architecture'``), sorted by
  test ROC-AUC, with its 95 % interval, the test mean and worst ROC-AUC under the degradation
  suite, valid ROC-AUC (clean and worst degraded: what the election weighs), F1 and EER as
  columns;
- ``comparison``: compare's runs, one per model and classifier (``compare-classifier``),
  sorted the same way.

The experiment is also marked as model training (``mlflow.experimentKind``), which MLflow 3's
UI otherwise guesses, opening on the GenAI traces overview.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SHARED_VIEW_TAG = "mlflow.sharedViewState."
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def _metric(key: str) -> str:
    return f"metrics.`{key}`"


def _param(key: str) -> str:
    return f"params.`{key}`"


@dataclass(frozen=True)
class View:
    key: str
    title: str
    search_filter: str
    order_by: str
    columns: tuple[str, ...]

    def state(self) -> dict:
        """The view as MLflow's UI stores a shared view: search facets and UI state in one object."""
        return {
            "searchFilter": self.search_filter,
            "orderByKey": _metric(self.order_by),
            "orderByAsc": False,
            "selectedColumns": list(self.columns),
            "columnOrder": list(self.columns),
            "runsHiddenMode": "SHOW_ALL",
        }

    def url(self, base_url: str, experiment_id: str) -> str:
        return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={self.key}"


_INTERVAL = (_metric("test_roc_auc"), _metric("test_roc_auc_ci_low"), _metric("test_roc_auc_ci_high"))

LEADERBOARD = View(
    key="leaderboard",
    title="architecture runs by test ROC-AUC",
    search_filter="tags.step = 'train-architecture'",
    order_by="test_roc_auc",
    columns=(
        *_INTERVAL,
        _metric("test_mean_degraded_roc_auc"),
        _metric("test_worst_degraded_roc_auc"),
        _metric("valid_roc_auc"),
        _metric("valid_worst_degraded_roc_auc"),
        _metric("test_f1"),
        _metric("test_eer"),
        _param("image_size"),
        "attributes.`Models`",
    ),
)
COMPARISON = View(
    key="comparison",
    title="compare: each model and classifier by test ROC-AUC",
    search_filter="tags.step = 'compare-classifier'",
    order_by="roc_auc",
    columns=(
        _param("architecture"),
        _param("classifier"),
        _metric("roc_auc"),
        _metric("roc_auc_ci_low"),
        _metric("roc_auc_ci_high"),
        _metric("f1"),
        _metric("eer"),
    ),
)
VIEWS = (LEADERBOARD, COMPARISON)


def publish(experiment_id: str, client=None) -> None:
    """Store the views on the experiment (replacing earlier copies) and mark it as model
    training unless someone already chose its kind."""
    import mlflow

    client = client or mlflow.MlflowClient()
    experiment = client.get_experiment(experiment_id)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    for view in VIEWS:
        client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + view.key, json.dumps(view.state()))


def links(base_url: str, experiment_id: str) -> list[tuple[View, str]]:
    return [(view, view.url(base_url, experiment_id)) for view in VIEWS]
