"""Bad input gets a clear message, good files are still processed, nothing is half-written."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import jpeg_bytes, write_140k, write_ciplab
from PIL import Image

from deepfake_detection.data import prepare as prepare_module
from deepfake_detection.data import writer
from deepfake_detection.data.images import BadImage, check_image
from deepfake_detection.data.pipeline import make_dataset
from deepfake_detection.data.prepare import prepare_kaggle
from deepfake_detection.errors import DatasetError, LayoutError, UnsafeArchiveError


def _png(picture: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", **save)
    return buffer.getvalue()


def _leftovers(folder):
    """Anything prepare might have left in ``folder`` (staging or retired copies)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def k140(tmp_path):
    return write_140k(tmp_path / "src", per_class=2)


def _class_dir(k140, split="train", label="fake"):
    return k140 / "real_vs_fake" / "real-vs-fake" / split / label


def test_broken_files_are_rejected_and_good_files_kept(k140, tmp_path):
    folder = _class_dir(k140)
    good = jpeg_bytes(99, size=(64, 64))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image\n")
    (folder / "notes.txt").write_text("a stray file")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    report = prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False)
    rejected = pd.read_csv(tmp_path / "out" / "rejected.csv").set_index("path")["reason"]
    reasons = {
        name: rejected[str(folder / name)]
        for name in ("corrupt.jpg", "truncated.jpg", "empty.jpg", "text.png", "notes.txt")
    }
    assert "corrupt or truncated" in reasons["corrupt.jpg"] or "not an image" in reasons["corrupt.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert "not an image" in reasons["text.png"]
    assert reasons["notes.txt"] == "not an image file extension"
    assert str(folder / ".DS_Store") not in rejected.index  # hidden files are not images at all
    assert report.rejected == 5 and report.total == 12


def test_unusual_image_modes_are_normalised_to_8bit_rgb(k140, tmp_path):
    folder = _class_dir(k140, "valid", "real")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    (folder / "grey.jpg").write_bytes(jpeg_bytes(5, mode="L"))
    (folder / "rgba.png").write_bytes(_png(Image.fromarray(rgb).convert("RGBA")))
    (folder / "palette.png").write_bytes(_png(Image.fromarray(rgb).convert("P")))
    (folder / "cmyk.jpg").write_bytes(jpeg_bytes(6, mode="CMYK"))
    deep = np.full((10, 12), 65535, dtype=np.uint16)
    deep[:, :6] = 32768
    (folder / "deep.png").write_bytes(_png(Image.fromarray(deep)))
    # 40 wide x 20 high, left half red, right half blue; EXIF 6 = rotate 90 degrees clockwise to view.
    sideways = np.zeros((20, 40, 3), dtype=np.uint8)
    sideways[:, :20, 0] = 255
    sideways[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(sideways).save(buffer, format="JPEG", quality=95, exif=exif)
    (folder / "rotated.jpg").write_bytes(buffer.getvalue())

    report = prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False)
    assert report.rejected == 0 and report.normalised == 5  # the greyscale JPEG is read as it is
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", keep_default_na=False)
    by_name = {row.original.rsplit("/", 1)[1]: row for row in manifest.itertuples()}
    assert by_name["grey.jpg"].path.endswith(".jpg")
    for name in ("rgba.png", "palette.png", "cmyk.jpg", "deep.png", "rotated.jpg"):
        row = by_name[name]
        assert row.path.endswith(".png")
        with Image.open(tmp_path / "out" / row.path) as picture:
            assert picture.mode == "RGB"
    rotated = by_name["rotated.jpg"]
    assert (rotated.width, rotated.height) == (20, 40)
    upright = np.asarray(Image.open(tmp_path / "out" / rotated.path))
    assert upright[:20, :, 0].mean() > 200 and upright[20:, :, 2].mean() > 200  # red on top
    deep_pixels = np.asarray(Image.open(tmp_path / "out" / by_name["deep.png"].path))
    assert deep_pixels[0, 0, 0] == 128 and deep_pixels[0, -1, 0] == 255
    # The input pipeline reads every kept file as 3 channels.
    batches = list(make_dataset(tmp_path / "out", "valid", image_size=16, batch_size=64, cache=False))
    assert batches[0][0].shape == (len(manifest[manifest.split == "valid"]), 16, 16, 3)


def test_decompression_bombs_are_refused(tmp_path):
    bomb = _png(Image.new("1", (8200, 8200)), optimize=False)
    assert len(bomb) < 2_000_000  # small on disk, 67 megapixels once decoded
    with pytest.raises(BadImage, match="decompression bomb"):
        check_image(bomb)
    assert check_image(_png(Image.new("RGB", (100, 100)))).width == 100


def test_empty_class_folder_is_an_error_and_writes_nothing(k140, tmp_path):
    for file in _class_dir(k140, "test", "fake").iterdir():
        file.unlink()
    with pytest.raises(LayoutError, match=r"test/fake is empty"):
        prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_wrong_layout_says_what_was_expected(tmp_path):
    (tmp_path / "photos" / "cats").mkdir(parents=True)
    expected = "expected one of: {train/real,train/fake,valid/real,valid/fake,test/real,test/fake}, real-vs-fake/{"
    with pytest.raises(LayoutError, match=re.escape(expected) + r".*; found: cats/$"):
        prepare_kaggle(tmp_path / "out", kaggle_140k=tmp_path / "photos", progress=False)
    ciplab = write_ciplab(tmp_path / "c")
    (ciplab / "real_and_fake_face" / "training_fake").rename(ciplab / "real_and_fake_face" / "fakes")
    with pytest.raises(LayoutError, match="missing the class folder.*training_fake"):
        prepare_kaggle(tmp_path / "out", ciplab=ciplab, progress=False)
    with pytest.raises(LayoutError, match="does not exist"):
        prepare_kaggle(tmp_path / "out", ciplab=tmp_path / "nowhere", progress=False)
    with pytest.raises(DatasetError, match="needs --kaggle-140k and/or --ciplab"):
        prepare_kaggle(tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "member", ["../evil.jpg", "real_and_fake_face/training_real/../../../evil.jpg", "/tmp/evil.jpg"]
)
def test_zip_with_escaping_paths_is_refused(tmp_path, member):
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("real_and_fake_face/training_real/real_00001.jpg", jpeg_bytes(1))
        handle.writestr("real_and_fake_face/training_fake/easy_1_1111.jpg", jpeg_bytes(2))
        handle.writestr(member, jpeg_bytes(3))
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match="refusing archive member"):
        prepare_kaggle(target / "out", ciplab=archive, progress=False)
    assert not target.exists()
    assert not (tmp_path.parent / "evil.jpg").exists() and not (tmp_path / "evil.jpg").exists()


