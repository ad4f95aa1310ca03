"""The tf.data input pipeline: labels, shapes, preprocessing, augmentation, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from deepfake_detection.data.pipeline import Augment, load_manifest, make_dataset, preprocess, sample
from deepfake_detection.errors import DatasetError


def _collect(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def test_labels_follow_the_manifest_fake_is_one(bench_dataset):
    manifest = load_manifest(bench_dataset, "valid")
    images, labels = _collect(make_dataset(bench_dataset, "valid", image_size=32, batch_size=5))
    assert images.shape == (len(manifest), 32, 32, 3) and images.dtype == np.float32
    expected = (manifest["label"] == "fake").astype(np.float32).to_numpy()
    np.testing.assert_array_equal(labels, expected)
    assert images.min() >= 0 and images.max() <= 255 and images.std() > 10


def test_images_match_a_plain_pil_decode(bench_dataset):
    from PIL import Image

    manifest = load_manifest(bench_dataset, "test")
    images, _ = _collect(make_dataset(bench_dataset, "test", image_size=32, batch_size=64))
    for i, path in enumerate(manifest["file"][:5]):
        reference = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        assert np.abs(images[i] - reference).mean() < 2.0  # libjpeg variants may differ by a level


def test_resizes_to_the_requested_size(bench_dataset):
    images, _ = _collect(make_dataset(bench_dataset, "test", image_size=48, batch_size=64))
    assert images.shape[1:] == (48, 48, 3)


@pytest.mark.parametrize("mode", ["unit", "vggface", "densenet"])
def test_preprocessing_modes(bench_dataset, mode):
    raw, _ = _collect(make_dataset(bench_dataset, "test", image_size=32, batch_size=64))
    done, _ = _collect(make_dataset(bench_dataset, "test", image_size=32, batch_size=64, preprocessing=mode))
    np.testing.assert_allclose(done, np.asarray(preprocess(tf.constant(raw), mode)), rtol=1e-5, atol=1e-4)
    if mode == "unit":
        assert done.max() <= 1.0
    if mode == "vggface":
        np.testing.assert_allclose(done[..., 0], raw[..., 2] - 93.5940, atol=1e-3)  # BGR, mean removed


def test_augmentation_changes_pixels_not_labels_and_is_seeded(bench_dataset):
    plain, plain_labels = _collect(make_dataset(bench_dataset, "train", image_size=32, batch_size=64))
    augment = Augment(strength=1.0, probability=1.0)
    augmented, labels = _collect(make_dataset(bench_dataset, "train", image_size=32, batch_size=64, augment=augment))
    np.testing.assert_array_equal(labels, plain_labels)
    assert augmented.shape == plain.shape
    assert np.abs(augmented - plain).mean() > 1.0
    assert augmented.min() >= 0 and augmented.max() <= 255.5
    off, _ = _collect(
        make_dataset(bench_dataset, "train", image_size=32, batch_size=64, augment=Augment(strength=0.0, flip=False))
    )
    np.testing.assert_allclose(off, plain)


def test_shuffle_keeps_every_image_once(bench_dataset):
    plain, labels = _collect(make_dataset(bench_dataset, "train", image_size=32, batch_size=64))
    shuffled, shuffled_labels = _collect(
        make_dataset(bench_dataset, "train", image_size=32, batch_size=7, shuffle=True, seed=1)
    )
    assert sorted(labels) == sorted(shuffled_labels)
    assert not np.array_equal(plain, shuffled)
    np.testing.assert_allclose(np.sort(plain.reshape(-1)), np.sort(shuffled.reshape(-1)))


def test_num_samples_caps_and_balances(bench_dataset):
    manifest = load_manifest(bench_dataset, "train")
    capped = sample(manifest, 10, seed=0)
    assert len(capped) == 10 and capped["label"].value_counts().to_dict() == {"fake": 5, "real": 5}
    assert sample(manifest, 0, seed=0).equals(manifest)
    _, labels = _collect(make_dataset(bench_dataset, "train", image_size=32, num_samples=10))
    assert len(labels) == 10 and labels.sum() == 5


def test_missing_dataset_and_split_are_clear_errors(tmp_path, bench_dataset):
    with pytest.raises(DatasetError, match="not a prepared dataset"):
        load_manifest(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="no images in split 'test_ciplab'"):
        load_manifest(bench_dataset, "test_ciplab")
