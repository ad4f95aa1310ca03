"""tf.data input pipeline from a prepared dataset's manifest.

Files are read and decoded in parallel, resized with antialiasing, cached in memory (decoded,
before augmentation) when the split fits a memory budget, optionally augmented, batched,
preprocessed for the architecture and prefetched. Labels: ``fake`` = 1.0, ``real`` = 0.0.

Memory stays bounded whatever the split's size (:func:`plan_input`): a split whose decoded
images exceed the budget is streamed from its files every epoch instead of cached, and it is
shuffled by reshuffling its file list every epoch and then mixing a bounded buffer of encoded
files, never a buffer the size of the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detection.config import TrainSettings
from deepfake_detection.data.augment import Augment, augment_image
from deepfake_detection.data.sources import LABELS
from deepfake_detection.data.writer import MANIFEST
from deepfake_detection.errors import DatasetError

# VGGFace (rcmalli, version 1) subtracts these BGR means from BGR pixels.
VGGFACE_MEAN_BGR = (93.5940, 104.7624, 129.1863)
PREPROCESSING = ("raw", "unit", "vggface", "densenet")
CACHE_BUDGET_MB = TrainSettings.cache_budget_mb  # decoded (float32) images of one split in memory at most
SHUFFLE_BUFFER = 4096  # encoded files mixed by tf.data's shuffle when a split is streamed


@dataclass(frozen=True)
class InputPlan:
    """How a split is fed: cached in memory or streamed from its files, and how it is shuffled."""

    images: int
    decoded_bytes: int  # the split's decoded float32 pixels, what a cache would hold
    cache: bool  # decoded images held in memory after the first epoch
    shuffle_files: bool  # the file list is reshuffled every epoch (streamed splits)
    shuffle_buffer: int  # elements in tf.data's shuffle buffer (0 = no shuffle)

    def describe(self) -> str:
        size = f"{self.images:,} images, {self.decoded_bytes / 2**20:,.0f} MiB decoded"
        how = "cached in memory" if self.cache else "streamed from files (over the cache budget)"
        if self.shuffle_buffer and self.cache:
            how += ", shuffled whole every epoch"
        elif self.shuffle_buffer:
            how += f", file list reshuffled every epoch, then a {self.shuffle_buffer:,}-file buffer"
        return f"{size}: {how}"


def plan_input(
    images: int,
    image_size: int,
    *,
    shuffle: bool,
    cache_budget_mb: float = CACHE_BUDGET_MB,
    shuffle_buffer: int = SHUFFLE_BUFFER,
    cache: bool | None = None,
) -> InputPlan:
    """Cache a split in memory only when its decoded images fit ``cache_budget_mb`` (or as
    ``cache`` forces); otherwise stream it, shuffling the file list plus a bounded buffer. A
    cached split is shuffled whole (its buffer holds the cached tensors themselves)."""
    decoded = images * image_size * image_size * 3 * 4
    if cache is None:
        cache = decoded <= cache_budget_mb * 2**20
    if not shuffle:
        return InputPlan(images, decoded, cache, False, 0)
    if cache:
        return InputPlan(images, decoded, True, False, images)
    return InputPlan(images, decoded, False, True, min(images, shuffle_buffer))


def load_manifest(root: Path | str, split: str | None = None) -> pd.DataFrame:
    """The manifest of a prepared dataset, optionally one split; paths made absolute."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(
            f"{root} is not a prepared dataset (no {MANIFEST}); build one with `deepfake-detection prepare`"
        )
    manifest = pd.read_csv(path, keep_default_na=False, dtype={"level": str, "generator": str, "photo": str})
    if split is not None:
        manifest = manifest[manifest["split"] == split]
        if manifest.empty:
            raise DatasetError(f"{root} has no images in split {split!r}")
    manifest = manifest.assign(file=[str(root / p) for p in manifest["path"]])
    return manifest.reset_index(drop=True)