def test_a_file_that_is_not_a_zip_is_a_clear_error(tmp_path):
    fake_zip = tmp_path / "download.zip"
    fake_zip.write_text("not a zip")
    with pytest.raises(LayoutError, match="not a readable zip archive"):
        prepare_kaggle(tmp_path / "out", ciplab=fake_zip, progress=False)


def test_failure_while_writing_leaves_nothing_behind(k140, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_place = writer._place

    def failing_place(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full (simulated)")
        return real_place(*args, **kwargs)

    monkeypatch.setattr(writer, "_place", failing_place)
    with pytest.raises(OSError, match="disk full"):
        prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_existing_output_is_kept_unless_overwrite(k140, tmp_path, monkeypatch):
    prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False)
    before = (tmp_path / "out" / "manifest.csv").read_bytes()
    with pytest.raises(DatasetError, match="already exists; pass --overwrite"):
        prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False)
    # A failed overwrite keeps the old dataset intact.
    monkeypatch.setattr(writer, "_place", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False, overwrite=True)
    assert (tmp_path / "out" / "manifest.csv").read_bytes() == before and _leftovers(tmp_path) == []


def test_a_split_left_empty_by_rejections_is_an_error(k140, tmp_path):
    for file in _class_dir(k140, "valid", "real").iterdir():
        file.write_bytes(b"")
    with pytest.raises(DatasetError, match="no usable images left for valid/real"):
        prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False)
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_long_signatures_take_keywords(tmp_path):
    """Options of the data functions are keyword-only, so two swapped numbers cannot pass silently."""
    import inspect

    from deepfake_detection.data import bench, photos, pipeline

    positional = {
        pipeline.make_dataset: ["root", "split", "image_size", "batch_size"],  # training/study.py passes all four
        prepare_module.prepare_bench: ["output"],
        prepare_module.prepare_kaggle: ["output"],
        prepare_module.write_dataset: ["checked", "output"],
        bench.generate: [],
        bench.train_generator: ["model", "crops"],
        photos.random_crops: ["photos", "count"],
    }
    for function, names in positional.items():
        kinds = [p.name for p in inspect.signature(function).parameters.values() if p.kind != p.KEYWORD_ONLY]
        assert kinds == names, function.__name__
    with pytest.raises(TypeError, match="positional argument"):
        prepare_module.prepare_bench(tmp_path / "out", 32, 8)  # options by position: refused before any work
    assert not (tmp_path / "out").exists()
