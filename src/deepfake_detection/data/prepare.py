"""``prepare``: sources → one dataset folder ``{train,valid,test}/{real,fake}`` with a manifest.

The folder is built in a hidden staging folder beside the output and renamed into place at
the end, so an interrupted or failed prepare never leaves a half-made dataset behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from deepfake_detection.data.images import BadImage, CheckedImage, check_image
from deepfake_detection.data.sources import LABELS, SPLITS, Entry, ciplab_entries, kaggle_140k_entries
from deepfake_detection.errors import DatasetError

MANIFEST = "manifest.csv"
REJECTED = "rejected.csv"
SUMMARY = "dataset.json"
MANIFEST_COLUMNS = (
    "path",
    "split",
    "label",
    "target",
    "source",
    "sha256",
    "width",
    "height",
    "level",
    "generator",
    "photo",
    "original",
)
CIPLAB_VIEW = "test_ciplab"
LINK_MODES = ("auto", "hardlink", "symlink", "copy")


@dataclass
class PrepareReport:
    """What a prepare did; also written to ``dataset.json``."""

    output: str
    source: str
    counts: dict[str, dict[str, int]]
    rejected: int
    duplicates_dropped: int
    cross_split_duplicates: int
    normalised: int
    linked: int
    digest: str
    seconds: float
    settings: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for s, c in self.counts.items() if s in SPLITS)


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


@dataclass
class _Checked:
    entry: Entry
    sha256: str
    image: CheckedImage | None
    reason: str


def _check(entry: Entry) -> _Checked:
    if not entry.is_image_name:
        return _Checked(entry, "", None, "not an image file extension")
    try:
        data = entry.read()
    except OSError as error:
        return _Checked(entry, "", None, f"cannot read: {error}")
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        image = check_image(data)
    except BadImage as error:
        return _Checked(entry, sha256, None, str(error))
    return _Checked(entry, sha256, image, "")  # bytes are read again when written


def check_entries(entries: list[Entry], progress: bool = True, workers: int | None = None) -> list[_Checked]:
    """Read, hash and fully decode every entry (in parallel threads; PIL releases the GIL)."""
    from tqdm import tqdm

    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        return list(
            tqdm(
                pool.map(_check, entries), total=len(entries), desc="checking images", unit="img", disable=not progress
            )
        )


def drop_duplicates(checked: list[_Checked]) -> tuple[list[_Checked], list[tuple[str, str]], int, int]:
    """Keep one copy of each identical file (train over valid over test, then first seen).

    The same bytes labelled both real and fake are all rejected: the label is unknowable.
    Returns the kept items, rejections, duplicates dropped, and how many of those crossed splits.
    """
    rank = {s: i for i, s in enumerate(SPLITS)}
    groups: dict[str, list[_Checked]] = defaultdict(list)
    for item in checked:
        groups[item.sha256].append(item)
    kept, rejected, dropped, crossing = [], [], 0, 0
    for item in checked:
        group = groups[item.sha256]
        if len(group) == 1:
            kept.append(item)
            continue
        if len({g.entry.label for g in group}) > 1:
            rejected.append(
                (item.entry.origin, f"identical bytes are labelled both real and fake ({item.sha256[:12]})")
            )
            continue
        first = min(group, key=lambda g: rank.get(g.entry.split, 9))
        if item is first:
            kept.append(item)
        else:
            dropped += 1
            crossing += item.entry.split != first.entry.split
            rejected.append((item.entry.origin, f"duplicate of {first.entry.origin} (sha256 {item.sha256[:12]})"))
    return kept, rejected, dropped, crossing


def _place(item: _Checked, target: Path, link_mode: str) -> bool:
    """Write one image into the staging folder; True if it was linked rather than written."""
    image = item.image
    assert image is not None
    if image.normalised is not None:
        target.write_bytes(image.normalised)
        return False
    source = item.entry.link_from
    if source is None:
        target.write_bytes(item.entry.read())
        return False
    if link_mode in ("auto", "hardlink"):
        try:
            os.link(source, target)
            return True
        except OSError:
            if link_mode == "hardlink":
                raise
    if link_mode in ("auto", "symlink"):
        try:
            target.symlink_to(Path(source).resolve())
            return True
        except OSError:
            if link_mode == "symlink":
                raise
    shutil.copyfile(source, target)
    return False


def _unique_name(entry: Entry, used: set[str], folder: str, index: int) -> str:
    stem, suffix = os.path.splitext(entry.name)
    if entry.source == "bench":
        stem = f"{index:06d}"
    base = f"{entry.source}_{stem}"
    name, n = f"{base}{suffix.lower()}", 1
    while f"{folder}/{name}" in used:
        name, n = f"{base}_{n}{suffix.lower()}", n + 1
    used.add(f"{folder}/{name}")
    return name


def dataset_digest(rows: list[dict]) -> str:
    """A short content digest: same files, labels and splits → same digest."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: r["path"]):
        digest.update(f"{row['path']}\t{row['split']}\t{row['label']}\t{row['sha256']}\n".encode())
    return digest.hexdigest()[:16]


