"""One final fit three ways: TensorFlow in one process, JAX in one process, and JAX data-parallel
over two processes (``train --distribute multi-host``), side by side on the same data; then what
one gloo all-reduce of the model's gradients costs between the two processes.

Each fit is a real ``deepfake-detection train`` (no tuning, the architecture's default
hyperparameters, the same global batch) into its own tracking store. Speed is the steady state:
the median time between the ends of consecutive epochs (training and validation), read from the
timestamps of the per-epoch metrics the run logged; the first epoch (tracing, decoding) is left
out. The all-reduce is timed apart in two fresh processes: a ``jax.jit`` sum over the two
processes' devices of a float32 vector as long as the model has parameters, which is what
``DataParallel`` does to the gradients at every step.

On one machine the two processes share its cores and talk over loopback TCP, so this shows the
overheads (the all-reduce, a smaller batch per process), not a speed-up machines would give.

    python benchmarks/multihost_train.py [--arch custom_a] [--epochs 4] [--num-images 1000] [--data DIR]
                                         [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import bench_data, dataset_path, died, free_port, private_workspace


def train(data: Path, workspace: Path, args, processes: int, backend: str, pinned: bool = False) -> dict:
    """Run one ``train`` (``processes`` of them for multi-host) in its own store; its speed.
    ``pinned``: process i runs on core i alone (``taskset``), as if each had a machine of one core."""
    import mlflow
    from mlflow import MlflowClient

    name = f"{backend}-{processes}{'-pinned' if pinned else ''}"
    folder = workspace / name
    folder.mkdir()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    common = ["--arch", args.arch, "--data", str(data), "--image-size", str(args.image_size), "--tuner", "none"]
    common += ["--epochs", str(args.epochs), "--patience", str(args.epochs), "--batch-size", str(args.batch_size)]
    common += ["--work-dir", str(folder / "outputs")]
    if backend == "jax":
        common += ["--distribute", "multi-host", "--coordinator", f"127.0.0.1:{free_port()}"]
        common += ["--num-processes", str(processes)]
    commands = [common + (["--process-id", str(i)] if backend == "jax" else []) for i in range(processes)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    print(f"{name}: training …", flush=True)
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            (["taskset", "-c", str(i)] if pinned else [])
            + [sys.executable, "-m", "deepfake_detection", "train", *command],
            env=env,
            cwd=folder,
            stdout=(folder / f"process{i}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for i, command in enumerate(commands)
    ]
    codes = [process.wait() for process in running]
    wall = time.perf_counter() - started
    for i, code in enumerate(codes):
        if code:
            raise died(f"{name}: train process {i}", code, folder / f"process{i}.log")
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    (run,) = mlflow.search_runs(search_all_experiments=True, filter_string="tags.step = 'train-architecture'").run_id
    history = client.get_metric_history(run, "train_epoch_loss")
    ends = sorted(m.timestamp for m in history)
    epochs = [(b - a) / 1000 for a, b in zip(ends, ends[1:])]
    params = client.get_run(run).data.params
    train_images = train_count(data)
    seconds = statistics.median(epochs)
    return {
        "name": name,
        "backend": params["keras_backend"],
        "processes": processes,
        "pinned": pinned,
        "seconds_per_epoch": seconds,
        "images_per_second": train_images / seconds,
        "epochs": epochs,
        "wall": wall,
        "run": run,
    }


def train_count(data: Path) -> int:
    import pandas as pd

    return int((pd.read_csv(data / "manifest.csv")["split"] == "train").sum())


def parameters(arch: str, image_size: int) -> int:
    import keras_tuner as kt

    from deepfake_detection.architectures import get_architecture

    return get_architecture(arch, image_size).build(kt.HyperParameters()).count_params()


ALLREDUCE = """
import os, sys, time, json
os.environ["KERAS_BACKEND"] = "jax"
import jax, numpy as np
jax.config.update("jax_cpu_collectives_implementation", "gloo")
process, port, size, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
jax.distributed.initialize(f"127.0.0.1:{port}", 2, process)
from jax.sharding import Mesh, NamedSharding, PartitionSpec
mesh = Mesh(np.array(jax.devices()), ("batch",))
local = np.full((1, size), process + 1, np.float32)
x = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("batch")), local)
total = jax.jit(lambda a: a.sum(0), out_shardings=NamedSharding(mesh, PartitionSpec()))
total(x).block_until_ready()
times = []
for _ in range(repeats):
    t = time.perf_counter(); out = total(x); out.block_until_ready(); times.append(time.perf_counter() - t)
