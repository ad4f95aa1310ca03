"""The dataset folder a ``prepare`` writes: every image checked once, duplicates dropped, the
folders ``{train,valid,test}/{real,fake}``, ``manifest.csv``, ``rejected.csv`` and ``dataset.json``.

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
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from deepfake_detection.data.images import BadImage, CheckedImage, check_image
from deepfake_detection.data.sources import LABELS, SPLITS, Entry
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

    def lines(self) -> list[str]:
        """What the terminal shows of it: counts per split and label, rejections, checks."""
        lines = [f"dataset: {self.output}  (digest {self.digest}, labels: fake=1 positive, real=0)"]
        for split, by_label in sorted(self.counts.items()):
            lines.append(f"  {split:<12} real {by_label.get('real', 0):>7}   fake {by_label.get('fake', 0):>7}")
        lines.append(
            f"  rejected {self.rejected} (see rejected.csv), duplicates dropped {self.duplicates_dropped} "
            f"({self.cross_split_duplicates} across splits), normalised {self.normalised}, "
            f"linked {self.linked}, {self.seconds:.1f} s"
        )
        lines += [f"  shortcut check {name}: {value:.3f}" for name, value in self.checks.items()]
        return lines


@dataclass
class Checked:
    entry: Entry
    sha256: str
    image: CheckedImage | None
    reason: str


def _check(entry: Entry) -> Checked:
    if not entry.is_image_name:
        return Checked(entry, "", None, "not an image file extension")
    try:
        data = entry.read()
    except OSError as error:
        return Checked(entry, "", None, f"cannot read: {error}")
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        image = check_image(data)
    except BadImage as error:
        return Checked(entry, sha256, None, str(error))
    return Checked(entry, sha256, image, "")  # bytes are read again when written


def check_entries(entries: list[Entry], progress: bool = True, workers: int | None = None) -> list[Checked]:
    """Read, hash and fully decode every entry (in parallel threads; PIL releases the GIL)."""
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        return list(
            tqdm(
                pool.map(_check, entries), total=len(entries), desc="checking images", unit="img", disable=not progress
            )
        )


def drop_duplicates(checked: list[Checked]) -> tuple[list[Checked], list[tuple[str, str]], int, int]:
    """Keep one copy of each identical file (train over valid over test, then first seen).

    The same bytes labelled both real and fake are all rejected: the label is unknowable.
    Returns the kept items, rejections, duplicates dropped, and how many of those crossed splits.
    """
    rank = {s: i for i, s in enumerate(SPLITS)}
    groups: dict[str, list[Checked]] = defaultdict(list)
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


def _place(item: Checked, target: Path, link_mode: str) -> bool:
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
    checked: list[Checked],
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
    """Deduplicate, check completeness, and write the dataset folder atomically: everything goes
    to a staging folder beside ``output``, renamed into place at the end, removed on any error."""
    started = started if started is not None else time.perf_counter()
    rejected = list(extra_rejected or [])
    rejected += [(c.entry.origin, c.reason) for c in checked if c.reason]
    kept, duplicate_rejections, dropped, crossing = drop_duplicates([c for c in checked if not c.reason])
    rejected += duplicate_rejections
    _refuse_empty(kept, rejected)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_staging(output)
    staging = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        rows, linked, normalised = _write_images(kept, staging, link_mode, progress)
        digest = dataset_digest(rows)
        if ciplab_view:
            rows += _ciplab_view(rows, staging)
        _write_tables(staging, rows, rejected)
        report = PrepareReport(
            output=str(output),
            source=source,
            counts=_counts(rows),
            rejected=len(rejected),
            duplicates_dropped=dropped,
            cross_split_duplicates=crossing,
            normalised=normalised,
            linked=linked,
            digest=digest,
            seconds=round(time.perf_counter() - started, 2),
            settings=dict(settings or {}),
        )
        write_summary(staging, report)
        _move_into_place(staging, output, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _refuse_empty(kept: list[Checked], rejected: list) -> None:
    counts = Counter((c.entry.split, c.entry.label) for c in kept)
    empty = [f"{split}/{label}" for split in SPLITS for label in LABELS if counts[(split, label)] == 0]
    if empty:
        raise DatasetError(
            f"no usable images left for {', '.join(empty)} ({len(rejected)} file(s) rejected); "
            "nothing was written. Check the source folders and the split fractions."
        )


def _write_images(kept: list[Checked], staging: Path, link_mode: str, progress: bool) -> tuple[list[dict], int, int]:
    """Place every kept image under ``staging/<split>/<label>/``; its manifest rows, and how many
    were linked and normalised (re-encoded as PNG)."""
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
    return rows, linked, normalised


def _ciplab_view(rows: list[dict], staging: Path) -> list[dict]:
    """The ciplab test images again under ``test_ciplab/`` (links), as rows of that split."""
    view = []
    for row in [r for r in rows if r["source"] == "ciplab" and r["split"] == "test"]:
        view_path = f"{CIPLAB_VIEW}/{row['label']}/{row['path'].rsplit('/', 1)[1]}"
        (staging / view_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staging / row["path"], staging / view_path)
        except OSError:
            shutil.copyfile(staging / row["path"], staging / view_path)
        view.append({**row, "path": view_path, "split": CIPLAB_VIEW})
    return view


def _write_tables(staging: Path, rows: list[dict], rejected: list[tuple[str, str]]) -> None:
    with open(staging / MANIFEST, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with open(staging / REJECTED, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("path", "reason"))
        writer.writerows(rejected)


def _counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        table[row["split"]][row["label"]] = table[row["split"]].get(row["label"], 0) + 1
    return dict(table)


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
