"""What the deep backbones learn from scratch on a CPU: validation ROC-AUC after every epoch of
VGGFace16 and DenseNet-121 (no pretrained weights), on RGB pixels and on the NPR residual (the
default from scratch), with the project's training recipe (AdamW, warm-up + cosine over the
epochs, label smoothing, default augmentation) and data pipeline.

Prints one row per epoch (seconds so far, validation ROC-AUC, fake = positive) and, at the end,
each model's test ROC-AUC with its 95 % bootstrap interval; ``--plot`` writes the curves as a PNG.

    python benchmarks/from_scratch.py [--arch vggface16,densenet121] [--inputs rgb,npr] [--epochs 6]
                                      [--data DIR] [--plot PNG] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _report import Table, add_markdown_option, write_markdown
from _workspace import bench_data, dataset_path, private_workspace, user_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, help="A prepared dataset (default: build the 64 px benchmark).")
    parser.add_argument("--arch", default="vggface16,densenet121")
    parser.add_argument("--inputs", default="rgb,npr")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-images", type=int, default=2000, help="Bench images per class when building.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plot", type=user_path, help="Write the curves to this PNG.")
    add_markdown_option(parser)
    args = parser.parse_args()

    import keras
    import keras_tuner as kt
    from sklearn.metrics import roc_auc_score

    from deepfake_detection import evaluation
    from deepfake_detection.architectures import get_architecture
    from deepfake_detection.data.pipeline import Augment, load_splits, make_dataset
    from deepfake_detection.training import steps_per_epoch

    workspace = private_workspace("from-scratch-")
    data = bench_data(args.data, workspace, args.image_size, args.seed, num_images=args.num_images)
    parts = load_splits(data)
    augment = Augment()
    train = make_dataset(
        data, "train", args.image_size, args.batch_size, augment=augment, shuffle=True, manifest=parts["train"]
    )
    valid = make_dataset(data, "valid", args.image_size, 64, manifest=parts["valid"])
    test = make_dataset(data, "test", args.image_size, 64, manifest=parts["test"])
    y_valid, y_test = evaluation.fake_labels(parts["valid"]), evaluation.fake_labels(parts["test"])
    caption = f"{len(parts['train'])} training images, {args.image_size} px, {args.epochs} epochs, seed {args.seed}"
    print(caption)
    epochs = Table({"model": "<24", "epoch": ">5", "seconds": ">7.1f", "valid ROC-AUC": ">13.3f"})
    print(epochs.header())
    curves = {}
    results = Table({"model": "<24", "test ROC-AUC": ">12.3f", "95 % interval": "<"})
    for arch in args.arch.split(","):
        for representation in args.inputs.split(","):
            keras.utils.set_random_seed(args.seed)
            architecture = get_architecture(arch, args.image_size)
            architecture.training_steps = args.epochs * steps_per_epoch(len(parts["train"]), args.batch_size)
            hp = kt.HyperParameters()
            hp.Fixed("input", representation)
            model = architecture.build(hp)
            label, started, curve = f"{arch} ({representation})", time.perf_counter(), []
            for epoch in range(1, args.epochs + 1):
                model.fit(train, epochs=1, verbose=0)
                auc = roc_auc_score(y_valid, model.predict(valid, verbose=0).reshape(-1))
                curve.append(auc)
                print(epochs.row(label, epoch, time.perf_counter() - started, auc), flush=True)
            curves[label] = curve
            metrics = evaluation.metrics_with_intervals(
                y_test, model.predict(test, verbose=0).reshape(-1), 0.5, seed=args.seed
            )
            interval = f"[{metrics['roc_auc_ci_low']:.3f}, {metrics['roc_auc_ci_high']:.3f}]"
            results.row(label, metrics["roc_auc"], interval)
            keras.backend.clear_session()
    ending = "test ROC-AUC after the last epoch [95 % bootstrap interval], fake = positive"
    print(f"\n{ending}\n{results.text()}")
    write_markdown(args.markdown, caption, epochs, ending, results)
    if args.plot:
        from deepfake_detection.plots import valid_auc_curves_figure

        figure = valid_auc_curves_figure(curves, title="From scratch on 2 CPU cores")
        figure.savefig(args.plot, dpi=120)
        print(f"curves written to {args.plot}")


if __name__ == "__main__":
    main()
