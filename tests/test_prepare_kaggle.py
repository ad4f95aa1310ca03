"""prepare --source kaggle on miniature copies of both Kaggle layouts, as folders and as zips."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
from conftest import write_140k, write_ciplab, zip_folder

from deepfake_detection.data.prepare import prepare_kaggle


@pytest.fixture
def downloads(tmp_path):
    k140 = write_140k(tmp_path / "140k", per_class=3)
    ciplab = write_ciplab(tmp_path / "ciplab", per_level=4, real=12)
    return k140, ciplab


def _manifest(root):
    return pd.read_csv(root / "manifest.csv", keep_default_na=False)


def test_combines_both_folders(downloads, tmp_path):
    k140, ciplab = downloads
    report = prepare_kaggle(tmp_path / "combined", kaggle_140k=k140, ciplab=ciplab, progress=False)
    manifest = _manifest(tmp_path / "combined")
    main = manifest[manifest.split != "test_ciplab"]
    # 140k keeps its own split: 3 per split and class.
    k = main[main.source == "140k"]
    assert k.groupby(["split", "label"]).size().eq(3).all() and len(k) == 18
    # ciplab: 12 real + 12 fake split 0.7/0.15/0.15, stratified by label and level.
    c = main[main.source == "ciplab"]
    assert len(c) == 24
    assert set(c[c.label == "fake"]["level"]) == {"easy", "mid", "hard"}
    for level, group in c[c.label == "fake"].groupby("level"):
        assert group["split"].value_counts().to_dict() == {"train": 2, "valid": 1, "test": 1}, level
    # Every row: the file is where the manifest says, with the label in the path and target 1 = fake.
    for row in manifest.itertuples():
        assert (tmp_path / "combined" / row.path).is_file()
        assert row.path.split("/")[:2] == [row.split, row.label]
        assert row.target == (1 if row.label == "fake" else 0)
        assert row.width == 24 and row.height == 24 and len(row.sha256) == 64
    # The ciplab test view holds exactly the ciplab test images.
    view = manifest[manifest.split == "test_ciplab"]
    assert sorted(view["sha256"]) == sorted(c[c.split == "test"]["sha256"])
    assert {p.split("/")[0] for p in view["path"]} == {"test_ciplab"}
    # Images are linked, not copied.
    original = k140 / "real_vs_fake/real-vs-fake/train/real"
    linked = next(iter(k[(k.split == "train") & (k.label == "real")]["path"]))
    assert os.path.samefile(tmp_path / "combined" / linked, original / linked.split("140k_")[1])
    assert report.linked == 42 and report.rejected == 0 and report.duplicates_dropped == 0
    rejected = pd.read_csv(tmp_path / "combined" / "rejected.csv")
    assert list(rejected.columns) == ["path", "reason"] and rejected.empty


def test_zip_archives_give_the_same_dataset(downloads, tmp_path):
    k140, ciplab = downloads
    prepare_kaggle(tmp_path / "from_folders", kaggle_140k=k140, ciplab=ciplab, progress=False)
    k_zip = zip_folder(k140, tmp_path / "140k-real-and-fake-faces.zip")
    c_zip = zip_folder(ciplab, tmp_path / "real-and-fake-face-detection.zip")
    report = prepare_kaggle(tmp_path / "from_zips", kaggle_140k=k_zip, ciplab=c_zip, progress=False)
    columns = ["path", "split", "label", "source", "sha256", "level"]
    folders, zips = _manifest(tmp_path / "from_folders"), _manifest(tmp_path / "from_zips")
    pd.testing.assert_frame_equal(folders[columns], zips[columns])
    assert report.linked == 0
    assert zips["original"].str.contains(".zip!").all()


def test_same_inputs_give_the_same_split_and_seed_changes_it(downloads, tmp_path):
    _, ciplab = downloads
    prepare_kaggle(tmp_path / "a", ciplab=ciplab, seed=3, progress=False)
    prepare_kaggle(tmp_path / "a", ciplab=ciplab, seed=3, progress=False, overwrite=True)
    first = _manifest(tmp_path / "a")
    prepare_kaggle(tmp_path / "b", ciplab=ciplab, seed=3, progress=False)
    prepare_kaggle(tmp_path / "c", ciplab=ciplab, seed=4, progress=False)
    pd.testing.assert_frame_equal(first, _manifest(tmp_path / "b"))
    assert list(first["sha256"]) != list(_manifest(tmp_path / "c")["sha256"])


def test_split_fractions_are_configurable(downloads, tmp_path):
    _, ciplab = downloads
    prepare_kaggle(tmp_path / "d", ciplab=ciplab, ciplab_split=(0.5, 0.25, 0.25), progress=False)
    counts = _manifest(tmp_path / "d").query("split != 'test_ciplab'")["split"].value_counts().to_dict()
    assert counts == {"train": 12, "valid": 6, "test": 6}


def test_duplicates_across_splits_are_dropped_and_reported(downloads, tmp_path):
    k140, _ = downloads
    base = k140 / "real_vs_fake/real-vs-fake"
    train_file = sorted((base / "train/fake").iterdir())[0]
    shutil.copy(train_file, base / "test/fake/copy_of_train.jpg")
    shutil.copy(train_file, base / "train/fake/copy_in_train.jpg")
    report = prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False)
    assert report.duplicates_dropped == 2 and report.cross_split_duplicates == 1
    manifest = _manifest(tmp_path / "out")
    assert manifest["sha256"].is_unique
    import hashlib

    sha = hashlib.sha256(train_file.read_bytes()).hexdigest()
    assert list(manifest[manifest["sha256"] == sha]["split"]) == ["train"]  # train wins over test
    rejected = pd.read_csv(tmp_path / "out" / "rejected.csv")
    assert len(rejected) == 2 and rejected["reason"].str.startswith("duplicate of").all()


def test_identical_bytes_with_both_labels_are_rejected(downloads, tmp_path):
    k140, _ = downloads
    base = k140 / "real_vs_fake/real-vs-fake"
    real_file = sorted((base / "train/real").iterdir())[0]
    shutil.copy(real_file, base / "train/fake/mislabelled.jpg")
    report = prepare_kaggle(tmp_path / "out", kaggle_140k=k140, progress=False)
    rejected = pd.read_csv(tmp_path / "out" / "rejected.csv")
    assert report.rejected == 2
    assert rejected["reason"].str.contains("both real and fake").all()
    assert str(real_file) not in set(_manifest(tmp_path / "out")["original"])
