"""How long ``train --distribute multi-host`` takes to stop when something goes wrong, with two
processes on 127.0.0.1: a coordinator nobody runs, a process 0 nobody joins, process 1 killed in
the middle of a fit, and process 0 killed in the middle of a fit. Prints each case's exit codes,
the seconds from the fault to the survivor's exit, and the last line it printed.

    python benchmarks/multihost_faults.py [--timeout 10] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import died, free_port, last_lines


def start(folder: Path, data: Path, port: int, process: int, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = folder / f"process{process}-{port}.log"
    command = [sys.executable, "-m", "deepfake_detection", "train", "--arch", "custom_a", "--data", str(data)]
    command += ["--image-size", "32", "--tuner", "none", "--epochs", "500", "--patience", "500", "--batch-size", "8"]
    command += ["--distribute", "multi-host", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    command += ["--process-id", str(process), "--work-dir", str(folder / "outputs"), *extra]
    popen = subprocess.Popen(command, cwd=folder, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return popen, log


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text().splitlines() if line.strip() and not line.startswith(("I0000", "W0000"))]
    lines = [line for line in lines if not line.lstrip().startswith("@")]  # a native stack trace's frames
    useful = [line for line in lines if "Error" in line or "error" in line or "Terminating" in line]
    return (useful or lines or [""])[-1][:220]


def wait_for(process: subprocess.Popen, log: Path, text: str, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while text not in log.read_text():
        if process.poll() is not None:
            raise died(f"the train process (waited for {text!r})", process.returncode, log)
        if time.monotonic() > deadline:
            raise SystemExit(f"no {text!r} in {log} within {limit} s; its last lines:\n{last_lines(log)}")
        time.sleep(0.1)


def killed_mid_fit(folder: Path, data: Path, victim: int) -> tuple[list, float, str]:
    port = free_port()
    processes = [start(folder, data, port, i) for i in range(2)]
    try:
        wait_for(*processes[1], "fitting its shard")
    except SystemExit:
        for process, _ in processes:
            process.kill()
        raise
    time.sleep(3)
    processes[victim][0].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    survivor, log = processes[1 - victim]
    survivor.wait(timeout=600)
    return [p.wait() for p, _ in processes], time.monotonic() - killed, last_line(log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=10, help="--distribute-timeout for the unreachable case.")
    add_markdown_option(parser)
    args = parser.parse_args()

    from deepfake_detection.data.prepare import prepare_bench

    folder = Path(tempfile.mkdtemp(prefix="multihost-faults-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'mlflow.db'}"
    data = folder / "data"
    prepare_bench(data, image_size=32, num_images=24, generator_steps=10, progress=False, check=False)

    rows = []
    started = time.monotonic()
    alone, log = start(folder, data, free_port(), 1, "--distribute-timeout", str(args.timeout))
    code = alone.wait(timeout=600)
    rows.append(("no coordinator (process 1 alone)", [code], time.monotonic() - started, last_line(log)))
    started = time.monotonic()
    lonely, log = start(folder, data, free_port(), 0, "--distribute-timeout", str(args.timeout))
    code = lonely.wait(timeout=600)
    rows.append(("no process 1 (process 0 alone)", [code], time.monotonic() - started, last_line(log)))
    for victim, label in ((1, "process 1 killed mid-fit"), (0, "process 0 killed mid-fit")):
        codes, seconds, line = killed_mid_fit(folder, data, victim)
        rows.append((label, codes, seconds, line))

    from mlflow import MlflowClient

    versions = MlflowClient().search_model_versions("name = 'deepfake-custom_a'")
    caption = (
        f"--distribute-timeout {args.timeout:g} s in the first two cases (their times include starting "
        "Python, TensorFlow and JAX); heartbeat timeout 30 s"
    )
    table = Table({"case": "<34", "exit codes": "<11", "stopped after s": ">15.1f", "survivor's last words": "<"})
    for label, codes, seconds, line in rows:
        table.row(label, ",".join(map(str, codes)), seconds, line)
    registered = f"registered versions afterwards: {len(versions)}"
    print(f"\n{caption}\n{table.text()}\n{registered}")
    write_markdown(args.markdown, caption, table, registered)


if __name__ == "__main__":
    main()
