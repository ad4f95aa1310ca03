"""The degradations an image goes through on its way to a user: re-compression, re-sizing, blur,
sensor-like noise and cropping, and the named suites of them that ``evaluate`` and ``compare``
score a detector under.

Each degradation is a pure function of a decoded picture (and, for noise, a seed): the same input
gives the same output bytes. :func:`degrade` applies one to an image *file* at its own
resolution, identically whatever the file's class, and encodes the result as an upload would:
JPEG for the JPEG steps, lossless PNG for the others (so that only the named degradation acts);
the model then decodes and resizes it as usual.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from deepfake_detection.errors import SettingsError


def jpeg(picture: Image.Image, quality: int) -> bytes:
    """``picture`` encoded as JPEG at ``quality`` (Pillow's encoder, 4:2:0 chroma subsampling)."""
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def rescale(picture: Image.Image, factor: float) -> Image.Image:
    """``picture`` resized by ``factor`` (each side rounded, at least 1 px), bilinear with
    Pillow's area-aware support (anti-aliased when shrinking), as image sites resize uploads."""
    size = (max(1, round(picture.width * factor)), max(1, round(picture.height * factor)))
    return picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)


def blur(picture: Image.Image, sigma: float) -> Image.Image:
    """``picture`` under a Gaussian blur of standard deviation ``sigma`` pixels (Pillow's
    ``GaussianBlur``, whose radius is the standard deviation)."""
    return picture.filter(ImageFilter.GaussianBlur(sigma))


def noise(picture: Image.Image, sigma: float, seed: int) -> Image.Image:
    """``picture`` plus independent Gaussian noise of ``sigma`` grey levels (of 255) on every
    channel of every pixel, rounded and clipped to 0..255; ``seed`` fixes the noise."""
    pixels = np.asarray(picture.convert("RGB"), dtype=np.float64)
    noisy = pixels + np.random.default_rng(seed).normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def centre_crop(picture: Image.Image, share: float) -> Image.Image:
    """The centre ``share`` of each side of ``picture`` (at least 1 px), not resized."""
    width, height = max(1, round(picture.width * share)), max(1, round(picture.height * share))
    left, top = (picture.width - width) // 2, (picture.height - height) // 2
    return picture.crop((left, top, left + width, top + height))


@dataclass(frozen=True)
class Degradation:
    """One named degradation: its family and its parameter there (for a severity plot), and
    what it does to a decoded picture (``seed`` is only used by the random ones)."""

    name: str
    family: str  # jpeg | downscale | upscale | blur | noise | crop
    parameter: float  # quality, factor, sigma or share kept
    apply: Callable[[Image.Image, int], Image.Image | bytes]


def _png(picture: Image.Image) -> bytes:
    """Lossless, at zlib's fastest level: the same pixels as any level, a third of the time."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _jpeg(q: int) -> Degradation:
    return Degradation(f"jpeg_q{q}", "jpeg", q, lambda picture, seed: jpeg(picture, q))


def _scale(factor: float) -> Degradation:
    family = "downscale" if factor < 1 else "upscale"
    return Degradation(f"{family}_{factor:g}x", family, factor, lambda picture, seed: rescale(picture, factor))


def _blur(sigma: float) -> Degradation:
    return Degradation(f"blur_sigma{sigma:g}", "blur", sigma, lambda picture, seed: blur(picture, sigma))


def _noise(sigma: float) -> Degradation:
    return Degradation(f"noise_sigma{sigma:g}", "noise", sigma, lambda picture, seed: noise(picture, sigma, seed))


def _crop(share: float) -> Degradation:
    return Degradation(f"crop_{share:g}", "crop", share, lambda picture, seed: centre_crop(picture, share))


CLEAN = "none"
# Where each family's clean point lies on its parameter's axis (AUC against severity).
CLEAN_PARAMETER = {"jpeg": 100, "downscale": 1.0, "upscale": 1.0, "blur": 0.0, "noise": 0.0, "crop": 1.0}

STANDARD = (
    _jpeg(90),
    _jpeg(75),
    _jpeg(50),
    _scale(0.75),
    _scale(0.5),
    _scale(1.5),
    _blur(0.5),
    _blur(1.0),
    _noise(2.0),
    _noise(5.0),
    _crop(0.8),
)
SUITES: dict[str, tuple[Degradation, ...]] = {"standard": STANDARD, CLEAN: ()}
BY_NAME = {d.name: d for d in STANDARD}


def suite(text: str) -> tuple[Degradation, ...]:
    """The degradations ``text`` names: a suite (``standard``, ``none`` for clean only) or a comma
    list of degradation names (``jpeg_q50,downscale_0.5x``). The clean images are always scored
    too, beside them."""
    if text.strip() in SUITES:
        return SUITES[text.strip()]
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        raise SettingsError(
            f"unknown degradation {', '.join(unknown) or repr(text)}: name a suite ({', '.join(SUITES)}) "
            f"or some of {', '.join(BY_NAME)}"
        )
    return tuple(BY_NAME[n] for n in dict.fromkeys(names))


def degrade(data: bytes, degradation: Degradation | None, seed: int = 0) -> bytes:
    """The image file ``data`` after ``degradation`` (``None``: unchanged), encoded again. The
    random ones are seeded by ``seed`` and the file's own bytes, so a file gets the same noise
    whatever else is scored with it."""
    if degradation is None:
        return data
    with Image.open(io.BytesIO(data)) as picture:
        result = degradation.apply(picture.convert("RGB"), (seed * 1_000_003 + zlib.crc32(data)) % 2**32)
    return result if isinstance(result, bytes) else _png(result)
