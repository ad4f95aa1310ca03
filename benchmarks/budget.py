"""Planned against actual training time under a time budget: runs ``deepfake-detection train``
once per budget on a prepared dataset, each in a fresh tracking store, and prints per budget what
the measurement took, the plan (as ``--plan`` would pin it: epochs, and ``@share`` where each
epoch trains on a share of the training set), the training seconds the budget counts
(measurement + every trial and final fit, read from the runs) and whether a fit was stopped by
the budget.

    python benchmarks/budget.py --data data/combined-real-vs-fake [--budgets 2,4,8]
        [--arch custom_a,custom_c,npr,spectrum] [--epochs 50] [--max-trials 2] [--tuner random] [--markdown PATH]

A slower machine, simulated: prefix the command with ``taskset -c 0`` (one core).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import Table, add_markdown_option, write_markdown
from _workspace import dataset_path, died


def train(data: Path, budget: float, args, folder: Path) -> dict:
    store = f"sqlite:///{folder / 'mlflow.db'}"
    command = [
        *(sys.executable, "-m", "deepfake_detection", "train", "--data", str(data), "--arch", args.arch),
        *("--budget-minutes", str(budget), "--epochs", str(args.epochs), "--max-trials", str(args.max_trials)),
        *("--tuner", args.tuner),
        *("--work-dir", str(folder / "outputs")),
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
        cwd=folder,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        said = done.stderr + done.stdout
        if "cannot train one epoch of every architecture" in said:
            least = re.search(r"at least ([0-9.]+)", said)
            return {"budget": budget, "refused": True, "wall": wall, "least": least.group(1) if least else "?"}
        raise died(f"train with a {budget:g}-minute budget", done.returncode, done.stdout + done.stderr)
    from mlflow import MlflowClient

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("deepfake-detection")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("step") == "train")
    children = [r for r in runs if r.data.tags.get("step") == "train-architecture"]
    trials = [r for r in runs if r.data.tags.get("step") == "trial"]
    speeds = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "plan/speeds.json", str(folder))).read_text()
    )
    rows = [dict(zip(speeds["columns"], row)) for row in speeds["data"]]
    measured = next(
        float(line.split(" in ")[1].split(" s")[0])
        for line in done.stdout.splitlines()
        if line.startswith("measured this machine's training speed in")
    )
    fits = sum(r.data.metrics.get("train_seconds", 0.0) for r in children)
    trial_seconds = sum((r.info.end_time - r.info.start_time) / 1000 for r in trials)
    return {
        "budget": budget,
        "refused": False,
        "wall": wall,
        "measured": measured,
        "planned": measured + sum(r["planned_seconds"] for r in rows),
        "actual": measured + fits + trial_seconds,
        "plan": parent.data.tags["plan"],
        "stopped": sum(r.data.tags.get("stopped_by_budget") == "true" for r in children),
        # the quality the budget bought: the model best on valid, its test ROC-AUC
        "best": max(children, key=lambda r: r.data.metrics.get("valid_roc_auc", 0.0)).data,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, default="data/combined-real-vs-fake")
    parser.add_argument("--budgets", default="2,4,8", help="Minutes, comma-separated.")
    parser.add_argument("--arch", default="custom_a,custom_c,npr,spectrum")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--max-trials", type=int, default=2)
    parser.add_argument("--tuner", default="random", help="random | bayesian | none")
    add_markdown_option(parser)
    args = parser.parse_args()
    table = Table(
        {
            "budget s": ">8.0f",
            "measuring s": ">11.0f",
            "planned s": ">9.0f",
            "actual s": ">8.0f",
            "actual / budget": ">15.2f",
            "stopped fits": ">12",
            "whole command s": ">15.0f",
            "best on valid": "<",
            "its test ROC-AUC": ">16.3f",
            "plan": "<",
        }
    )
    print(table.header())
    for budget in (float(b) for b in args.budgets.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            r = train(args.data.resolve(), budget, args, Path(folder))
        if r["refused"]:
            print(
                table.row(
                    budget * 60,
                    float("nan"),
                    float("nan"),
                    float("nan"),
                    float("nan"),
                    "-",
                    r["wall"],
                    "-",
                    float("nan"),
                    f"refused: needs at least {r['least']} min",
                ),
                flush=True,
            )
            continue
        print(
            table.row(
                budget * 60,
                r["measured"],
                r["planned"],
                r["actual"],
                r["actual"] / (budget * 60),
                str(r["stopped"]),
                r["wall"],
                r["best"].tags["architecture"],
                r["best"].metrics["test_roc_auc"],
                r["plan"],
            ),
            flush=True,
        )
    write_markdown(args.markdown, table)


if __name__ == "__main__":
    main()
