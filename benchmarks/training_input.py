"""Is the input pipeline ever the bottleneck of training? Training images/second of the same
model fed three ways, measured one after the other in one run:

(a) the project's tf.data pipeline reading the dataset's files (decoded once, then cached —
    what ``train`` does), without augmentation, and (a+aug) with the default augmentation;
(b) the same images as tensors already in memory (a ``tf.data`` over in-memory tensors): the
    compute alone; (b') the same arrays given to ``model.fit(x, y)`` directly, which Keras
    slices batch by batch itself (slower for some models, so (b) is the reference);
(c) a naive loader: a ``keras.utils.PyDataset`` that opens, converts and resizes every file
    with PIL in a Python loop, batch by batch — what the original notebooks' generator did.

Each feed trains its own model; epochs alternate between the feeds. The first epoch (tracing,
and for (a) decoding the files) is reported apart; the steady state is the median of the later
epochs. Prints (a)/(b) and (a)/(c).

    python benchmarks/training_input.py [--arch custom_a,densenet121] [--image-size 64] [--rounds 5] [--data DIR]
                                        [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Five models alternate in one process; oneDNN's default cache (1024 primitives) cannot hold
# DenseNet's for all of them, and re-creating evicted primitives would be timed as training.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16384")

import numpy as np
from _report import Table, add_markdown_option, write_markdown
from _workspace import dataset_path


def naive_loader(files, labels, image_size: int, batch_size: int):
    import keras
    from PIL import Image

    class PilLoader(keras.utils.PyDataset):
        def __len__(self):
            return (len(files) + batch_size - 1) // batch_size

        def __getitem__(self, index):
            chosen = slice(index * batch_size, (index + 1) * batch_size)
            batch = []
            for path in files[chosen]:
                with Image.open(path) as picture:
                    resized = picture.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
                    batch.append(np.asarray(resized, dtype=np.float32))
            return np.stack(batch), labels[chosen]

    return PilLoader()


def fresh_model(arch: str, image_size: int):
    import keras
    import keras_tuner as kt

    from deepfake_detection.architectures import get_architecture

    keras.utils.set_random_seed(0)
    return get_architecture(arch, image_size).build(kt.HyperParameters())


def epoch_rate(model, feed, images: int) -> float:
    """Images/second of one ``model.fit`` epoch on ``feed``."""
    started = time.perf_counter()
    if isinstance(feed, tuple):
        model.fit(feed[0], feed[1], batch_size=32, epochs=1, shuffle=True, verbose=0)
    else:
        model.fit(feed, epochs=1, verbose=0)
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=dataset_path, help="Prepared dataset (default: build the 64 px benchmark).")
    parser.add_argument("--arch", default="custom_a,densenet121")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="Epochs per feed, alternating (>= 2).")
    parser.add_argument("--batch-size", type=int, default=32)
    add_markdown_option(parser)
    args = parser.parse_args()

    import tensorflow as tf

    from deepfake_detection.data.pipeline import Augment, load_manifest, make_dataset
    from deepfake_detection.data.sources import LABELS

    data = args.data
    if data is None:
        from deepfake_detection.data.prepare import prepare_bench

        data = Path(tempfile.mkdtemp(prefix="training-input-")) / "data"
        print(f"building a benchmark dataset in {data} …")
        prepare_bench(data, image_size=args.image_size, num_images=500, progress=False, check=False)
    rows = load_manifest(data, "train")
    files = rows["file"].tolist()
    labels = rows["label"].map(LABELS).to_numpy(np.float32)
    size, batch = args.image_size, args.batch_size
    in_memory = np.stack(
        [
            x.numpy()
            for x in make_dataset(data, "train", image_size=size, batch_size=1, cache=False).map(lambda x, y: x[0])
        ]
    )
    caption = (
        f"{len(files)} training images, {size} px, batch {batch}, {os.cpu_count()} CPUs, "
        f"TensorFlow {tf.__version__}, {args.rounds} alternating epochs per feed, median of epochs 2-{args.rounds}"
    )
    table = Table({"model": "<12", "feed": "<34", "epoch 1 img/s": ">14.1f", "steady img/s": ">13.1f"})
    print(f"{caption}\n{table.header()}")
    ratios = []
    for arch in [a.strip() for a in args.arch.split(",") if a.strip()]:
        tensors = (
            tf.data.Dataset.from_tensor_slices((in_memory, labels))
            .shuffle(len(labels), seed=0)
            .batch(batch)
            .prefetch(tf.data.AUTOTUNE)
        )
        feeds = [
            (
                "a",
                "(a) tf.data from files, cached",
                make_dataset(data, "train", image_size=size, batch_size=batch, shuffle=True),
            ),
            (
                "a+aug",
                "(a+aug) tf.data + augmentation",
                make_dataset(data, "train", image_size=size, batch_size=batch, shuffle=True, augment=Augment()),
            ),
            ("b", "(b) tensors in memory (tf.data)", tensors),
            ("b-np", "(b') numpy arrays, fit(x, y)", (in_memory, labels)),
            ("c", "(c) naive PIL loop (PyDataset)", naive_loader(files, labels, size, batch)),
        ]
        # One model per feed; epochs alternate between the feeds so a slow spell of this shared
        # machine hits all of them alike. Round 1 (tracing; for (a), decoding the files) is apart.
        models = {key: fresh_model(arch, size) for key, _, _ in feeds}
        rates = {key: [] for key, _, _ in feeds}
        for _ in range(args.rounds):
            for key, _, feed in feeds:
                rates[key].append(epoch_rate(models[key], feed, len(files)))
        results = {}
        for key, name, _ in feeds:
            results[key] = statistics.median(rates[key][1:])
            print(table.row(arch, name, rates[key][0], results[key]), flush=True)
        a, b, c = results["a"], results["b"], results["c"]
        ratio = f"(a)/(b) = {a / b:.3f}   (a)/(c) = {a / c:.2f}   (a+aug)/(b) = {results['a+aug'] / b:.3f}"
        print(f"{arch:<12} {ratio}")
        ratios.append(f"{arch}: {ratio}")
    write_markdown(args.markdown, caption, table, ratios)


if __name__ == "__main__":
    main()
