"""The measurements behind the robustness benchmarks (benchmarks/residual_spectrum.py,
image_border.py, robustness.py), on images whose answer is known: the NPR residual and its
spectrum, the border ring replaced, the probe's bands and features, the interior variant."""

from __future__ import annotations

import pytest


def test_the_residual_spectrum_is_flat_for_a_nearest_up_sampled_image_and_peaks_where_cells_repeat(bench):
    import numpy as np
    import residual_spectrum

    small = np.random.default_rng(0).uniform(0, 255, (1, 8, 8, 3))
    up = small.repeat(2, axis=1).repeat(2, axis=2)  # 16 px, every 2x2 cell one value: no residual
    np.testing.assert_allclose(residual_spectrum.residual_spectra(up), 0, atol=1e-9)
    marked = up.copy()
    marked[:, 1::2, 1::2, :] += 20  # each cell's bottom-right pixel: a pattern repeating every 2 px
    spectrum = residual_spectrum.residual_spectra(marked)[0]
    peaks = {(int(i), int(j)) for i, j in zip(*np.nonzero(np.isclose(spectrum, spectrum.max())))}
    assert peaks == {(0, 0), (0, 8), (8, 0), (8, 8)}  # DC and the Nyquist frequencies, nothing else
    assert residual_spectrum.block_features(np.zeros((2, 64, 64))).shape == (2, 64)


def test_the_border_ring_is_replaced_by_the_interiors_edge_and_the_interior_kept(bench):
    import io

    import numpy as np
    from image_border import ring_replaced
    from PIL import Image

    pixels = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    out = np.asarray(Image.open(io.BytesIO(ring_replaced(buffer.getvalue(), 2))))
    assert out.shape == pixels.shape
    assert (out[2:6, 2:6] == pixels[2:6, 2:6]).all()  # the interior untouched
    assert (out[0, 2:6] == pixels[2, 2:6]).all() and (out[3, 0] == pixels[3, 2]).all()  # edge-extended
    assert (out[0, 0] == pixels[2, 2]).all() and (out[7, 7] == pixels[5, 5]).all()
    assert not (out == pixels).all()


def test_the_band_probe_reads_each_band_of_the_residual_alone(bench):
    import numpy as np
    from image_border import band_features, parse_bands, ring_distance
    from residual_spectrum import npr_residual

    assert ring_distance(6).tolist() == [
        [0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 1, 2, 2, 1, 0],
        [0, 1, 2, 2, 1, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    cells = np.arange(2 * 4 * 4 * 3, dtype=float).reshape(2, 4, 4, 3)
    up = np.repeat(np.repeat(cells, 2, axis=1), 2, axis=2)  # every 2x2 cell one colour
    assert np.array_equal(npr_residual(up), np.zeros_like(up))
    marked = up.copy()
    marked[:, 0, 1] += 5  # a trace on the border only, in phase (0, 1)
    residual = npr_residual(marked)
    assert residual[:, 0, 1].tolist() == [[5, 5, 5]] * 2 and np.count_nonzero(residual) == 2 * 3
    distance = ring_distance(8)
    border, interior = band_features(residual, distance == 0), band_features(residual, distance >= 1)
    assert border.shape == interior.shape == (2, 27)
    border, interior = border.reshape(2, 3, 3, 3), interior.reshape(2, 3, 3, 3)  # phase, statistic, channel
    # phase (0, 1) holds 7 of the border's 28 pixels, one of them marked: its mean and mean |r| are 5/7
    assert np.allclose(border[:, 0, :2], 5 / 7) and np.allclose(border[:, 0, 2], np.log(25 / 7 + 1e-3))
    assert np.allclose(border[:, 1:, :2], 0) and np.allclose(interior[:, :, :2], 0)  # nothing elsewhere
    assert np.allclose(interior[:, :, 2], np.log(1e-3))
    assert parse_bands("0-1, 6-31,5") == [(0, 1), (6, 31), (5, 5)]
    for wrong in ("x", "3-1", "-1-2"):
        with pytest.raises(SystemExit, match="--bands"):
            parse_bands(wrong)


def test_the_interior_variant_crops_the_border_before_the_backbone(bench):
    import keras_tuner as kt
    from robustness import interior_variant

    from deepfake_detection.architectures import ARCHITECTURES, get_architecture

    name = interior_variant("npr", 6)
    try:
        assert name == "npr_interior6"
        model = get_architecture(name, 64).build(kt.HyperParameters())
        assert tuple(model.get_layer("ignore_border").output.shape[1:3]) == (52, 52)
        assert model.get_layer("stem_conv").input.shape[1] == 52
    finally:
        ARCHITECTURES.pop(name, None)
