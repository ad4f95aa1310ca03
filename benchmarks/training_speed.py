"""Training seconds per 1,000 images of every architecture: the costs a ``--budget-minutes``
plan is made from (``Architecture.seconds_per_kimage``), and float32 against mixed_bfloat16.

For each architecture, one model per precision is built with its default hyperparameters and
the training recipe (AdamW, warm-up + cosine), and fed the project's own ``tf.data`` pipeline
(decoded once and cached, default augmentation), with validation on the valid split each
epoch, as ``train`` does. Epochs alternate between the precisions, so both see the same
machine load; the first epoch of each (tracing, decoding the files) is reported apart, the
steady state is the median of the later ones. Prints seconds per 1,000 training images
(validation included, at the dataset's train/valid ratio) and, with ``--precisions
float32,mixed_bfloat16``, the speed ratio and each model's validation ROC-AUC after the last epoch.

    python benchmarks/training_speed.py [--arch all] [--precisions float32] [--rounds 3] [--num-images 2000]
                                        [--data DIR] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16384")  # several models alternate in one process

from _report import Table, add_markdown_option, write_markdown
from _workspace import bench_data, dataset_path, private_workspace


def build(arch: str, image_size: int, precision: str, steps: int):
    import keras
    import keras_tuner as kt

    from deepfake_detection.architectures import get_architecture

    keras.mixed_precision.set_global_policy(precision)
    try:
        architecture = get_architecture(arch, image_size)
        architecture.training_steps = steps
        return architecture.build(kt.HyperParameters())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, help="A prepared dataset (default: build the 64 px benchmark).")
    parser.add_argument("--arch", default="all")
    parser.add_argument("--precisions", default="float32", help="Comma list of Keras dtype policies.")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=2000, help="Bench images per class when building.")
    parser.add_argument("--rounds", type=int, default=3, help="Epochs per model (the first is not steady state).")
    parser.add_argument("--batch-size", type=int, default=32)
    add_markdown_option(parser)
    args = parser.parse_args()

    import keras
    from sklearn.metrics import roc_auc_score

    from deepfake_detection.architectures import get_architecture, parse_architectures
    from deepfake_detection.data.pipeline import Augment, load_splits, make_dataset
    from deepfake_detection.evaluation import fake_labels
    from deepfake_detection.training import steps_per_epoch

    workspace = private_workspace("training-speed-")
    data = bench_data(args.data, workspace, args.image_size, num_images=args.num_images)
    parts = load_splits(data)
    valid = make_dataset(data, "valid", args.image_size, args.batch_size, manifest=parts["valid"])
    train = make_dataset(
        data, "train", args.image_size, args.batch_size, augment=Augment(), shuffle=True, manifest=parts["train"]
    )
    n_train, precisions = len(parts["train"]), args.precisions.split(",")
    steps = args.rounds * steps_per_epoch(n_train, args.batch_size)
    caption = (
        f"{n_train} training and {len(parts['valid'])} validation images, {args.image_size} px, batch {args.batch_size}"
    )
    table = Table(
        {
            "architecture": "<13",
            "precision": "<15",
            "first epoch s": ">13.1f",
            "s per 1k images": ">15.2f",
            "in code": ">7.1f",
            "ratio": ">6.2f",
            "val AUC": ">7.3f",
        }
    )
    print(f"{caption}\n{table.header()}")
    for arch in parse_architectures(args.arch):
        keras.utils.set_random_seed(42)
        models = {p: build(arch, args.image_size, p, steps) for p in precisions}
        seconds = {p: [] for p in precisions}
        for _ in range(args.rounds):
            for precision, model in models.items():
                started = time.perf_counter()
                model.fit(train, validation_data=valid, epochs=1, verbose=0)
                seconds[precision].append(time.perf_counter() - started)
        base = None
        for precision, model in models.items():
            per_kimage = statistics.median(seconds[precision][1:] or seconds[precision]) * 1000 / n_train
            base = base or per_kimage
            p_fake = model.predict(valid, verbose=0).reshape(-1)
            auc = roc_auc_score(fake_labels(parts["valid"]), p_fake)
            in_code = get_architecture(arch, args.image_size).seconds_per_kimage
            cells = (seconds[precision][0], per_kimage, in_code, base / per_kimage, auc)
            print(table.row(arch, precision, *cells), flush=True)
        keras.backend.clear_session()
    write_markdown(args.markdown, caption, table)


if __name__ == "__main__":
    main()
