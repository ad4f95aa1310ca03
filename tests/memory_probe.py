"""Run one data-heavy step in a fresh process and print its peak resident memory (MiB).

The peak is this process image's own (``VmHWM`` in ``/proc/self/status``, reset by exec), not
``ru_maxrss``, which on Linux keeps the peak of the process that forked it (a pytest worker
that has already run TensorFlow tests).

    python tests/memory_probe.py input DATA --num-samples N --image-size S --cache-budget-mb B
    python tests/memory_probe.py embeddings DATA --num-samples N --image-size S --output DIR

Used by tests/test_memory.py to compare the same step on N and 4N images.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["input", "embeddings"])
    parser.add_argument("data")
    parser.add_argument("--num-samples", type=int, required=True)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--cache-budget-mb", type=float, default=16)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    from deepfake_detection.data.pipeline import load_splits, make_dataset

    rows = load_splits(args.data, args.num_samples, splits=("train",))["train"]
    if args.step == "input":  # what training reads: the shuffled train split, two epochs
        dataset = make_dataset(
            args.data, "train", args.image_size, 32, shuffle=True, cache_budget_mb=args.cache_budget_mb, manifest=rows
        )
        seen = sum(int(x.shape[0]) for _ in range(2) for x, _ in dataset)
        print("plan", dataset.input_plan.describe())
    else:
        import keras

        from deepfake_detection.architectures import EMBEDDING_LAYER
        from deepfake_detection.embeddings import extract_to

        inputs = keras.Input((args.image_size, args.image_size, 3))
        pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, strides=4)(inputs))
        embedding = keras.layers.Dense(32768, name=EMBEDDING_LAYER)(pooled)
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(embedding))
        stored = extract_to(args.output, model, args.data, rows, args.image_size, batch_size=32)
        seen = len(stored.p_fake)
    assert seen == len(rows) * (2 if args.step == "input" else 1), seen
    print("images", len(rows))
    print("peak_rss_mib", peak_rss_kib() / 1024)


def peak_rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


if __name__ == "__main__":
    main()
