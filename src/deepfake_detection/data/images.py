"""Checking one encoded image: is it a complete, decodable picture, and can the input
pipeline read it as it is, or must it be normalised to 8-bit RGB first?

Every image is checked once, in ``prepare``; later steps trust the manifest.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

# Images larger than this are refused as likely decompression bombs (a 4k photo is ~9 MP).
MAX_PIXELS = 64_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# What tf.io.decode_image reads exactly as PIL does; anything else is rewritten as PNG.
_PASS_THROUGH = {("JPEG", "RGB"), ("JPEG", "L"), ("PNG", "RGB"), ("PNG", "L")}
_EXIF_ORIENTATION = 0x0112


class BadImage(Exception):
    """The bytes are not a usable image; the message says why."""


@dataclass(frozen=True)
class CheckedImage:
    width: int
    height: int
    format: str
    # None if the original bytes can be used as they are, else PNG bytes of the
    # normalised 8-bit RGB image (EXIF rotation applied).
    normalised: bytes | None
    note: str  # why it was normalised, "" otherwise


def _to_8bit_rgb(picture: Image.Image) -> Image.Image:
    if picture.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(picture, dtype=np.float64)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(array / top * 255 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if picture.mode == "F":
        array = np.asarray(picture, dtype=np.float64)
        return Image.fromarray(np.clip(array * 255 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if picture.mode == "P" and "transparency" in picture.info:
        picture = picture.convert("RGBA")
    return picture.convert("RGB")


def check_image(data: bytes, max_pixels: int = MAX_PIXELS) -> CheckedImage:
    """Decode ``data`` fully and decide whether it needs normalising.

    Raises:
        BadImage: empty, not an image, truncated or corrupt, or too large.
    """
    if not data:
        raise BadImage("empty file (0 bytes)")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
            width, height = picture.size
            if width * height > max_pixels:
                raise BadImage(
                    f"{width}x{height} pixels is over the limit of {max_pixels:,} (possible decompression bomb)"
                )
            picture.load()
    except BadImage:
        raise
    except Image.DecompressionBombError as error:
        raise BadImage(f"refused as a decompression bomb: {error}") from None
    except Image.DecompressionBombWarning as error:
        raise BadImage(f"refused as a decompression bomb: {error}") from None
    except Image.UnidentifiedImageError:
        raise BadImage("not an image (no known image format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise BadImage(f"corrupt or truncated image: {error}") from None
    if width < 1 or height < 1:
        raise BadImage(f"image has no pixels ({width}x{height})")

    image_format = picture.format or "unknown"
    reasons = []
    orientation = picture.getexif().get(_EXIF_ORIENTATION, 1)
    if orientation not in (1, None):
        reasons.append(f"EXIF orientation {orientation}")
    if (image_format, picture.mode) not in _PASS_THROUGH:
        reasons.append(f"{image_format} {picture.mode}")
    if getattr(picture, "n_frames", 1) > 1:
        reasons.append("animated (first frame kept)")
    if not reasons:
        return CheckedImage(width, height, image_format, None, "")

    picture.seek(0)
    upright = ImageOps.exif_transpose(picture)
    rgb = _to_8bit_rgb(upright)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    return CheckedImage(rgb.width, rgb.height, image_format, buffer.getvalue(), "normalised: " + ", ".join(reasons))
