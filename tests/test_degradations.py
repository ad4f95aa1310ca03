"""The degradation suite: each degradation does what its name says to a known image, is a pure
function (the same input and seed give the same bytes) and knows nothing of the image's class."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepfake_detection import degradations as d
from deepfake_detection.errors import SettingsError


def _image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(pixels.astype(np.uint8))


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert("RGB"), dtype=float)


def _texture(size=(48, 64), seed=0) -> np.ndarray:
    """A smooth gradient with some detail: what JPEG and blur have something to remove from."""
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]]
    base = 60 + 2 * cols + rows + 20 * np.sin(cols / 1.5) * np.cos(rows / 2.0)
    return np.clip(np.stack([base, base[::-1], np.roll(base, 7, axis=1)], -1), 0, 255)


def test_the_standard_suite_names_the_eleven_degradations_of_the_issue():
    assert [x.name for x in d.suite("standard")] == [
        "jpeg_q90",
        "jpeg_q75",
        "jpeg_q50",
        "downscale_0.75x",
        "downscale_0.5x",
        "upscale_1.5x",
        "blur_sigma0.5",
        "blur_sigma1",
        "noise_sigma2",
        "noise_sigma5",
        "crop_0.8",
    ]
    assert d.suite("none") == ()  # clean only
    assert [x.name for x in d.suite("jpeg_q50, downscale_0.5x,jpeg_q50")] == ["jpeg_q50", "downscale_0.5x"]
    with pytest.raises(SettingsError, match="unknown degradation jpeg_q10"):
        d.suite("jpeg_q10")


def test_jpeg_encodes_at_the_quality_asked_lower_quality_losing_more():
    picture = _image(_texture())
    original = np.asarray(picture, dtype=float)
    errors, sizes = [], []
    for quality in (90, 75, 50):
        data = d.jpeg(picture, quality)
        with Image.open(io.BytesIO(data)) as decoded:
            assert decoded.format == "JPEG" and decoded.size == picture.size
        errors.append(np.abs(_pixels(data) - original).mean())
        sizes.append(len(data))
    assert 0 < errors[0] < errors[1] < errors[2] < 10  # lossy, more so at lower quality, still the same picture
    assert sizes[0] > sizes[1] > sizes[2]


def test_rescale_changes_the_size_by_the_factor_and_keeps_a_flat_image_flat():
    flat = _image(np.full((48, 64, 3), 137))
    assert d.rescale(flat, 0.5).size == (32, 24)
    assert d.rescale(flat, 0.75).size == (48, 36)
    assert d.rescale(flat, 1.5).size == (96, 72)
    assert np.all(np.asarray(d.rescale(flat, 0.5)) == 137)
    # shrinking averages: a one-pixel checkerboard becomes (close to) flat grey
    checker = _image(np.kron((np.indices((24, 32)).sum(0) % 2) * 255, np.ones((1, 1)))[..., None].repeat(3, -1))
    small = np.asarray(d.rescale(checker, 0.5), dtype=float)
    assert abs(small.mean() - 127.5) < 3 and small.std() < 10


def test_blur_spreads_a_point_with_the_standard_deviation_asked():
    for sigma in (0.5, 1.0):
        point = np.zeros((41, 41, 3))
        point[20, 20] = 255
        spread = np.asarray(d.blur(_image(point), sigma), dtype=float)[..., 0]
        weights = spread / spread.sum()
        rows = np.arange(41)[:, None] - 20
        measured = np.sqrt((weights * rows**2).sum())
        assert measured == pytest.approx(sigma, rel=0.3)
        assert spread[20, 20] < 255  # the point itself lost energy to its neighbours


def test_noise_adds_zero_mean_gaussian_noise_of_sigma_grey_levels_fixed_by_its_seed():
    grey = _image(np.full((64, 64, 3), 128))
    for sigma in (2.0, 5.0):
        noisy = np.asarray(d.noise(grey, sigma, seed=7), dtype=float) - 128
        assert abs(noisy.mean()) < 0.2
        assert noisy.std() == pytest.approx(sigma, rel=0.1)
    same = np.asarray(d.noise(grey, 5.0, seed=7))
    assert np.array_equal(same, np.asarray(d.noise(grey, 5.0, seed=7)))
    assert not np.array_equal(same, np.asarray(d.noise(grey, 5.0, seed=8)))


def test_centre_crop_keeps_the_middle_share_of_each_side_unscaled():
    columns = np.tile(np.arange(50, dtype=float)[None, :, None], (50, 1, 3))  # each pixel says its column
    cropped = np.asarray(d.centre_crop(_image(columns), 0.8))
    assert cropped.shape == (40, 40, 3)
    assert cropped[0, 0, 0] == 5 and cropped[0, -1, 0] == 44  # 5 px off each side, values untouched


def test_degrade_applies_it_to_the_file_and_encodes_it_again_the_same_way_every_time():
    data = _png(_image(_texture()))
    assert d.degrade(data, None) == data  # clean: the file as it is
    for degradation in d.STANDARD:
        once = d.degrade(data, degradation, seed=3)
        assert once == d.degrade(data, degradation, seed=3)  # pure: same file, same seed, same bytes
        with Image.open(io.BytesIO(once)) as picture:
            assert picture.format == ("JPEG" if degradation.family == "jpeg" else "PNG")
        assert not np.array_equal(_pixels(once)[:8, :8], _pixels(data)[:8, :8])  # it changed the picture
    noise = d.BY_NAME["noise_sigma5"]
    assert d.degrade(data, noise, seed=3) != d.degrade(data, noise, seed=4)
    # another file gets other noise under the same seed
    other = _png(_image(_texture()[::-1]))
    first = _pixels(d.degrade(data, noise, seed=3)) - _pixels(data)
    second = _pixels(d.degrade(other, noise, seed=3)) - _pixels(other)
    assert not np.array_equal(first, second[::-1])


class _Brightness:
    """A stand-in network: p_fake = mean brightness, so every degradation moves the scores."""

    def predict_on_batch(self, x):
        return x.mean(axis=(1, 2, 3)) / 255


def test_scoring_again_with_kept_inputs_degrades_nothing_twice_and_scores_the_same(tmp_path, monkeypatch):
    from deepfake_detection import robustness
    from deepfake_detection.model import DeepfakeDetector, DetectorConfig

    files = []
    for i in range(6):
        files.append(tmp_path / f"{i}.png")
        files[-1].write_bytes(_png(_image(_texture((40, 40), seed=i) * (0.5 + i / 10))))
    (tmp_path / "empty.png").write_bytes(b"")
    files.append(tmp_path / "empty.png")
    y = np.array([0, 1, 0, 1, 0, 1, 1])
    detector = DeepfakeDetector.of(_Brightness(), DetectorConfig("brightness", 32, 0.5))
    made = []
    real = robustness.prepare_degraded
    monkeypatch.setattr(robustness, "prepare_degraded", lambda *args: made.append(args[3].name) or real(*args))
    read = [f.read_bytes for f in files]
    kept = robustness.Inputs()
    first = robustness.score(detector, read, y, inputs=kept, batch_size=4)
    assert sorted(made) == sorted(x.name for x in d.suite("standard"))
    again = robustness.score(detector, read, y, inputs=kept, batch_size=4)
    assert len(made) == 11  # nothing degraded or decoded a second time
    made.clear()
    unkept = robustness.score(detector, read, y, inputs=robustness.Inputs(max_bytes=0), batch_size=4)
    assert len(made) == 11  # a cache too small for anything keeps nothing
    for other in (again, unkept):
        assert other.errors == first.errors
        for name, p in first.p_fake.items():
            np.testing.assert_array_equal(other.p_fake[name], p)
    assert all(errors[-1] == "empty file (0 bytes)" for errors in first.errors.values())
    assert first.p_fake["blur_sigma1"][0] != first.p_fake["none"][0]  # the degradations were applied


def test_scoring_passes_carry_as_many_pixels_as_256_rows_at_64_px_never_fewer_than_the_training_batch():
    from deepfake_detection.robustness import scoring_batch

    assert scoring_batch(32, 64) == 256
    assert scoring_batch(32, 32) == 1024
    assert scoring_batch(32, 128) == 64
    assert scoring_batch(32, 224) == 32  # 20 rows of 224 px would be fewer than the training batch
