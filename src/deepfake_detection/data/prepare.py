"""``prepare``: sources (the Kaggle downloads, or the offline benchmark) → one dataset folder
``{train,valid,test}/{real,fake}`` with a manifest, written by :mod:`deepfake_detection.data.writer`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepfake_detection.data import bench
from deepfake_detection.data.sources import Entry, ciplab_entries, kaggle_140k_entries
from deepfake_detection.data.writer import PrepareReport, check_entries, write_dataset, write_summary
from deepfake_detection.errors import DatasetError

LINK_MODES = ("auto", "hardlink", "symlink", "copy")


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` → train/valid/test fractions that sum to 1."""
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise DatasetError(f"split fractions must be three numbers like 0.7,0.15,0.15, got {text!r}") from None
    if len(values) != 3 or any(v < 0 for v in values) or abs(sum(values) - 1) > 1e-6 or values[0] == 0:
        raise DatasetError(f"split fractions must be three non-negative numbers summing to 1 (train > 0), got {text!r}")
    return values  # type: ignore[return-value]


def assign_splits(entries: list[Entry], fractions: tuple[float, float, float], seed: int, strata) -> list[Entry]:
    """Seeded split, stratified by ``strata(entry)``; the same inputs give the same split."""
    groups: dict[tuple, list[Entry]] = defaultdict(list)
    for entry in entries:
        groups[strata(entry)].append(entry)
    rng = np.random.default_rng(seed)
    result = []
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda e: (e.name, e.origin))
        order = rng.permutation(len(members))
        n_valid, n_test = (_share(f, len(members)) for f in fractions[1:])
        n_train = len(members) - n_valid - n_test
        for rank, index in enumerate(order):
            split = "train" if rank < n_train else "valid" if rank < n_train + n_valid else "test"
            result.append(replace(members[index], split=split))
    return result


def _share(fraction: float, size: int) -> int:
    """Images of a stratum that go to a held-out split: at least one when there are enough."""
    count = int(round(fraction * size))
    return max(count, 1) if fraction > 0 and size >= 3 else count


def _refuse_existing(output: Path, overwrite: bool) -> None:
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise DatasetError(f"{output} already exists; pass --overwrite to replace it")


def prepare_kaggle(
    output: Path,
    *,
    kaggle_140k: Path | None = None,
    ciplab: Path | None = None,
    ciplab_split: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 42,
    overwrite: bool = False,
    link_mode: str = "auto",
    progress: bool = True,
) -> PrepareReport:
    """Combine the 140k and/or ciplab downloads (folders or zips) into one dataset folder."""
    started = time.perf_counter()
    output = Path(output)
    if kaggle_140k is None and ciplab is None:
        raise DatasetError("prepare --source kaggle needs --kaggle-140k and/or --ciplab (a folder or .zip)")
    if link_mode not in LINK_MODES:
        raise DatasetError(f"link mode must be one of {LINK_MODES}, got {link_mode!r}")
    _refuse_existing(output, overwrite)
    entries: list[Entry] = []
    if kaggle_140k is not None:
        entries += kaggle_140k_entries(Path(kaggle_140k))
    if ciplab is not None:
        found = ciplab_entries(Path(ciplab))
        entries += assign_splits(found, ciplab_split, seed, strata=lambda e: (e.label, e.level))
    checked = check_entries(entries, progress=progress)
    settings = {
        "kaggle_140k": str(kaggle_140k or ""),
        "ciplab": str(ciplab or ""),
        "ciplab_split": ",".join(str(f) for f in ciplab_split),
        "seed": seed,
        "link_mode": link_mode,
    }
    return write_dataset(
        checked,
        output,
        source="kaggle",
        overwrite=overwrite,
        link_mode=link_mode,
        settings=settings,
        progress=progress,
        started=started,
        ciplab_view=ciplab is not None,
    )


def prepare_bench(
    output: Path,
    *,
    image_size: int = 64,
    num_images: int = 500,
    difficulty: float = 0.5,
    seed: int = 42,
    split: tuple[float, float, float] = (0.7, 0.15, 0.15),
    generator_steps: int = 150,
    overwrite: bool = False,
    progress: bool = True,
    check: bool = True,
) -> PrepareReport:
    """Build the offline benchmark (real crops vs generator re-syntheses) as a dataset folder."""
    started = time.perf_counter()
    output = Path(output)
    _refuse_existing(output, overwrite)
    entries = []
    for index, item in enumerate(
        bench.generate(
            image_size=image_size,
            num_images=num_images,
            difficulty=difficulty,
            seed=seed,
            generator_steps=generator_steps,
            progress=progress,
        )
    ):
        entries.append(
            Entry(
                source="bench",
                split="",
                label=item.label,
                name=f"{index:06d}{item.extension}",
                origin=f"bench#{index}",
                read=(lambda data=item.data: data),
                generator=item.generator,
                photo=item.photo,
            )
        )
    entries = assign_splits(entries, split, seed, strata=lambda e: (e.label, e.generator))
    checked = check_entries(entries, progress=False)
    settings = {
        "image_size": image_size,
        "num_images": num_images,
        "difficulty": difficulty,
        "seed": seed,
        "split": ",".join(str(f) for f in split),
        "generator_steps": generator_steps,
    }
    report = write_dataset(
        checked, output, source="bench", overwrite=overwrite, settings=settings, progress=progress, started=started
    )
    if check:
        from deepfake_detection.data.checks import check_dataset  # scikit-learn: only the bench is checked

        report.checks = check_dataset(output)
        write_summary(output, report)
    return report
