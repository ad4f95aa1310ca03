"""Real photographs that ship inside installed dependencies, and random crops of them.

These are the *real* class of the offline benchmark: actual camera images bundled with
scikit-image, matplotlib and scikit-learn, so the benchmark needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# scikit-image photographs bundled in the wheel (no pooch download needed).
SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "stereo_motorcycle",
    "camera",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
    "clock",
)


MIN_CROP_STD = 4.0  # grey levels; flatter crops carry no content to tell real from fake
_MAX_TRIES = 20


@dataclass(frozen=True)
class Photo:
    name: str
    pixels: np.ndarray  # uint8, H x W x 3


def _as_rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3].astype(np.uint8))


def load_bundled_photos() -> list[Photo]:
    """Return every bundled real photograph that can be read offline, in a fixed order."""
    import skimage.data
    from matplotlib import cbook
    from sklearn.datasets import load_sample_images

    photos: list[Photo] = []
    for name in SKIMAGE_PHOTOS:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        try:
            pixels = loader()
        except Exception:  # a photo that needs a download in this scikit-image version
            continue
        if isinstance(pixels, tuple):  # stereo_motorcycle returns (left, right, disparity)
            pixels = pixels[0]
        photos.append(Photo(f"skimage:{name}", _as_rgb(pixels)))
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photos.append(Photo("matplotlib:grace_hopper", _as_rgb(np.asarray(Image.open(handle)))))
    sample = load_sample_images()
    for filename, pixels in zip(sample.filenames, sample.images):
        stem = filename.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        photos.append(Photo(f"sklearn:{stem}", _as_rgb(pixels)))
    if len(photos) < 5:
        raise RuntimeError(
            f"only {len(photos)} bundled photographs could be read; "
            "check that scikit-image, matplotlib and scikit-learn are installed"
        )
    return photos


def random_crops(
    photos: list[Photo],
    count: int,
    *,
    size: int,
    rng: np.random.Generator,
    photo_indices: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Square crops at random positions and scales, resized to ``size`` with antialiasing.

    Args:
        photo_indices: which photo each crop comes from (random if None); passing the same
            indices for two sets of crops gives both the same mix of subjects.

    Returns a ``count x size x size x 3`` uint8 array and the photo name of each crop.
    """
    if photo_indices is None:
        photo_indices = rng.integers(len(photos), size=count)
    crops = np.empty((count, size, size, 3), dtype=np.uint8)
    names: list[str] = []
    for i in range(count):
        photo = photos[int(photo_indices[i])]
        height, width = photo.pixels.shape[:2]
        largest = min(height, width)
        smallest = min(largest, max(size // 2, 16))
        for _ in range(_MAX_TRIES):  # skip featureless crops (flat sky, black background)
            side = int(round(np.exp(rng.uniform(np.log(smallest), np.log(largest)))))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            patch = Image.fromarray(photo.pixels[top : top + side, left : left + side])
            if side != size:
                patch = patch.resize((size, size), Image.Resampling.LANCZOS)
            array = np.asarray(patch)
            if array.std() >= MIN_CROP_STD:
                break
        if rng.random() < 0.5:
            array = array[:, ::-1]
        crops[i] = array
        names.append(photo.name)
    return crops, names