def _clean_stale_staging(output: Path) -> None:
    for stale in output.parent.glob(f".{output.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            pass


def write_dataset(
    checked: list[_Checked],
    output: Path,
    *,
    source: str,
    overwrite: bool,
    link_mode: str = "auto",
    extra_rejected: list[tuple[str, str]] | None = None,
    settings: dict | None = None,
    progress: bool = True,
    started: float | None = None,
    ciplab_view: bool = False,
) -> PrepareReport:
    """Deduplicate, check completeness, and write the dataset folder atomically."""
    from tqdm import tqdm

    started = started if started is not None else time.perf_counter()
    rejected = list(extra_rejected or [])
    rejected += [(c.entry.origin, c.reason) for c in checked if c.reason]
    good = [c for c in checked if not c.reason]
    kept, duplicate_rejections, dropped, crossing = drop_duplicates(good)
    rejected += duplicate_rejections

    counts = Counter((c.entry.split, c.entry.label) for c in kept)
    empty = [f"{split}/{label}" for split in SPLITS for label in LABELS if counts[(split, label)] == 0]
    if empty:
        raise DatasetError(
            f"no usable images left for {', '.join(empty)} ({len(rejected)} file(s) rejected); "
            "nothing was written. Check the source folders and the split fractions."
        )

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_staging(output)
    staging = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for split in SPLITS:
            for label in LABELS:
                (staging / split / label).mkdir(parents=True)
        rows, used, linked, normalised = [], set(), 0, 0
        for index, item in enumerate(tqdm(kept, desc="writing dataset", unit="img", disable=not progress)):
            entry, image = item.entry, item.image
            assert image is not None
            folder = f"{entry.split}/{entry.label}"
            name = _unique_name(entry, used, folder, index)
            if image.normalised is not None:
                name = os.path.splitext(name)[0] + ".png"
                normalised += 1
            linked += _place(item, staging / folder / name, link_mode)
            sha256 = item.sha256 if image.normalised is None else hashlib.sha256(image.normalised).hexdigest()
            rows.append(
                {
                    "path": f"{folder}/{name}",
                    "split": entry.split,
                    "label": entry.label,
                    "target": LABELS[entry.label],
                    "source": entry.source,
                    "sha256": sha256,
                    "width": image.width,
                    "height": image.height,
                    "level": entry.level,
                    "generator": entry.generator,
                    "photo": entry.photo,
                    "original": entry.origin if entry.source != "bench" else "",
                }
            )
        digest = dataset_digest(rows)
        if ciplab_view:
            for row in [r for r in rows if r["source"] == "ciplab" and r["split"] == "test"]:
                view_path = f"{CIPLAB_VIEW}/{row['label']}/{row['path'].rsplit('/', 1)[1]}"
                (staging / view_path).parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(staging / row["path"], staging / view_path)
                except OSError:
                    shutil.copyfile(staging / row["path"], staging / view_path)
                rows.append({**row, "path": view_path, "split": CIPLAB_VIEW})

        with open(staging / MANIFEST, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        with open(staging / REJECTED, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("path", "reason"))
            writer.writerows(rejected)
        table: dict[str, dict[str, int]] = defaultdict(dict)
        for row in rows:
            table[row["split"]][row["label"]] = table[row["split"]].get(row["label"], 0) + 1
        report = PrepareReport(
            output=str(output),
            source=source,
            counts=dict(table),
            rejected=len(rejected),
            duplicates_dropped=dropped,
            cross_split_duplicates=crossing,
            normalised=normalised,
            linked=linked,
            digest=digest,
            seconds=0.0,
            settings=dict(settings or {}),
        )
        report.seconds = round(time.perf_counter() - started, 2)
        write_summary(staging, report)
        _move_into_place(staging, output, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def write_summary(root: Path, report: PrepareReport) -> None:
    summary = {
        "labels": {"real": 0, "fake": 1, "positive_class": "fake"},
        **report.__dict__,
    }
    (Path(root) / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def _move_into_place(staging: Path, output: Path, overwrite: bool) -> None:
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise DatasetError(f"{output} already exists; pass --overwrite to replace it")
        retired = output.parent / f".{output.name}.old-{os.getpid()}"
        os.replace(output, retired)
        os.replace(staging, output)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, output)


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
    from deepfake_detection.data import bench

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
        from deepfake_detection.data.checks import check_dataset

        report.checks = check_dataset(output)
        write_summary(output, report)
    return report
