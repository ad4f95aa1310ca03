"""Offline benchmark builder: real photo crops vs. the same kind of crops re-synthesised by
small generator networks with GAN-style up-sampling.

In the spirit of the AutoGAN simulator (Zhang, Karaman and Chang, 2019): instead of a full
GAN, an encoder-decoder is trained briefly to reproduce real crops; its decoder's up-sampling
leaves the same kind of spectral artefacts a GAN generator does. Two decoder families are
built so cross-generator generalisation can be measured:

* ``transpose``: strided transposed convolutions (checkerboard artefacts),
* ``upsample``: nearest-neighbour up-sampling followed by convolutions.

Content is matched between classes (both come from crops of the same photographs, drawn the
same way) and each fake's colour histogram is matched to its source crop, so colour statistics
do not give the answer away. Both classes then get the same random post-processing (blur,
down/up-scaling, JPEG re-compression), whose strength is set by ``difficulty``: that is what
real photos in the wild go through, and it hides part of the generator's fingerprint.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from deepfake_detection.data.photos import Photo, load_bundled_photos, random_crops
from deepfake_detection.errors import SettingsError

GENERATOR_FAMILIES = ("transpose", "upsample")


@dataclass(frozen=True)
class BenchImage:
    """One encoded image of the benchmark, ready to be written to disk."""

    label: str  # "real" or "fake"
    data: bytes
    extension: str  # ".png" or ".jpg"
    photo: str  # the bundled photograph the crop came from
    generator: str  # generator family for fakes, "" for real images


def build_generator(family: str, size: int, width: int = 16):
    """A small encoder-decoder whose decoder up-samples the way GAN generators do."""
    import keras
    from keras import layers

    if family not in GENERATOR_FAMILIES:
        raise SettingsError(f"unknown generator family {family!r}; choose from {GENERATOR_FAMILIES}")
    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    skip = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu")(skip)
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    for filters, merge in ((width, True), (width, False)):
        if family == "transpose":
            x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu")(x)
        else:
            x = layers.UpSampling2D(2, interpolation="nearest")(x)
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        if merge:
            x = layers.Concatenate()([x, skip])
    x = layers.Conv2D(3, 3, padding="same", activation="tanh")(x)
    outputs = layers.Rescaling(127.5, offset=127.5)(x)
    return keras.Model(inputs, outputs, name=f"generator_{family}")


def train_generator(model, crops: np.ndarray, *, steps: int, seed: int, batch_size: int = 32) -> None:
    """Train ``model`` briefly to reconstruct ``crops`` (L1 loss)."""
    import keras

    rng = np.random.default_rng(seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="mae")
    for _ in range(steps):
        batch = crops[rng.integers(0, len(crops), size=min(batch_size, len(crops)))]
        model.train_on_batch(batch.astype("float32"), batch.astype("float32"))


def match_colours(fake: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Give ``fake`` the per-channel colour histogram of the crop it was made from."""
    from skimage.exposure import match_histograms

    matched = match_histograms(fake, source, channel_axis=-1)
    return np.clip(np.rint(matched), 0, 255).astype(np.uint8)


def post_process(image: np.ndarray, difficulty: float, rng: np.random.Generator) -> tuple[bytes, str]:
    """The same random "life on the internet" applied to both classes, then encoding.

    ``difficulty=0`` writes the clean image as PNG. Above it, each image is blurred,
    down- and up-scaled with some probability, and saved as JPEG at a random quality;
    the strength of each step grows with ``difficulty`` (1 is strong).
    """
    picture = Image.fromarray(image)
    if difficulty <= 0:
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return buffer.getvalue(), ".png"
    size = picture.size
    if rng.random() < 0.5:
        picture = picture.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.2, 0.2 + difficulty)))
    if rng.random() < 0.5:
        scale = rng.uniform(1.0 - 0.5 * difficulty, 1.0)
        small = (max(8, int(round(size[0] * scale))), max(8, int(round(size[1] * scale))))
        picture = picture.resize(small, Image.Resampling.BILINEAR).resize(size, Image.Resampling.BILINEAR)
    low = int(round(95 - 60 * min(difficulty, 1.0)))
    quality = int(rng.integers(low, 96))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue(), ".jpg"


def check_settings(*, image_size: int, num_images: int, difficulty: float) -> None:
    """Refuse a bench the generators cannot build, before anything is made."""
    if image_size < 16 or image_size % 4:
        raise SettingsError(f"bench image size must be a multiple of 4 and at least 16, got {image_size}")
    if num_images < 2:
        raise SettingsError(f"bench num_images must be at least 2 per class, got {num_images}")
    if not 0 <= difficulty <= 1:
        raise SettingsError(f"bench difficulty must be between 0 and 1, got {difficulty}")


def generate(
    *,
    image_size: int = 64,
    num_images: int = 500,
    difficulty: float = 0.5,
    seed: int = 42,
    generator_steps: int = 300,
    photos: list[Photo] | None = None,
    progress: bool = True,
) -> Iterator[BenchImage]:
    """Yield ``num_images`` real and ``num_images`` fake images, deterministic for ``seed``.

    Fakes are split evenly between the generator families. Real and fake images are
    interleaved in a seeded random order.
    """
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    check_settings(image_size=image_size, num_images=num_images, difficulty=difficulty)
    photos = photos if photos is not None else load_bundled_photos()
    rng = np.random.default_rng(seed)
    training_crops, _ = random_crops(photos, max(256, min(2048, num_images)), size=image_size, rng=rng)
    # Both classes draw their crops from the same sequence of photographs: same subjects.
    subjects = rng.integers(len(photos), size=num_images)
    real_crops, real_names = random_crops(photos, num_images, size=image_size, rng=rng, photo_indices=subjects)
    fake_sources, fake_names = random_crops(photos, num_images, size=image_size, rng=rng, photo_indices=subjects)
    families = [GENERATOR_FAMILIES[i % len(GENERATOR_FAMILIES)] for i in range(num_images)]

    fakes = np.empty_like(fake_sources)
    # Same seed, same bytes: deterministic kernels (this stays on for the process).
    tf.config.experimental.enable_op_determinism()
    for index, family in enumerate(GENERATOR_FAMILIES):
        keras.utils.set_random_seed(seed + index)
        generator = build_generator(family, image_size)
        train_generator(generator, training_crops, steps=generator_steps, seed=seed + index)
        chosen = [i for i, f in enumerate(families) if f == family]
        output = generator.predict(fake_sources[chosen].astype("float32"), batch_size=64, verbose=0)
        fakes[chosen] = np.clip(np.rint(output), 0, 255).astype(np.uint8)
        keras.backend.clear_session()

    items = [("real", i) for i in range(num_images)] + [("fake", i) for i in range(num_images)]
    order = rng.permutation(len(items))
    for position in tqdm(order, desc="bench images", unit="img", disable=not progress):
        label, i = items[position]
        if label == "real":
            pixels, photo, family = real_crops[i], real_names[i], ""
        else:
            pixels, photo, family = match_colours(fakes[i], fake_sources[i]), fake_names[i], families[i]
        data, extension = post_process(pixels, difficulty, rng)
        yield BenchImage(label, data, extension, photo, family)
