"""Calibration of the newest ``train``: per architecture, Youden's J on valid, the temperature fit on
valid, and the test expected calibration error before and after it, with its 95 % interval.

    python benchmarks/calibration_table.py [--markdown PATH]   # after `make run`, from the project folder

Reads the tracking store in ``MLFLOW_TRACKING_URI`` (default ``sqlite:///mlflow.db``); trains nothing.
Prints the table as markdown.
"""

from __future__ import annotations

import argparse

from _report import Table, add_markdown_option, write_markdown
from _workspace import user_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="deepfake-detection")
    add_markdown_option(parser)
    args = parser.parse_args()
    user_store()

    from mlflow import MlflowClient

    from deepfake_detection import tracking

    client = MlflowClient(tracking.configure())
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise SystemExit(f"no experiment {args.experiment!r} at {tracking.tracking_uri()}: run `make run` first")
    newest = client.search_runs(
        [experiment.experiment_id], "tags.step = 'train'", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not newest:
        raise SystemExit("no train run to read: run `make run` first")
    parent = newest[0]
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=100
    )
    caption = f"train run {parent.info.run_id}; test split, fake = positive class"
    table = Table(
        {
            "architecture": "<",
            "valid Youden's J": ">.3f",
            "T": ">.2f",
            "test ECE before": ">.3f",
            "test ECE after [95 % CI]": ">",
        }
    )
    for run in sorted(children, key=lambda r: r.info.start_time):
        m = run.data.metrics
        after = f"{m['test_ece']:.3f} [{m['test_ece_ci_low']:.3f}, {m['test_ece_ci_high']:.3f}]"
        table.row(
            run.data.tags["architecture"],
            m["valid_youden_j"],
            m["temperature"],
            m["test_ece_uncalibrated"],
            after,
        )
    print(caption)
    print(table.markdown())
    write_markdown(args.markdown, caption, table)


if __name__ == "__main__":
    main()
