"""Settings and their defaults, shared by the CLI and ``MLproject`` (a test checks they agree)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DATA = "data/combined-real-vs-fake"


@dataclass(frozen=True)
class PrepareSettings:
    source: str = "bench"  # "bench" or "kaggle"
    output: str = DEFAULT_DATA
    kaggle_140k: str = ""  # folder or .zip of the 140k real and fake faces download
    ciplab: str = ""  # folder or .zip of the ciplab real and fake face detection download
    image_size: int = 64  # bench only
    num_images: int = 500  # bench only, per class
    difficulty: float = 0.5  # bench only, 0 = clean generator output
    seed: int = 42
    split: str = "0.7,0.15,0.15"  # bench train/valid/test fractions
    ciplab_split: str = "0.7,0.15,0.15"  # ciplab train/valid/test fractions
    generator_steps: int = 150  # bench only: training steps of each generator
    link_mode: str = "auto"  # kaggle folders: auto (hardlink, else symlink, else copy) | hardlink | symlink | copy
    overwrite: bool = False
