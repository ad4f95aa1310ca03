"""Inference speed against the hardware's limit, per architecture, image size and batch size.

For each model (freshly built, default hyperparameters; speed does not depend on the weights):
FLOPs per image (TensorFlow's profiler on the frozen graph), images/second of the same call
``predict`` uses (``predict_on_batch``) at batch 1 / 32 / 128, and the fraction of the
machine's dense float32 matmul throughput (measured here, same run) that this reaches.
Then the CPU knobs, on one model: intra-op threads, XLA (``jit_compile``) and bfloat16
mixed precision, each against the default side by side.

    python benchmarks/inference_speed.py [--arch all] [--sizes 64,224] [--batches 1,32,128] [--seconds 2]
                                         [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from _report import Table, add_markdown_option, write_markdown
from _workspace import died


def matmul_gflops(sizes=(2048, 4096), repeats: int = 3) -> tuple[float, float]:
    """Best float32 GFLOP/s of square matmuls: TensorFlow, numpy (the best over ``sizes``)."""
    import tensorflow as tf

    best_tf = best_np = 0.0
    for n in sizes:
        a, b = tf.random.uniform((n, n)), tf.random.uniform((n, n))
        tf.linalg.matmul(a, b).numpy()
        seconds = min(_timed(lambda a=a, b=b: tf.linalg.matmul(a, b).numpy()) for _ in range(repeats))
        best_tf = max(best_tf, 2.0 * n**3 / seconds / 1e9)
        x, y = a.numpy(), b.numpy()
        x @ y
        seconds = min(_timed(lambda x=x, y=y: x @ y) for _ in range(repeats))
        best_np = max(best_np, 2.0 * n**3 / seconds / 1e9)
    return best_tf, best_np


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def model_flops(model, image_size: int) -> float:
    """Floating-point operations for one image (multiply and add counted apart)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(tf.TensorSpec([1, image_size, image_size, 3], tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    options = (
        tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    return float(tf.compat.v1.profiler.profile(graph=frozen.graph, options=options).total_float_ops)


def images_per_second(model, image_size: int, batch: int, seconds: float) -> float:
    """Steady-state images/second of ``predict_on_batch`` (after a warm-up call)."""
    images = np.random.default_rng(0).uniform(0, 255, (batch, image_size, image_size, 3)).astype(np.float32)
    model.predict_on_batch(images)
    rates, spent = [], 0.0
    while spent < seconds or len(rates) < 2:
        took = _timed(lambda: model.predict_on_batch(images))
        rates.append(batch / took)
        spent += took
    return statistics.median(rates)


def build(arch: str, image_size: int, jit: bool = False):
    import keras_tuner as kt

    from deepfake_detection.architectures import get_architecture

    model = get_architecture(arch, image_size).build(kt.HyperParameters())
    model.jit_compile = jit
    return model


def knobs(arch: str, image_size: int, batch: int, seconds: float, table: Table) -> None:
    """The default next to each knob, for one model; all in this process except threads."""
    import subprocess
    import sys

    import keras

    print(f"\nCPU knobs, {arch} at {image_size} px, batch {batch} (images/s; ratio to the default):")
    print(table.header())
    default = images_per_second(build(arch, image_size), image_size, batch, seconds)
    print(table.row(arch, image_size, batch, "default (TensorFlow picks the threads)", default, 1.0))
    xla = images_per_second(build(arch, image_size, jit=True), image_size, batch, seconds)
    print(table.row(arch, image_size, batch, "XLA jit_compile=True", xla, xla / default))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        bf16 = images_per_second(build(arch, image_size), image_size, batch, seconds)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    print(table.row(arch, image_size, batch, "mixed_bfloat16", bf16, bf16 / default))
    for threads in (1, 2):  # thread pools are fixed once TensorFlow starts: a fresh process each
        command = [
            sys.executable,
            __file__,
            "--measure",
            f"{arch}:{image_size}:{batch}",
            "--threads",
            str(threads),
            "--seconds",
            str(seconds),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise died(f"the {threads}-thread measurement", done.returncode, done.stdout + done.stderr)
        rate = float(done.stdout.split()[-1])
        print(table.row(arch, image_size, batch, f"intra-op threads = {threads}, inter-op = 1", rate, rate / default))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="all")
    parser.add_argument("--sizes", default="64,224")
    parser.add_argument("--batches", default="1,32,128")
    parser.add_argument("--seconds", type=float, default=2.0, help="Least time measured per setting.")
    parser.add_argument(
        "--knobs",
        default="custom_c:64:32,densenet121:64:32",
        help="arch:size:batch settings to try the CPU knobs on ('' = none).",
    )
    parser.add_argument("--measure", default="", help="arch:size:batch: print only its images/s.")
    parser.add_argument("--threads", type=int, default=0, help="Intra-op threads (0 = TensorFlow's choice).")
    add_markdown_option(parser)
    args = parser.parse_args()

    import tensorflow as tf

    from deepfake_detection.architectures import parse_architectures

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if args.measure:
        arch, size, batch = args.measure.split(":")
        print(images_per_second(build(arch, int(size)), int(size), int(batch), args.seconds))
        return

    tf_peak, np_peak = matmul_gflops()
    peak = max(tf_peak, np_peak)
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "?")
    gpus = len(tf.config.list_physical_devices("GPU"))
    machine = f"{os.cpu_count()} CPUs ({cpu}), TensorFlow {tf.__version__}, GPUs: {gpus}"
    matmul = (
        f"dense float32 matmul (2048², 4096²): TensorFlow {tf_peak:.1f} GFLOP/s, numpy {np_peak:.1f} GFLOP/s "
        f"→ peak used below {peak:.1f} GFLOP/s"
    )
    print(f"{machine}\n{matmul}")
    batches = [int(b) for b in args.batches.split(",")]
    columns = {"model": "<12", "px": ">4", "GFLOP/img": ">10.3f"}
    for b in batches:
        columns |= {f"b={b} img/s": ">12.1f", f"b={b} % peak": ">12"}
    table = Table(columns)
    print(f"\n{table.header()}")
    for size in [int(s) for s in args.sizes.split(",")]:
        for arch in parse_architectures(args.arch):
            model = build(arch, size)
            flops = model_flops(model, size)
            cells = []
            for batch in batches:
                rate = images_per_second(model, size, batch, args.seconds)
                cells += [rate, f"{100 * rate * flops / 1e9 / peak:.1f}%"]
            print(table.row(arch, size, flops / 1e9, *cells), flush=True)
    knob_table = Table(
        {"model": "<12", "px": ">4", "batch": ">5", "setting": "<38", "img/s": ">8.1f", "vs default": ">10.2f"}
    )
    for setting in [s for s in args.knobs.split(",") if s]:
        arch, size, batch = setting.split(":")
        knobs(arch, int(size), int(batch), args.seconds, knob_table)
    knob_parts = ["CPU knobs (images/s; ratio to the default):", knob_table] if knob_table.rows else []
    write_markdown(args.markdown, machine, matmul, table, *knob_parts)


if __name__ == "__main__":
    main()
