"""Labelled sets to evaluate a detector on, whatever form they come in: a prepared dataset's split
(``DATASET`` or ``DATASET:SPLIT``, test by default), a folder with ``real/`` and ``fake/``
(searched recursively), a Kaggle download (the 140k layout's test split, or ``:SPLIT``; the
ciplab layout whole), or a CSV of ``path,label`` (label ``real``/``fake`` or 0/1, paths relative
to the CSV's folder). Every file found is kept, image or not: one that cannot be read or decoded
is refused with its reason when scored, never left out. Fake is the positive class (1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepfake_detection.data.sources import LABELS, SPLITS, ciplab_entries, kaggle_140k_entries
from deepfake_detection.data.writer import MANIFEST
from deepfake_detection.errors import DatasetError, LayoutError


@dataclass(frozen=True)
class LabelledSet:
    """One set: a name fit for metric keys, what the user gave, and per file where it came from,
    its label (``real``/``fake``) and how to read its bytes."""

    name: str
    source: str
    rows: pd.DataFrame  # columns file, label
    read: tuple[Callable[[], bytes], ...]

    @property
    def y(self):
        return (self.rows["label"] == "fake").astype(int).to_numpy()

    def counts(self) -> dict[str, int]:
        return {label: int((self.rows["label"] == label).sum()) for label in ("real", "fake")}


def load_set(spec: str) -> LabelledSet:
    """The labelled set ``spec`` names (see the module's forms); refused with what was expected
    when it is none of them, is empty, or has one class only."""
    text = spec.strip()
    path, split = _split_suffix(text)
    if path.suffix.lower() == ".csv" and path.is_file():
        rows = _csv_rows(path)
    elif (path / MANIFEST).is_file():
        rows = _dataset_rows(path, split or "test")
    elif path.is_dir() and ((path / "real").is_dir() or (path / "fake").is_dir()):
        rows = _folder_rows(path)
    elif path.exists():
        rows = _kaggle_rows(path, split)
    else:
        raise LayoutError(f"labelled set {text!r}: {path} does not exist")
    rows, read = rows
    if rows.empty:
        raise DatasetError(f"labelled set {text!r} has no files")
    counts = rows["label"].value_counts()
    if len(counts) < 2:
        (only,) = counts.index
        raise DatasetError(
            f"labelled set {text!r} has only {only} files ({counts[only]}): ROC-AUC, AP and EER need both "
            "real and fake images"
        )
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem if path.suffix else path.name) + (f"_{split}" if split else "")
    return LabelledSet(name or "set", text, rows.reset_index(drop=True), tuple(read))


def load_sets(specs: list[str]) -> list[LabelledSet]:
    """:func:`load_set` of each, their names made unique (``_2``, ``_3`` ...)."""
    sets, seen = [], {}
    for spec in specs:
        found = load_set(spec)
        seen[found.name] = seen.get(found.name, 0) + 1
        if seen[found.name] > 1:
            found = LabelledSet(f"{found.name}_{seen[found.name]}", found.source, found.rows, found.read)
        sets.append(found)
    return sets


def _split_suffix(text: str) -> tuple[Path, str]:
    """``PATH:SPLIT`` -> (PATH, SPLIT) where SPLIT is a split name; otherwise (PATH, "")."""
    head, sep, tail = text.rpartition(":")
    if sep and tail in SPLITS and head:
        return Path(head).expanduser(), tail
    return Path(text).expanduser(), ""


def _files(paths: list[Path], labels: list[str]):
    frame = pd.DataFrame({"file": [str(p) for p in paths], "label": labels})
    return frame, [p.read_bytes for p in paths]


def _csv_rows(path: Path):
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise LayoutError(f"{path}: a labelled CSV needs the columns path and label; missing {', '.join(missing)}")
    words = {"0": "real", "1": "fake", "real": "real", "fake": "fake"}
    labels = table["label"].str.strip().str.lower()
    bad = sorted(set(labels) - set(words))
    if bad:
        rows = [i + 2 for i, v in enumerate(labels) if v not in words][:5]
        raise LayoutError(
            f"{path}: label must be real, fake, 0 or 1 (fake is 1); found {', '.join(map(repr, bad))} "
            f"(lines {', '.join(map(str, rows))})"
        )
    files = [Path(p) if Path(p).is_absolute() else path.parent / p for p in table["path"].str.strip()]
    return _files(files, [words[v] for v in labels])


def _dataset_rows(path: Path, split: str):
    from deepfake_detection.data.pipeline import load_manifest

    manifest = load_manifest(path, split)
    return _files([Path(f) for f in manifest["file"]], list(manifest["label"]))


def _folder_rows(path: Path):
    missing = [label for label in LABELS if not (path / label).is_dir()]
    if missing:
        (present,) = [label for label in LABELS if label not in missing]
        files = [p for p in (path / present).rglob("*") if p.is_file() and not p.name.startswith(".")]
        raise DatasetError(
            f"labelled set {path} has only {present} files ({len(files)}): it has {present}/ but no "
            f"{missing[0]}/; ROC-AUC, AP and EER need both real and fake images"
        )
    paths, labels = [], []
    for label in LABELS:
        found = sorted(p for p in (path / label).rglob("*") if p.is_file() and not p.name.startswith("."))
        paths += found
        labels += [label] * len(found)
    return _files(paths, labels)


def _kaggle_rows(path: Path, split: str):
    """The 140k layout (its ``split``, test by default) or else the ciplab one, folder or .zip."""
    try:
        entries = [e for e in kaggle_140k_entries(path) if e.split == (split or "test")]
    except LayoutError as not_140k:
        try:
            entries = ciplab_entries(path)
        except LayoutError:
            raise LayoutError(
                f"{path} is not a labelled set: give a prepared dataset (with {MANIFEST}), a folder with real/ "
                f"and fake/, a Kaggle 140k or ciplab download (folder or .zip), or a CSV of path,label "
                f"({not_140k})"
            ) from None
    frame = pd.DataFrame({"file": [e.origin for e in entries], "label": [e.label for e in entries]})
    return frame, [e.read for e in entries]
