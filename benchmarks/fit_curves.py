"""The learning curves of the last ``train`` (or ``main``) in a tracking store: validation
ROC-AUC (fake = positive) after every epoch of each architecture's final fit, from the metric
history MLflow's Keras callback logged, with the planned epochs (``fit_epochs``) and seconds.

    python benchmarks/fit_curves.py [--tracking-uri sqlite:///mlflow.db] [--plot curves.png] [--markdown PATH]

The store: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``.
"""

from __future__ import annotations

import argparse

from _report import Table, add_markdown_option, write_markdown
from _workspace import user_path, user_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="deepfake-detection")
    parser.add_argument("--plot", type=user_path, help="Also draw the curves into this PNG.")
    add_markdown_option(parser)
    args = parser.parse_args()
    store = user_store(args.tracking_uri)

    from mlflow import MlflowClient

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise SystemExit(f"no experiment {args.experiment!r} in {store}")
    (parent,) = client.search_runs(
        [experiment.experiment_id], "tags.step = 'train'", order_by=["attributes.start_time DESC"], max_results=1
    ) or [None]
    if parent is None:
        raise SystemExit(f"no train run in {store}")
    children = client.search_runs(
        [experiment.experiment_id],
        f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    caption = f"train run {parent.info.run_id}: valid ROC-AUC after each epoch of the final fit (fake = positive)"
    print(caption)
    table = Table(
        {
            "architecture": "<12",
            "planned epochs": ">14",
            "seconds": ">7.0f",
            "test ROC-AUC": ">12.3f",
            "valid ROC-AUC": "<",
        }
    )
    print(table.header())
    curves = {}
    for child in children:
        arch = child.data.tags.get("architecture", child.info.run_name)
        history = sorted(client.get_metric_history(child.info.run_id, "valid_epoch_auc"), key=lambda m: m.step)
        curves[arch] = [m.value for m in history]
        planned = child.data.params.get("fit_epochs", "?")
        seconds = child.data.metrics.get("train_seconds", float("nan"))
        test = child.data.metrics.get("test_roc_auc", float("nan"))
        print(table.row(arch, planned, seconds, test, " ".join(f"{v:.3f}" for v in curves[arch])))
    write_markdown(args.markdown, caption, table)
    if args.plot:
        from deepfake_detection.plots import valid_auc_curves_figure

        figure = valid_auc_curves_figure(curves)
        figure.savefig(args.plot, dpi=120)
        print(f"curves written to {args.plot}")


if __name__ == "__main__":
    main()
