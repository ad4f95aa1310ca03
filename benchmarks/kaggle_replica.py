"""A full-size replica of both Kaggle downloads, since the real ones cannot be fetched here.

    python benchmarks/kaggle_replica.py --output DIR [--fraction F] [--zip] [--workers N] [--seed S]

Writes, as the two downloads extract:

* ``DIR/140k-real-and-fake-faces/``: ``train.csv``, ``valid.csv``, ``test.csv`` at the root
  (columns ``,original_path,id,label,label_str,path``; in those files ``label`` is 1 for real
  and 0 for fake, the reverse of this project's targets) and
  ``real_vs_fake/real-vs-fake/{train,valid,test}/{real,fake}/*.jpg``: 50,000 / 10,000 / 10,000
  images per class, 256 x 256; real files named like FFHQ's (``31355.jpg``), fakes by a
  10-character id (``0A1B2C3D4E.jpg``).
* ``DIR/real-and-fake-face-detection/``: ``real_and_fake_face/training_real/real_00001.jpg`` …
  (1,081) and ``real_and_fake_face/training_fake/{easy,mid,hard}_<n>_<4 digits>.jpg`` (240 / 480 /
  240), 600 x 600, plus the same files again under ``real_and_fake_face_detection/``, which
  the ciplab download also holds.

With ``--zip`` also ``DIR/140k-real-and-fake-faces.zip`` and ``DIR/real-and-fake-face-detection.zip``
(deflated, paths relative to each folder, as Kaggle serves them). ``--fraction`` scales every
count (at least 2 files per class folder and difficulty level), e.g. 0.01 for tests.

The pixels are not faces: real images are random crops of the photographs bundled with
scikit-image, matplotlib and scikit-learn (as in the offline benchmark); fakes are such crops
rendered at half resolution and up-sampled 2x, the trace a generator's up-sampling layers leave.
Every file is a real baseline JPEG (quality 95) of the real size with distinct bytes; the
replica measures size, memory and time, not accuracy on Kaggle's faces.

Prints the build time, files written, disk used and the mean file size. Each folder is written
next to its final place and renamed into it, so an interrupted build leaves no half-made copy.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import shutil
import string
import time
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
from _workspace import user_path
from PIL import Image

K140 = "140k-real-and-fake-faces"
CIPLAB = "real-and-fake-face-detection"
K140_COUNTS = {"train": 50_000, "valid": 10_000, "test": 10_000}  # per class
K140_SIZE = 256
CIPLAB_REAL = 1_081
CIPLAB_FAKE = {"easy": 240, "mid": 480, "hard": 240}
CIPLAB_SIZE = 600
QUALITY = 95
_ID_CHARS = np.array(list(string.ascii_uppercase + string.digits))


def scaled(count: int, fraction: float) -> int:
    return count if fraction >= 1 else max(2, int(round(count * fraction)))


def plan(fraction: float, seed: int) -> tuple[list[tuple[str, str, int, int]], dict[str, list[list]]]:
    """Every file to write as ``(relative path, kind, size, index)``, and the 140k CSV rows per split."""
    rng = np.random.default_rng(seed)
    jobs: list[tuple[str, str, int, int]] = []
    csv_rows: dict[str, list[list]] = {}
    real_ids = rng.permutation(70_000)  # FFHQ's 70,000 images, numbered 00000-69999
    used: set[str] = set()
    start = 0
    for split, count in K140_COUNTS.items():
        n = scaled(count, fraction)
        rows = []
        for index in real_ids[start : start + n]:
            name = f"{index:05d}"
            rows.append(
                [f"/kaggle/input/flickrfaceshq-dataset-nvidia-resized-256px/resized/{name}.jpg", name, 1, "real"]
            )
        start += n
        for _ in range(n):
            name = "".join(rng.choice(_ID_CHARS, 10))
            while name in used:
                name = "".join(rng.choice(_ID_CHARS, 10))
            used.add(name)
            part = f"1m_faces_{rng.integers(4):02d}"
            rows.append([f"/kaggle/input/1-million-fake-faces/1m_faces_00_01_02_03/{part}/{name}.jpg", name, 0, "fake"])
        order = rng.permutation(len(rows))
        csv_rows[split] = []
        for i, j in enumerate(order):
            original, name, label, label_str = rows[j]
            path = f"{split}/{label_str}/{name}.jpg"
            csv_rows[split].append([i, original, name, label, label_str, path])
            jobs.append((f"{K140}/real_vs_fake/real-vs-fake/{path}", label_str, K140_SIZE, len(jobs)))
    base = f"{CIPLAB}/real_and_fake_face"
    for i in range(scaled(CIPLAB_REAL, fraction)):
        jobs.append((f"{base}/training_real/real_{i + 1:05d}.jpg", "real", CIPLAB_SIZE, len(jobs)))
    for level, count in CIPLAB_FAKE.items():
        for i in range(scaled(count, fraction)):
            parts = "".join(str(b) for b in rng.integers(0, 2, 4)) if i else "1111"
            name = f"{level}_{i + 1}_{parts if parts != '0000' else '1000'}.jpg"
            jobs.append((f"{base}/training_fake/{name}", "fake", CIPLAB_SIZE, len(jobs)))
    return jobs, csv_rows


_PHOTOS: list = []


def _load_photos() -> None:
    from deepfake_detection.data.photos import load_bundled_photos

    _PHOTOS.extend(p.pixels for p in load_bundled_photos())


def render(kind: str, size: int, seed: int, index: int) -> bytes:
    """One JPEG: a random crop of a bundled photograph; a fake is rendered at half size and up-sampled."""
    rng = np.random.default_rng([seed, index])
    pixels = _PHOTOS[int(rng.integers(len(_PHOTOS)))]
    height, width = pixels.shape[:2]
    largest = min(height, width)
    side = int(rng.integers(min(largest, size // 2), largest + 1))
    top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
    picture = Image.fromarray(pixels[top : top + side, left : left + side])
    if kind == "fake":
        picture = picture.resize((size // 2, size // 2), Image.Resampling.BILINEAR)
    picture = picture.resize((size, size), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    gain = np.float32(rng.uniform(0.85, 1.15))
    array = np.clip(np.asarray(picture, dtype=np.float32) * gain, 0, 255).astype(np.uint8)
    buffer = BytesIO()
    # The comment (the file's index) makes the bytes of every file distinct, so prepare keeps them all.
    Image.fromarray(array).save(buffer, format="JPEG", quality=QUALITY, comment=f"replica {seed} {index}".encode())
    return buffer.getvalue()


def _write(job: tuple[str, str, int, int], staging: Path, seed: int) -> int:
    relative, kind, size, index = job
    data = render(kind, size, seed, index)
    (staging / relative).write_bytes(data)
    return len(data)


def _write_chunk(args) -> int:
    chunk, staging, seed = args
    return sum(_write(job, staging, seed) for job in chunk)


def write_csvs(folder: Path, csv_rows: dict[str, list[list]]) -> None:
    for split, rows in csv_rows.items():
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["", "original_path", "id", "label", "label_str", "path"])
            writer.writerows(rows)


def zip_folder(folder: Path, archive: Path) -> None:
    partial = archive.with_name(archive.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(folder.rglob("*")):
            handle.write(path, path.relative_to(folder).as_posix())
    partial.replace(archive)


def disk_usage(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(output: Path, fraction: float = 1.0, make_zips: bool = False, workers: int = 0, seed: int = 0) -> dict:
    """Write the replica under ``output``; returns counts and sizes."""
    from tqdm import tqdm

    output.mkdir(parents=True, exist_ok=True)
    for name in (K140, CIPLAB):
        if (output / name).exists():
            raise SystemExit(f"{output / name} already exists; remove it or choose another --output")
    staging = output / ".replica-partial"
    shutil.rmtree(staging, ignore_errors=True)
    jobs, csv_rows = plan(fraction, seed)
    for folder in {str(Path(j[0]).parent) for j in jobs}:
        (staging / folder).mkdir(parents=True, exist_ok=True)
    write_csvs(staging / K140, csv_rows)
    chunks = [(jobs[i : i + 256], staging, seed) for i in range(0, len(jobs), 256)]
    workers = workers or multiprocessing.cpu_count()
    with multiprocessing.get_context("fork").Pool(workers, initializer=_load_photos) as pool:
        written = 0
        with tqdm(total=len(jobs), desc="replica", unit="img") as bar:
            for chunk_bytes, (chunk, _, _) in zip(pool.imap(_write_chunk, chunks), chunks):
                written += chunk_bytes
                bar.update(len(chunk))
    ciplab = staging / CIPLAB
    shutil.copytree(ciplab / "real_and_fake_face", ciplab / "real_and_fake_face_detection" / "real_and_fake_face")
    for name in (K140, CIPLAB):
        (staging / name).rename(output / name)
    staging.rmdir()
    if make_zips:
        for name in (K140, CIPLAB):
            print(f"zipping {name} …", flush=True)
            zip_folder(output / name, output / f"{name}.zip")
    return {"images": len(jobs), "image_bytes": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, type=user_path)
    parser.add_argument("--fraction", type=float, default=1.0, help="Scale every file count (0 < F <= 1).")
    parser.add_argument("--zip", action="store_true", help="Also write the two .zip archives.")
    parser.add_argument("--workers", type=int, default=0, help="Processes (default: one per core).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be in (0, 1]")
    start = time.perf_counter()
    result = build(args.output, args.fraction, args.zip, args.workers, args.seed)
    seconds = time.perf_counter() - start
    folders = sum(disk_usage(args.output / name) for name in (K140, CIPLAB))
    zips = sum((args.output / f"{name}.zip").stat().st_size for name in (K140, CIPLAB) if args.zip)
    print(
        f"replica at fraction {args.fraction:g}: {result['images']:,} images rendered (+ the ciplab duplicate folder)"
    )
    print(f"mean JPEG size {result['image_bytes'] / result['images'] / 1024:.1f} KiB")
    print(f"disk: folders {folders / 2**30:.2f} GiB" + (f", zips {zips / 2**30:.2f} GiB" if args.zip else ""))
    print(f"build time {seconds:.0f} s ({result['images'] / seconds:.0f} images/s incl. zips)")


if __name__ == "__main__":
    main()
