"""Distributed tuning: one ``train`` process vs one ``tune`` chief + N workers, same search.

Both run the same random search (``--max-trials`` trials of ``--epochs`` epochs), then the
final fit and registration, with the real CLI in subprocesses against one private SQLite
store. Printed: wall time of each (from start to the last process ending), their ratio, and
how many trials each worker ran. Rounds alternate the order. On a machine with C cores and N
workers, each process gets TensorFlow's default threads: the gain comes from the cores one
small-model process leaves idle (input pipeline waits, Python between steps, start-up).

    python benchmarks/distributed_tuning.py [--arch custom_c] [--max-trials 6] [--workers 2] [--rounds 1]
                                            [--data DIR] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import bench_data, dataset_path, died, free_port, private_workspace

CLI = [sys.executable, "-m", "deepfake_detection"]


def _wait(processes: list[subprocess.Popen], logs: list[Path]) -> None:
    """Until every process has ended; the first to fail stops the others (a chief would wait for a dead
    worker) and is reported with its last lines."""
    while True:
        codes = [process.poll() for process in processes]
        failed = next((i for i, code in enumerate(codes) if code not in (None, 0)), None)
        if failed is not None:
            for process in processes:
                process.kill()
            raise died(" ".join(processes[failed].args[2:4]), codes[failed], logs[failed])
        if None not in codes:
            return
        time.sleep(0.5)


def one_process(common: list[str], work: Path) -> float:
    work.mkdir(parents=True, exist_ok=True)
    log = work / "train.log"
    started = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(
            CLI + ["train", *common, "--work-dir", str(work)], stdout=handle, stderr=subprocess.STDOUT
        )
        _wait([process], [log])
    return time.perf_counter() - started


def chief_and_workers(common: list[str], work: Path, workers: int) -> float:
    oracle = ["--oracle", f"127.0.0.1:{free_port()}", "--work-dir", str(work)]
    roles = [["--role", "chief"]] + [["--role", "worker", "--worker-id", f"w{i + 1}"] for i in range(workers)]
    logs = [work / f"{'chief' if i == 0 else f'w{i}'}.log" for i in range(len(roles))]
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(open(log, "w")) for log in logs]
        processes = [
            subprocess.Popen([*CLI, "tune", *role, *common, *oracle], stdout=h, stderr=subprocess.STDOUT)
            for role, h in zip(roles, handles)
        ]
        _wait(processes, logs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, help="A prepared dataset (default: build the 64 px benchmark).")
    parser.add_argument("--arch", default="custom_c")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-trials", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    add_markdown_option(parser)
    args = parser.parse_args()

    import mlflow

    from deepfake_detection import tracking

    workspace = private_workspace("distributed-tuning-")
    data = bench_data(args.data, workspace, args.image_size)
    os.chdir(workspace)
    tracking.ensure_experiment()  # create the store once, before several processes use it
    common = [
        "--arch",
        args.arch,
        "--data",
        str(data),
        "--image-size",
        str(args.image_size),
        "--epochs",
        str(args.epochs),
        "--max-trials",
        str(args.max_trials),
        "--tuner",
        "random",
    ]
    caption = (
        f"{args.arch}, {args.max_trials} trials x {args.epochs} epochs, {args.image_size} px, "
        f"{os.cpu_count()} CPUs, {args.workers} workers"
    )
    print(caption, flush=True)
    table = Table({"round": ">5", "setup": "<16", "wall s": ">7.1f"})
    print(table.header(), flush=True)
    times: dict[str, list[float]] = {"one process": [], "chief + workers": []}
    for round_ in range(args.rounds):
        order = ["one process", "chief + workers"] if round_ % 2 == 0 else ["chief + workers", "one process"]
        for kind in order:
            work = workspace / f"round{round_}-{kind.replace(' ', '').replace('+', '-')}"
            if kind == "one process":
                seconds = one_process(common, work)
            else:
                seconds = chief_and_workers(common, work, args.workers)
            times[kind].append(seconds)
            print(table.row(round_ + 1, kind, seconds), flush=True)

    trials = [
        r
        for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if r.data.tags.get("step") == "trial" and "tuner_id" in r.data.tags
    ]
    by_worker = Counter(r.data.tags["tuner_id"] for r in trials if r.data.tags["tuner_id"].startswith("w"))
    one, many = (statistics.median(times[k]) for k in ("one process", "chief + workers"))
    summary = (
        f"median wall time: one process {one:.1f} s, chief + {args.workers} workers {many:.1f} s, "
        f"speed-up {one / many:.2f}x"
    )
    shares = f"trials run by each worker (all rounds): {dict(sorted(by_worker.items()))}"
    print(summary)
    print(shares)
    write_markdown(args.markdown, caption, table, summary, shares)


if __name__ == "__main__":
    main()
