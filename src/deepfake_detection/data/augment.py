"""Training-time augmentation: the degradations an upload goes through (JPEG re-compression,
re-scaling, blur, cropping), drawn at random and applied in the tf.data graph to decoded float32
pixels in [0, 255], each step ending where a file written after it would (8-bit pixels) and
enlarged back as :func:`deepfake_detection.data.pipeline.decode_bytes_and_resize` enlarges a
smaller file, so that training sees what ``evaluate`` scores (``tests/test_pipeline.py`` checks
each step against :mod:`deepfake_detection.degradations`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Augment:
    """Random training-time augmentation, as one number ``strength`` in [0, 1] (0 = flips only) so
    that a tuner can search it.

    Three recipes:

    * ``upload`` (the default): with probability ``strength`` an image goes through *one*
      degradation of the kind an upload suffers, drawn at random: JPEG re-compression at quality
      40..95, a down-scale to 0.4..0.9 of its side (antialiased, rounded to 8-bit pixels as a
      saved file is, then up-scaled back as the model's decoding does), a Gaussian blur of
      0.3..1.5 px, or a crop of 0.6..0.95 of each side at a random place, enlarged back;
      otherwise it stays clean. Both classes alike, so the degradation says nothing of the
      label. Up-scaling and noise are left out on purpose: they are the standard suite's
      conditions that training never sees.
    * ``paired``: the same, but a real image and a fake one go through the same draw (both
      degraded the same way or both clean), one after the other in the batch, as in paired
      training (seeded by the pair, flips apart).
    * ``chain`` (the earlier one): blur, a rescale to ``1 - strength / 2``..1 and JPEG at
      ``95 - 60 * strength``..95, each applied with ``probability``, one after the other.
    """

    strength: float = 0.5
    flip: bool = True
    probability: float = 0.5  # chain only: of each step
    recipe: str = "upload"  # upload | paired | chain

    @property
    def jpeg_quality(self) -> tuple[int, int]:
        if self.recipe != "chain":
            return UPLOAD_JPEG_QUALITY
        return int(round(95 - 60 * self.strength)), 95

    @property
    def max_blur_sigma(self) -> float:
        return 1.5 * self.strength

    @property
    def min_scale(self) -> float:
        return 1.0 - 0.5 * self.strength


UPLOAD_JPEG_QUALITY = (40, 95)
UPLOAD_SCALE = (0.4, 0.9)
UPLOAD_BLUR_SIGMA = (0.3, 1.5)
UPLOAD_CROP = (0.6, 0.95)  # share of each side kept


def _gaussian_blur(image, sigma):
    import tensorflow as tf

    radius = 3
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(x**2) / (2.0 * tf.maximum(sigma, 1e-3) ** 2))
    kernel = kernel / tf.reduce_sum(kernel)
    kernel_2d = kernel[:, None] * kernel[None, :]
    kernel_4d = tf.tile(kernel_2d[:, :, None, None], [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel_4d, [1, 1, 1, 1], "VALID")[0]


def _as_saved(image):
    """Pixels rounded and clipped to 8 bits, as a file written after a degradation holds them."""
    import tensorflow as tf

    return tf.clip_by_value(tf.round(image), 0.0, 255.0)


def _jpeg_again(image, quality: tuple[int, int], seed):
    import tensorflow as tf

    low, high = quality
    pixels = tf.cast(_as_saved(image), tf.uint8)
    return tf.cast(tf.image.stateless_random_jpeg_quality(pixels, low, high + 1, seed), tf.float32)


def _scaled_down_and_back(image, factor, image_size: int):
    """``image`` shrunk to ``factor`` of its side (antialiased), saved as 8-bit pixels and enlarged
    back to ``image_size`` as :func:`decode_bytes_and_resize` enlarges a small file."""
    import tensorflow as tf

    small = tf.maximum(1, tf.cast(tf.round(factor * image_size), tf.int32))
    image = tf.image.resize(image, tf.stack([small, small]), method="bilinear", antialias=True)
    return tf.image.resize(_as_saved(image), (image_size, image_size), method="bilinear")


def _cropped_and_enlarged(image, share, place, image_size: int):
    """A square of ``share`` of ``image``'s side, its corner at ``place`` (two numbers in [0, 1]:
    where in the room left it lies, so any pixel phase), enlarged back to ``image_size`` as
    :func:`decode_bytes_and_resize` enlarges a smaller file."""
    import tensorflow as tf

    side = tf.maximum(1, tf.cast(tf.round(share * image_size), tf.int32))
    corner = tf.cast(tf.round(place * tf.cast(image_size - side, tf.float32)), tf.int32)
    crop = tf.image.crop_to_bounding_box(image, corner[0], corner[1], side, side)
    return tf.image.resize(crop, (image_size, image_size), method="bilinear")


def _upload_degradation(image, seeds, augment: Augment, image_size: int):
    """With probability ``augment.strength``, one of JPEG, a down-scale or a blur (see :class:`Augment`)."""
    import tensorflow as tf

    def degraded(x):
        factor = tf.random.stateless_uniform([], seeds[4], *UPLOAD_SCALE)
        sigma = tf.random.stateless_uniform([], seeds[5], *UPLOAD_BLUR_SIGMA)
        share = tf.random.stateless_uniform([], seeds[7], *UPLOAD_CROP)
        return tf.switch_case(
            tf.random.stateless_uniform([], seeds[3], 0, 4, dtype=tf.int32),
            [
                lambda: _jpeg_again(x, UPLOAD_JPEG_QUALITY, seeds[6]),
                lambda: _scaled_down_and_back(x, factor, image_size),
                lambda: _as_saved(_gaussian_blur(x, sigma)),
                lambda: _cropped_and_enlarged(x, share, tf.random.stateless_uniform([2], seeds[1]), image_size),
            ],
        )

    apply = tf.random.stateless_uniform([], seeds[2]) < augment.strength
    return tf.cond(apply, lambda: degraded(image), lambda: image)


def augment_image(image, seed, augment: Augment, image_size: int):
    """One random augmentation of a float32 [0, 255] image, keyed by a stateless ``seed`` pair."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, num=8)

    def maybe(index, function, value):
        apply = tf.random.stateless_uniform([], seeds[index]) < augment.probability
        return tf.cond(apply, lambda: function(value), lambda: value)

    if augment.flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    if augment.strength <= 0:
        return image
    if augment.recipe in ("upload", "paired"):
        return tf.ensure_shape(_upload_degradation(image, seeds, augment, image_size), (image_size, image_size, 3))
    sigma = tf.random.stateless_uniform([], seeds[1], 0.2, 0.2 + augment.max_blur_sigma)
    image = maybe(2, lambda x: _gaussian_blur(x, sigma), image)
    scale = tf.random.stateless_uniform([], seeds[3], augment.min_scale, 1.0)
    small = tf.cast(tf.round(scale * image_size), tf.int32)

    def rescale(x):  # in floats throughout: the chain recipe never rounds to 8 bits between steps
        x = tf.image.resize(x, tf.stack([small, small]), method="bilinear", antialias=True)
        return tf.image.resize(x, (image_size, image_size), method="bilinear")

    image = maybe(4, rescale, image)
    image = maybe(6, lambda x: _jpeg_again(x, augment.jpeg_quality, seeds[5]), image)
    return tf.ensure_shape(image, (image_size, image_size, 3))
