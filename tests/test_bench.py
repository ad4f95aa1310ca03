"""The offline benchmark builder: real content, two generator families, determinism, and the
shortcut checks that keep it from being trivially separable or saturated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfake_detection.data.bench import GENERATOR_FAMILIES
from deepfake_detection.data.checks import check_dataset
from deepfake_detection.data.photos import load_bundled_photos
from deepfake_detection.data.prepare import prepare_bench


def test_bundled_photos_are_real_colour_photographs():
    photos = load_bundled_photos()
    names = {p.name for p in photos}
    assert {"skimage:astronaut", "skimage:coffee", "matplotlib:grace_hopper", "sklearn:china"} <= names
    for photo in photos:
        assert photo.pixels.dtype == np.uint8 and photo.pixels.ndim == 3 and photo.pixels.shape[2] == 3
        assert min(photo.pixels.shape[:2]) >= 128


def test_bench_layout_manifest_and_files(bench_dataset):
    manifest = pd.read_csv(bench_dataset / "manifest.csv", keep_default_na=False)
    assert list(manifest.columns[:8]) == ["path", "split", "label", "target", "source", "sha256", "width", "height"]
    assert (manifest.groupby("label").size() == 24).all()
    assert set(manifest["split"]) == {"train", "valid", "test"}
    assert ((manifest["label"] == "fake") == (manifest["target"] == 1)).all()
    fakes, reals = manifest[manifest.label == "fake"], manifest[manifest.label == "real"]
    assert set(fakes["generator"]) == set(GENERATOR_FAMILIES)
    assert set(reals["generator"]) == {""}
    assert manifest["photo"].str.contains(":").all()
    for row in manifest.itertuples():
        assert row.path.startswith(f"{row.split}/{row.label}/")
        with Image.open(bench_dataset / row.path) as picture:
            assert picture.format == "JPEG" and picture.size == (32, 32)
    rejected = pd.read_csv(bench_dataset / "rejected.csv")
    assert list(rejected.columns) == ["path", "reason"] and rejected.empty


@pytest.mark.slow  # three builds, each training its generators
def test_bench_is_deterministic_for_a_seed(tmp_path):
    def build(name, seed):
        prepare_bench(
            tmp_path / name, image_size=16, num_images=6, seed=seed, generator_steps=3, progress=False, check=False
        )
        return pd.read_csv(tmp_path / name / "manifest.csv", keep_default_na=False)

    first, again, other = build("a", 1), build("b", 1), build("c", 2)
    pd.testing.assert_frame_equal(first, again)
    assert set(first["sha256"]) != set(other["sha256"])


@pytest.mark.slow  # builds a benchmark, training its generators
def test_clean_bench_is_png(tmp_path):
    prepare_bench(
        tmp_path / "clean", image_size=16, num_images=6, difficulty=0.0, generator_steps=2, progress=False, check=False
    )
    manifest = pd.read_csv(tmp_path / "clean" / "manifest.csv")
    assert manifest["path"].str.endswith(".png").all()


@pytest.fixture(scope="module")
def shortcut_numbers(tmp_path_factory):
    """Shortcut checks on a small build at the default difficulty and on the clean build."""
    numbers = {}
    for difficulty in (0.5, 0.0):
        output = tmp_path_factory.mktemp("shortcut") / f"d{difficulty}"
        prepare_bench(
            output,
            image_size=32,
            num_images=250,
            difficulty=difficulty,
            seed=7,
            split=(0.5, 0.1, 0.4),
            progress=False,
            check=False,
        )
        numbers[difficulty] = check_dataset(output)
    print("shortcut checks:", numbers)
    return numbers


@pytest.mark.slow  # two 500-image builds, generators trained 150 steps each
def test_colour_histograms_stay_near_chance(shortcut_numbers):
    assert shortcut_numbers[0.5]["colour_histogram_auc"] <= 0.65
    assert shortcut_numbers[0.0]["colour_histogram_auc"] <= 0.65


@pytest.mark.slow
def test_spectrum_is_informative_but_not_saturated(shortcut_numbers):
    assert 0.70 <= shortcut_numbers[0.5]["spectrum_auc"] <= 0.95
    # The clean generator output is far easier: post-processing is what hides the fingerprint.
    assert shortcut_numbers[0.0]["spectrum_auc"] >= 0.9
    assert shortcut_numbers[0.0]["spectrum_auc"] > shortcut_numbers[0.5]["spectrum_auc"] + 0.05


def test_crops_have_content():
    from deepfake_detection.data.photos import MIN_CROP_STD, random_crops

    photos = load_bundled_photos()
    crops, names = random_crops(photos, 300, size=32, rng=np.random.default_rng(0))
    assert crops.shape == (300, 32, 32, 3) and len(names) == 300
    assert (crops.reshape(300, -1).std(axis=1) >= MIN_CROP_STD).mean() > 0.99
