"""The tf.data input pipeline: labels, shapes, preprocessing, augmentation, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from deepfake_detection.data import augment as augmentation
from deepfake_detection.data.pipeline import PREPROCESSING, Augment, load_manifest, make_dataset, preprocess, sample
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


# What each architecture's input expects, from the published definitions rather than the code:
# VGGFace (rcmalli's keras-vggface, version 1) takes BGR minus its mean image; DenseNet121 in
# keras.applications takes ImageNet's "torch" normalisation of RGB in [0, 1].
VGGFACE_MEAN_BGR = np.array([93.5940, 104.7624, 129.1863])
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
PREPROCESSED = {
    "raw": lambda rgb: rgb,
    "unit": lambda rgb: rgb / 255.0,
    "vggface": lambda rgb: rgb[..., ::-1] - VGGFACE_MEAN_BGR,
    "densenet": lambda rgb: (rgb / 255.0 - IMAGENET_MEAN) / IMAGENET_STD,
}


@pytest.mark.parametrize("mode", list(PREPROCESSED))
def test_preprocessing_modes(bench_dataset, mode):
    assert set(PREPROCESSED) == set(PREPROCESSING)  # every mode the pipeline offers is checked here
    raw, _ = _collect(make_dataset(bench_dataset, "test", image_size=32, batch_size=64))
    done, _ = _collect(make_dataset(bench_dataset, "test", image_size=32, batch_size=64, preprocessing=mode))
    expected = PREPROCESSED[mode](raw.astype(np.float64))
    np.testing.assert_allclose(done, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(preprocess(tf.constant(raw), mode)), expected, rtol=1e-5, atol=1e-4)


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


def test_cache_and_shuffle_decisions_follow_the_budget():
    from deepfake_detection.data.pipeline import SHUFFLE_BUFFER, plan_input

    # The 140k train split at 224 px: 100,000 x 224 x 224 x 3 float32 = 57,422 MiB decoded, far over 2 GiB.
    full = plan_input(100_000, 224, shuffle=True, cache_budget_mb=2048)
    assert (full.cache, full.shuffle_files, full.shuffle_buffer) == (False, True, SHUFFLE_BUFFER)
    assert round(full.decoded_bytes / 2**20) == 57_422 and "streamed" in full.describe()
    assert plan_input(20_000, 224, shuffle=False, cache_budget_mb=2048).shuffle_buffer == 0  # valid / test: in order
    # A split that fits is cached and shuffled whole; a small streamed split needs no bigger buffer than itself.
    fits = plan_input(2_800, 64, shuffle=True, cache_budget_mb=2048)
    assert (fits.cache, fits.shuffle_files, fits.shuffle_buffer) == (True, False, 2_800)
    assert plan_input(2_800, 64, shuffle=True, cache_budget_mb=100).shuffle_buffer == 2_800
    assert not plan_input(2_800, 64, shuffle=True, cache_budget_mb=130).cache  # 131.25 MiB: just over
    assert plan_input(2_800, 64, shuffle=True, cache_budget_mb=0, cache=True).cache  # forced


def test_a_streamed_split_is_reshuffled_every_epoch_and_complete(bench_dataset):
    dataset = make_dataset(bench_dataset, "train", image_size=32, batch_size=8, shuffle=True, seed=1, cache_budget_mb=0)
    assert not dataset.input_plan.cache and dataset.input_plan.shuffle_files
    epochs = [_collect(dataset)[0] for _ in range(2)]
    plain, _ = _collect(make_dataset(bench_dataset, "train", image_size=32, batch_size=8, cache=False))
    for images in epochs:  # every image exactly once, bit-identical to the unshuffled decode
        np.testing.assert_array_equal(
            np.unique(images.reshape(len(images), -1), axis=0), np.unique(plain.reshape(len(plain), -1), axis=0)
        )
        assert not np.array_equal(images, plain)
    assert not np.array_equal(epochs[0], epochs[1])


def _photo_like(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random picture with fine texture on top (float32, 0..255), a stand-in for a photo."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, (size // 8, size // 8, 3))
    smooth = np.kron(coarse, np.ones((8, 8, 1)))
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).round().astype(np.float32)


def _suite_then_decode(picture: np.ndarray, name: str, size: int) -> np.ndarray:
    """What evaluation scores: the suite's degradation of the file, decoded and resized by the model's decoding."""
    import io

    from PIL import Image

    from deepfake_detection.data.pipeline import decode_bytes_and_resize
    from deepfake_detection.degradations import BY_NAME, degrade

    buffer = io.BytesIO()
    Image.fromarray(picture.astype(np.uint8)).save(buffer, format="PNG")
    return decode_bytes_and_resize(degrade(buffer.getvalue(), BY_NAME[name]), size).numpy()


@pytest.mark.parametrize(
    ("name", "train_step", "eight_bit"),
    [
        ("downscale_0.5x", lambda x: augmentation._scaled_down_and_back(x, 0.5, 64), False),
        ("downscale_0.75x", lambda x: augmentation._scaled_down_and_back(x, 0.75, 64), False),
        ("jpeg_q50", lambda x: augmentation._jpeg_again(x, (50, 50), tf.constant([1, 2])), True),
        ("blur_sigma1", lambda x: augmentation._as_saved(augmentation._gaussian_blur(x, 1.0)), True),
        ("crop_0.8", lambda x: augmentation._cropped_and_enlarged(x, 0.8, tf.constant([6 / 13, 6 / 13]), 64), False),
    ],
)
def test_the_upload_recipes_steps_do_what_the_evaluation_suite_does(name, train_step, eight_bit):
    """Training sees what evaluation scores: each step of the upload recipe, in the graph, gives the
    pixels the standard suite's degradation (Pillow, a re-encoded file, the model's decoding) gives,
    to within a grey level and a half on average (resampling kernels and JPEG coders differ
    slightly; the crop placed where the suite's centre crop lies: 6 of the 13 pixels left)."""
    picture = _photo_like()
    trained_on = train_step(tf.constant(picture)).numpy()
    scored = _suite_then_decode(picture, name, 64)
    assert np.abs(trained_on - scored).mean() < 1.5
    assert np.abs(trained_on - picture).mean() > 3.0  # and the step did change the picture
    if eight_bit:  # what a file saved after the step holds; a resized one is decoded and resized again
        np.testing.assert_array_equal(trained_on, np.round(trained_on))


def test_a_half_scale_removes_a_two_pixel_trace_from_training_images_as_from_scored_ones():
    """Why 0.5x is the hard case: a period-2 checkerboard, the trace of a 2x up-sampling decoder,
    is averaged away by the antialiased half-scale, in training as in the suite."""
    checker = np.indices((64, 64)).sum(axis=0) % 2 * 40.0 + 100.0
    picture = np.repeat(checker[..., None], 3, axis=2).astype(np.float32)
    trained_on = augmentation._scaled_down_and_back(tf.constant(picture), 0.5, 64).numpy()
    assert picture.std() == pytest.approx(20.0)
    assert trained_on.std() < 1.0 and _suite_then_decode(picture, "downscale_0.5x", 64).std() < 1.0


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_the_upload_recipe_degrades_a_strength_share_of_images_one_step_each(strength):
    picture = tf.constant(_photo_like(32))
    augment = Augment(strength=strength, flip=False, recipe="upload")
    outputs = [augmentation.augment_image(picture, tf.constant([7, i]), augment, 32).numpy() for i in range(120)]
    changed = np.array([np.abs(out - picture.numpy()).max() > 0 for out in outputs])
    # at strength 1 every image is degraded, though the mildest draws may leave some pixels as they were
    low, high = {0.0: (0, 0), 0.5: (0.35, 0.65), 1.0: (0.97, 1)}[strength]
    assert low <= changed.mean() <= high
    for out in outputs:
        assert out.shape == (32, 32, 3) and out.min() >= 0 and out.max() <= 255
    again = augmentation.augment_image(picture, tf.constant([7, 3]), augment, 32).numpy()
    np.testing.assert_array_equal(again, outputs[3])  # seeded


def test_the_paired_recipe_feeds_a_real_and_a_fake_image_in_turn(bench_dataset):
    manifest = load_manifest(bench_dataset, "train")
    augment = Augment(strength=1.0, flip=False, recipe="paired")
    images, labels = _collect(
        make_dataset(bench_dataset, "train", image_size=32, batch_size=7, augment=augment, shuffle=True)
    )
    pairs = min((manifest["label"] == "real").sum(), (manifest["label"] == "fake").sum())
    np.testing.assert_array_equal(labels, np.tile([0.0, 1.0], pairs))  # real = 0 then fake = 1, every pair
    assert images.shape == (2 * pairs, 32, 32, 3) and images.min() >= 0 and images.max() <= 255