assert float(np.asarray(out.addressable_data(0))[0]) == 3.0
print(json.dumps({"median_ms": 1000 * float(np.median(times))}))
"""


def allreduce_ms(size: int, repeats: int = 50) -> float:
    import json

    port = str(free_port())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    running = [
        subprocess.Popen(
            [sys.executable, "-c", ALLREDUCE, str(i), port, str(size), str(repeats)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in running]
    for i, (process, output) in enumerate(zip(running, outputs)):
        if process.returncode:
            raise died(f"all-reduce process {i}", process.returncode, output)
    return max(json.loads(out.strip().splitlines()[-1])["median_ms"] for out in outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, help="A prepared dataset (default: build the 64 px benchmark).")
    parser.add_argument("--arch", default="custom_a")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=1000, help="Bench images per class when building.")
    parser.add_argument("--epochs", type=int, default=4, help="The first is left out of the speed.")
    parser.add_argument("--batch-size", type=int, default=32, help="The global batch, the same in every setup.")
    add_markdown_option(parser)
    args = parser.parse_args()

    workspace = private_workspace("multihost-bench-")
    data = bench_data(args.data, workspace, args.image_size, num_images=args.num_images)
    results = []
    for pinned in (False, True):
        results += [
            train(data, workspace, args, 1, "tensorflow", pinned),
            train(data, workspace, args, 1, "jax", pinned),
        ]
        results.append(train(data, workspace, args, 2, "jax", pinned))
    size = parameters(args.arch, args.image_size)
    reduce_ms = allreduce_ms(size)

    caption = (
        f"{args.arch} at {args.image_size} px, global batch {args.batch_size}, {args.epochs} epochs, "
        f"{os.cpu_count()} CPU cores; steady state = median of epochs 2..{args.epochs} (train + valid)"
    )
    pinning = "pinned: each process on its own core (taskset), as if each had a machine of one core"
    table = Table(
        {"setup": "<30", "backend": "<11", "s/epoch": ">8.2f", "img/s": ">8.1f", "vs TF": ">6.2f", "epochs (s)": "<"}
    )
    print(f"\n{caption}\n{pinning}\n{table.header()}")
    notes = []
    for group in (results[:3], results[3:]):
        base = group[0]["images_per_second"]
        for r in group:
            label = f"{r['processes']} process{'es' if r['processes'] > 1 else ''}"
            if r["pinned"]:
                label += ", 1 core each" if r["processes"] > 1 else ", 1 core"
            else:
                label += ", sharing 2 cores" if r["processes"] > 1 else ", 2 cores"
            epochs = ", ".join(f"{e:.2f}" for e in r["epochs"])
            speed = r["images_per_second"]
            print(table.row(label, r["backend"], r["seconds_per_epoch"], speed, speed / base, epochs))
        one, two = group[1], group[2]
        notes.append(
            f"2 processes vs 1 (both JAX{', pinned' if two['pinned'] else ''}): "
            f"{two['images_per_second'] / one['images_per_second']:.2f}x"
        )
        print(f"  {notes[-1]}")
    steps = -(-train_count(data) // args.batch_size)
    for two in (results[2], results[5]):
        share = reduce_ms * steps / 1000 / two["seconds_per_epoch"]
        notes.append(
            f"gloo all-reduce of {size:,} float32 ({size * 4 / 2**20:.2f} MiB) between the 2 processes: "
            f"{reduce_ms:.2f} ms; x {steps} steps = {reduce_ms * steps / 1000:.2f} s, "
            f"{100 * share:.0f} % of a 2-process epoch{' (pinned)' if two['pinned'] else ''}"
        )
        print(notes[-1])
    write_markdown(args.markdown, caption, pinning, table, notes)


if __name__ == "__main__":
    main()
