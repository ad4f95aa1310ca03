"""Finding the images of each source: the two Kaggle downloads, as folders or as ``.zip``
archives, and the offline benchmark.

* 140k real and fake faces (FFHQ vs StyleGAN):
  ``real_vs_fake/real-vs-fake/{train,valid,test}/{real,fake}/*.jpg``
* real and fake face detection (ciplab):
  ``real_and_fake_face/{training_real,training_fake}/*.jpg``, fakes named like
  ``easy_116_1111.jpg`` (easy / mid / hard).
"""

from __future__ import annotations

import re
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from deepfake_detection.data.images import IMAGE_EXTENSIONS
from deepfake_detection.errors import LayoutError, UnsafeArchiveError

SPLITS = ("train", "valid", "test")
LABELS = {"real": 0, "fake": 1}  # fake is the positive class

KAGGLE_140K_DIRS = {f"{split}/{label}": (split, label) for split in SPLITS for label in ("real", "fake")}
KAGGLE_140K_ROOTS = ("", "real-vs-fake", "real_vs_fake/real-vs-fake")
CIPLAB_DIRS = {"training_real": ("", "real"), "training_fake": ("", "fake")}
CIPLAB_ROOTS = ("", "real_and_fake_face", "real_and_fake_face_detection/real_and_fake_face")
_CIPLAB_LEVEL = re.compile(r"^(easy|mid|hard)_", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    """One file found in a source, before it is checked."""

    source: str  # "140k", "ciplab" or "bench"
    split: str  # "train" / "valid" / "test", or "" until assigned
    label: str  # "real" or "fake"
    name: str  # file name
    origin: str  # where it came from, for messages and the manifest
    read: Callable[[], bytes] = field(repr=False, compare=False)
    link_from: Path | None = None  # a file on disk that can be linked instead of copied
    level: str = ""  # ciplab difficulty: easy / mid / hard
    generator: str = ""  # bench generator family
    photo: str = ""  # bench source photograph

    @property
    def is_image_name(self) -> bool:
        return self.name.lower().endswith(IMAGE_EXTENSIONS)


def ciplab_level(name: str) -> str:
    match = _CIPLAB_LEVEL.match(name)
    return match.group(1).lower() if match else ""


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in ("Thumbs.db", "desktop.ini")


def check_archive_members(archive: zipfile.ZipFile, origin: Path) -> None:
    """Refuse archives with absolute paths, ``..`` components or symbolic links."""
    for info in archive.infolist():
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if (
            name.startswith(("/", "\\"))
            or re.match(r"^[A-Za-z]:", name)
            or ".." in parts
            or (info.external_attr >> 16) & 0o170000 == 0o120000
        ):
            raise UnsafeArchiveError(
                f"{origin}: refusing archive member {name!r}: it would be written outside the "
                "target folder (absolute path, '..' or symbolic link); nothing was extracted"
            )


def _describe(found: list[str]) -> str:
    shown = ", ".join(sorted(found)[:12]) or "nothing"
    return shown + (" ..." if len(found) > 12 else "")


def _folder_entries(path: Path, source: str, *, dirs: dict, roots: tuple[str, ...], title: str) -> list[Entry]:
    if not path.exists():
        raise LayoutError(f"{title}: {path} does not exist")
    best_root, best_missing = None, None
    for root in roots:
        base = path / root if root else path
        missing = [d for d in dirs if not (base / d).is_dir()]
        if not missing:
            best_root, best_missing = base, []
            break
        if len(missing) < len(dirs) and (best_missing is None or len(missing) < len(best_missing)):
            best_root, best_missing = base, missing
    if best_missing:
        raise LayoutError(f"{title}: {best_root} is missing the class folder(s) {', '.join(best_missing)}")
    if best_root is None:
        expected = ", ".join(f"{r + '/' if r else ''}{{{','.join(dirs)}}}" for r in roots)
        found = [p.name + ("/" if p.is_dir() else "") for p in path.iterdir()]
        raise LayoutError(
            f"{title}: {path} does not have the expected layout; expected one of: {expected}; found: {_describe(found)}"
        )
    entries = []
    for folder, (split, label) in dirs.items():
        files = sorted(p for p in (best_root / folder).iterdir() if p.is_file() and _visible(p.name))
        if not files:
            raise LayoutError(f"{title}: class folder {best_root / folder} is empty")
        for file in files:
            entries.append(
                Entry(
                    source=source,
                    split=split,
                    label=label,
                    name=file.name,
                    origin=str(file),
                    read=file.read_bytes,
                    link_from=file,
                    level=ciplab_level(file.name) if source == "ciplab" else "",
                )
            )
    return entries


def _archive_entries(path: Path, source: str, *, dirs: dict, roots: tuple[str, ...], title: str) -> list[Entry]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise LayoutError(f"{title}: {path} is not a readable zip archive ({error})") from None
    check_archive_members(archive, path)
    names = [n for n in archive.namelist()]
    files = [n for n in names if not n.endswith("/")]
    # Archives may or may not hold explicit folder entries; infer folders from file paths too.
    folders = {n.rstrip("/") for n in names if n.endswith("/")}
    folders |= {str(PurePosixPath(n).parent) for n in files}
    prefixes = sorted({f[: -len(d)] for f in folders for d in dirs if f == d or f.endswith("/" + d)}, key=len)
    chosen = None
    for prefix in prefixes:
        if all((prefix + d) in folders for d in dirs):
            chosen = prefix
            break
    if chosen is None:
        if prefixes:
            present = [d for d in dirs if (prefixes[0] + d) in folders]
            missing = [d for d in dirs if d not in present]
            raise LayoutError(f"{title}: {path} is missing the class folder(s) {', '.join(missing)}")
        top = sorted({n.split("/", 1)[0] for n in names})
        raise LayoutError(
            f"{title}: {path} does not have the expected layout; expected folders "
            f"{', '.join(dirs)} (under one of {', '.join(r or '.' for r in roots)}); found: {_describe(top)}"
        )
    lock = threading.Lock()

    def reader(member: str) -> Callable[[], bytes]:
        def read() -> bytes:
            with lock:
                return archive.read(member)

        return read

    entries = []
    for folder, (split, label) in dirs.items():
        inside = sorted(
            n for n in files if str(PurePosixPath(n).parent) == chosen + folder and _visible(PurePosixPath(n).name)
        )
        if not inside:
            raise LayoutError(f"{title}: class folder {chosen + folder} in {path} is empty")
        for member in inside:
            name = PurePosixPath(member).name
            entries.append(
                Entry(
                    source=source,
                    split=split,
                    label=label,
                    name=name,
                    origin=f"{path}!{member}",
                    read=reader(member),
                    level=ciplab_level(name) if source == "ciplab" else "",
                )
            )
    return entries


def _entries(path: Path, source: str, *, dirs: dict, roots: tuple[str, ...], title: str) -> list[Entry]:
    path = Path(path).expanduser()
    if path.is_file():
        return _archive_entries(path, source, dirs=dirs, roots=roots, title=title)
    return _folder_entries(path, source, dirs=dirs, roots=roots, title=title)


def kaggle_140k_entries(path: Path) -> list[Entry]:
    """Every file of the 140k real-and-fake-faces download, with its split and label."""
    return _entries(path, "140k", dirs=KAGGLE_140K_DIRS, roots=KAGGLE_140K_ROOTS, title="140k real and fake faces")


def ciplab_entries(path: Path) -> list[Entry]:
    """Every file of the ciplab real-and-fake-face-detection download (split not yet assigned)."""
    return _entries(path, "ciplab", dirs=CIPLAB_DIRS, roots=CIPLAB_ROOTS, title="ciplab real and fake face detection")
