"""``deepfake-detection serve`` under load: bounded concurrent clients against 127.0.0.1.

    python benchmarks/serve_load.py [--clients 1,8,32] [--workers 1,2] [--requests 96] [--images 8] [--markdown PATH]
    python benchmarks/serve_load.py --model models:/deepfake-custom_c@champion --data data/combined-real-vs-fake

For each number of server worker processes, starts the server, then for each number of
clients sends ``--requests`` requests of ``--images`` test images each (JSON, base64), with
that many requests in flight at most, and stops by itself. Prints requests/s, images/s,
p50/p95/p99 latency, errors (any answer but 200 with one row per image) and the server's peak
resident memory (its processes' VmHWM summed), and the ratio of images/s between worker
counts at each client count. Without ``--model`` it builds a benchmark dataset and trains a
detector (no tuning, 1 epoch) in a temporary tracking store first; that is not timed. The
server's output goes to ``server-<workers>.log`` in the benchmark's temporary folder; if the
server dies, its last lines are printed.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import (
    bench_data,
    dataset_path,
    died,
    free_port,
    last_lines,
    model_uri,
    scoring_workspace,
    trained_detector,
)


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [pid]
    if children.exists():
        for child in children.read_text().split():
            found += tree(int(child))
    return found


def peak_rss_mib(pid: int) -> float:
    total = 0
    for member in tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def start(uri: str, workers: int, env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    """``serve`` on a free port, its output to ``log``; its URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "deepfake_detection", "serve", "--model", uri, "--port", str(port)]
    command += ["--workers", str(workers)]
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise died("the server", process.returncode, log)
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return process, url
        except requests.RequestException:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not answer within 300 s (log: {log}); its last lines:\n{last_lines(log)}")


def load(url: str, payloads: list[dict], images: int, clients: int) -> dict:
    latencies, errors = [], 0

    def one(payload: dict) -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            answer = requests.post(f"{url}/invocations", json=payload, timeout=300)
            ok = answer.status_code == 200 and len(answer.json()["predictions"]) == images
        except requests.RequestException:
            ok = False
        return time.perf_counter() - started, ok

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for seconds, ok in pool.map(one, payloads):
            latencies.append(seconds)
            errors += not ok
    wall = time.perf_counter() - started
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {
        "rps": len(payloads) / wall,
        "ips": len(payloads) * images / wall,
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=model_uri, help="Model URI to serve (default: train one here).")
    parser.add_argument("--data", type=dataset_path, help="Prepared dataset whose test images are sent.")
    parser.add_argument("--arch", default="custom_c")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--images", type=int, default=8, help="Images per request.")
    add_markdown_option(parser)
    args = parser.parse_args()

    workspace = scoring_workspace("serve-load-", args.model)
    data = bench_data(args.data, workspace, args.image_size, num_images=300)
    uri = args.model or trained_detector(args.arch, data, args.image_size, workspace)
    files = sorted((data / "test").rglob("*.*"))
    blobs = [base64.b64encode(f.read_bytes()).decode() for f in files]
    payloads = [
        {
            "dataframe_split": {
                "columns": ["image"],
                "data": [[blobs[(r * args.images + k) % len(blobs)]] for k in range(args.images)],
            }
        }
        for r in range(args.requests)
    ]
    clients = [int(c) for c in args.clients.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    caption = (
        f"model {uri}, {args.requests} requests of {args.images} images ({args.image_size} px test files) "
        f"per client count, {os.cpu_count()} CPUs"
    )
    print(caption)
    table = Table(
        {
            "workers": ">7",
            "clients": ">7",
            "req/s": ">7.1f",
            "img/s": ">7.1f",
            "p50 s": ">7.3f",
            "p95 s": ">7.3f",
            "p99 s": ">7.3f",
            "errors": ">6",
            "peak RSS MiB": ">12.0f",
        }
    )
    print(table.header())
    results = {}
    env = dict(os.environ)
    for count in workers:
        process, url = start(uri, count, env, workspace / f"server-{count}.log")
        try:
            load(url, payloads[: 2 * count], args.images, count)  # warm-up: every worker traces its shapes
            for n in clients:
                r = load(url, payloads, args.images, n)
                results[count, n] = r
                cells = (r["rps"], r["ips"], r["p50"], r["p95"], r["p99"], r["errors"], peak_rss_mib(process.pid))
                print(table.row(count, n, *cells), flush=True)
        finally:
            process.terminate()
            process.wait(timeout=60)
    ratios = []
    for count in workers[1:]:
        each = ", ".join(f"{n} clients {results[count, n]['ips'] / results[workers[0], n]['ips']:.2f}" for n in clients)
        ratios.append(f"images/s with {count} workers / {workers[0]}: {each}")
        print(ratios[-1])
    write_markdown(args.markdown, caption, table, ratios)


if __name__ == "__main__":
    main()