def sample(manifest: pd.DataFrame, num_samples: int, seed: int) -> pd.DataFrame:
    """At most ``num_samples`` rows (0 = all), balanced over labels, deterministic for ``seed``."""
    if not num_samples or num_samples >= len(manifest):
        return manifest
    per_label = max(1, num_samples // manifest["label"].nunique())
    parts = [
        group.sample(n=min(per_label, len(group)), random_state=seed)
        for _, group in manifest.groupby("label", sort=True)
    ]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def load_splits(
    root: Path | str, num_samples: int = 0, seed: int = 42, splits: tuple[str, ...] = ("train", "valid", "test")
) -> dict[str, pd.DataFrame]:
    """The rows of each split (capped by ``num_samples``), after checking every split has both classes."""
    manifest = load_manifest(root)
    parts = {}
    for split in splits:
        rows = manifest[manifest["split"] == split].reset_index(drop=True)
        missing = set(LABELS) - set(rows["label"])
        if missing:
            raise DatasetError(
                f"{root}: split {split!r} has no {' and no '.join(sorted(missing))} images; "
                f"both classes are needed in {', '.join(splits)}"
            )
        parts[split] = sample(rows, num_samples, seed)
    return parts


def preprocess(images, mode: str):
    """Map float32 RGB pixels in [0, 255] to what an architecture expects."""
    import tensorflow as tf

    if mode == "raw":
        return images
    if mode == "unit":
        return images / 255.0
    if mode == "vggface":
        return images[..., ::-1] - tf.constant(VGGFACE_MEAN_BGR, dtype=images.dtype)
    if mode == "densenet":
        from keras.applications import densenet

        return densenet.preprocess_input(images)
    raise ValueError(f"unknown preprocessing {mode!r}; choose from {PREPROCESSING}")


def decode_and_resize(path, image_size: int):
    """Read one file (JPEG/PNG/BMP/GIF) as float32 RGB in [0, 255], resized to a square."""
    import tensorflow as tf

    return decode_bytes_and_resize(tf.io.read_file(path), image_size)


def decode_bytes_and_resize(data, image_size: int):
    """Decode encoded image bytes as float32 RGB in [0, 255], resized to a square."""
    import tensorflow as tf

    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    shape = tf.shape(image)
    size = (image_size, image_size)
    same = tf.logical_and(shape[0] == image_size, shape[1] == image_size)
    shrink = tf.logical_or(shape[0] > image_size, shape[1] > image_size)
    # Antialiasing only matters when shrinking; skip the (slower) filter otherwise.
    image = tf.case(
        [
            (same, lambda: tf.cast(image, tf.float32)),
            (shrink, lambda: tf.image.resize(image, size, method="bilinear", antialias=True)),
        ],
        default=lambda: tf.image.resize(image, size, method="bilinear"),
    )
    return tf.ensure_shape(image, (image_size, image_size, 3))


def _decoded(rows: pd.DataFrame, plan: InputPlan, image_size: int, seed: int):
    """(pixels, label) of ``rows``, decoded, cached or streamed and shuffled as ``plan`` says."""
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    labels = rows["label"].map(LABELS).to_numpy(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((rows["file"].to_numpy(), labels))
    if plan.cache:
        dataset = dataset.map(lambda p, y: (decode_and_resize(p, image_size), y), num_parallel_calls=autotune)
        dataset = dataset.cache()
        if plan.shuffle_buffer:
            dataset = dataset.shuffle(plan.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return dataset
    if plan.shuffle_files:  # file names only: cheap whatever the split's size
        dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(lambda p, y: (tf.io.read_file(p), y), num_parallel_calls=autotune)
    if plan.shuffle_buffer:  # a bounded buffer of encoded files
        dataset = dataset.shuffle(plan.shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)
    return dataset.map(lambda data, y: (decode_bytes_and_resize(data, image_size), y), num_parallel_calls=autotune)


def _paired(rows: pd.DataFrame, plan: InputPlan, image_size: int, augment: Augment, seed: int):
    """The ``paired`` recipe: a real image and a fake one, each drawn from its shuffled class, go
    through the *same* upload degradation (or both stay clean), then follow each other in the
    stream; an epoch holds as many pairs as the smaller class has images."""
    import tensorflow as tf

    real, fake = (_decoded(rows[rows["label"] == name], plan, image_size, seed + i) for i, name in enumerate(LABELS))
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def degrade_pair(a, b, s):
        pair = (augment_image(a[0], s, augment, image_size), augment_image(b[0], s, augment, image_size))
        return tf.data.Dataset.from_tensor_slices((tf.stack(pair), tf.stack([a[1], b[1]])))

    return tf.data.Dataset.zip((real, fake, seeds)).flat_map(degrade_pair)


def make_dataset(
    root: Path | str,
    split: str,
    image_size: int,
    batch_size: int = 32,
    *,
    preprocessing: str = "raw",
    augment: Augment | None = None,
    shuffle: bool = False,
    seed: int = 42,
    num_samples: int = 0,
    cache: bool | None = None,
    cache_budget_mb: float = CACHE_BUDGET_MB,
    manifest: pd.DataFrame | None = None,
):
    """A batched ``tf.data.Dataset`` of ``(images, labels)`` for one split.

    Args:
        root: prepared dataset folder (with ``manifest.csv``).
        split: ``train``, ``valid``, ``test`` or a view such as ``test_ciplab``.
        image_size: images are resized to ``image_size x image_size``.
        preprocessing: one of ``PREPROCESSING`` (applied after augmentation).
        augment: training-time augmentation, or None.
        shuffle: reshuffle every epoch (seeded).
        num_samples: cap on images, balanced over labels (0 = all).
        cache: None decides by ``cache_budget_mb`` (:func:`plan_input`); True / False force it.
        manifest: use these rows instead of reading the split from ``root``.

    The :class:`InputPlan` used is attached as the dataset's ``input_plan`` attribute.
    """
    import tensorflow as tf

    if preprocessing not in PREPROCESSING:
        raise ValueError(f"unknown preprocessing {preprocessing!r}; choose from {PREPROCESSING}")
    rows = manifest if manifest is not None else load_manifest(root, split)
    rows = sample(rows, num_samples, seed)
    plan = plan_input(len(rows), image_size, shuffle=shuffle, cache_budget_mb=cache_budget_mb, cache=cache)
    autotune = tf.data.AUTOTUNE
    if augment is not None and augment.recipe == "paired":
        dataset = _paired(rows, plan, image_size, augment, seed)
    else:
        dataset = _decoded(rows, plan, image_size, seed)
        if augment is not None:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            dataset = tf.data.Dataset.zip((dataset, seeds)).map(
                lambda item, s: (augment_image(item[0], s, augment, image_size), item[1]),
                num_parallel_calls=autotune,
            )
    dataset = dataset.batch(batch_size)
    if preprocessing != "raw":
        dataset = dataset.map(lambda x, y: (preprocess(x, preprocessing), y), num_parallel_calls=autotune)
    dataset = dataset.prefetch(autotune)
    dataset.input_plan = plan
    return dataset
