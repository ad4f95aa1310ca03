"""Every architecture as a keras-tuner HyperModel: its hyperparameters and their defaults, fixed
values honoured, the ``embedding`` and ``p_fake`` layers, and the inputs it refuses.

Models are built at the smallest image size each architecture accepts, so the whole file is fast.
"""

from __future__ import annotations

import re

import keras
import keras_tuner as kt
import numpy as np
import pytest
from conftest import write_keras2_weights
from helpers import build_params

from deepfake_detection.architectures import (
    ARCHITECTURES,
    EMBEDDING_LAYER,
    OUTPUT_LAYER,
    WeightsError,
    get_architecture,
)
from deepfake_detection.architectures.families import VGGFACE_URL

COMMON = {"dropout": 0.3, "augment": 0.5, "learning_rate": 1e-3, "weight_decay": 1e-4, "label_smoothing": 0.05}
# The hyperparameters each architecture registers when built from an empty HyperParameters
# (without pretrained weights, so no ``fine_tune``), with their defaults as written in the code.
DEFAULTS = {
    "vggface16": {"input": "npr", **COMMON, "augment": 0.0},
    "densenet121": {"input": "npr", **COMMON},
    "custom_a": {"block_dropout": 0.2, "input": "npr", **COMMON},
    "custom_c": {"width": 32, "depth": 3, **COMMON},
    "npr": {"width": 32, "stages": 3, **COMMON, "augment": 0.75},
    "spectrum": {**COMMON, "learning_rate": 3e-2},
}
MIN_IMAGE_SIZE = {"vggface16": 32, "densenet121": 32, "custom_a": 32, "custom_c": 16, "npr": 16, "spectrum": 16}
EMBEDDING_UNITS = {"vggface16": 2048, "densenet121": 1024, "custom_a": 512, "custom_c": 512, "npr": 512}
NAMES = sorted(ARCHITECTURES)


@pytest.fixture(scope="module", autouse=True)
def clear_session_after_the_module():
    yield
    keras.backend.clear_session()


def build(name: str, hp: kt.HyperParameters | None = None, weights: str = "none"):
    """Build ``name`` at its smallest image size; returns (architecture, hyperparameters, model)."""
    keras.backend.clear_session()  # a fresh session for every build: layer names stay as written
    hp = hp if hp is not None else kt.HyperParameters()
    architecture = ARCHITECTURES[name](image_size=MIN_IMAGE_SIZE[name], weights=weights)
    return architecture, hp, architecture.build(hp)


@pytest.fixture(scope="module")
def default_build():
    """:func:`build` with the defaults, once per architecture and module, for the tests that only
    read that model or save its weights: building is most of such a test's time."""
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = build(name)
        return built[name]

    yield get
    built.clear()


def test_every_architecture_is_covered():
    assert set(DEFAULTS) == set(MIN_IMAGE_SIZE) == set(ARCHITECTURES)


@pytest.mark.parametrize("name", build_params(NAMES))
def test_hyperparameters_and_their_defaults(name, default_build):
    architecture, hp, _ = default_build(name)
    assert hp.values == pytest.approx(DEFAULTS[name])
    assert {p.name: p.default for p in hp.space} == pytest.approx(DEFAULTS[name])
    assert hp.get("learning_rate") == architecture.learning_rates[2]
    assert "fine_tune" not in hp.values  # only with pretrained weights


@pytest.mark.parametrize("name", build_params(NAMES))
def test_model_layers_and_output(name, default_build):
    architecture, _, model = default_build(name)
    size = MIN_IMAGE_SIZE[name]
    assert architecture.min_image_size == size
    assert model.name == name
    assert model.input_shape == (None, size, size, 3)
    units = EMBEDDING_UNITS.get(name, size // 2)  # the spectrum has one value per ring up to Nyquist
    assert architecture.embedding_dim == units
    assert model.get_layer(EMBEDDING_LAYER).output.shape == (None, units)
    output = model.get_layer(OUTPUT_LAYER)
    assert model.output_shape == (None, 1)
    assert output.units == 1 and output.activation is keras.activations.sigmoid
    assert model.layers[-1] is output
    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, size, size, 3)).astype("float32")
    p_fake = np.asarray(model(pixels, training=False))
    assert p_fake.shape == (2, 1) and np.all((p_fake >= 0) & (p_fake <= 1))


@pytest.mark.parametrize("name", build_params(NAMES))
def test_fixed_dropout_and_learning_rate_are_honoured(name):
    hp = kt.HyperParameters()
    hp.Fixed("dropout", 0.1)
    hp.Fixed("learning_rate", 5e-4)
    hp.Fixed("augment", 0.75)
    _, hp, model = build(name, hp)
    assert model.get_layer("head_dropout").rate == pytest.approx(0.1)
    assert float(model.optimizer.learning_rate) == pytest.approx(5e-4)
    assert hp.get("augment") == 0.75
    others = {k: v for k, v in DEFAULTS[name].items() if k not in ("dropout", "learning_rate", "augment")}
    assert {k: hp.get(k) for k in others} == others


def test_custom_a_fixed_block_dropout():
    hp = kt.HyperParameters()
    hp.Fixed("block_dropout", 0.1)
    _, _, model = build("custom_a", hp)
    rates = {layer.name: layer.rate for layer in model.layers if layer.name.endswith("_dropout")}
    assert "block1_dropout" not in rates  # no dropout in the first block
    assert rates == pytest.approx({f"block{b}_dropout": 0.1 for b in range(2, 7)} | {"head_dropout": 0.3})


def test_npr_fixed_width_and_stages():
    hp = kt.HyperParameters()
    hp.Fixed("width", 16)
    hp.Fixed("stages", 2)
    _, _, model = build("npr", hp)
    assert model.get_layer("stem_conv").filters == 16
    assert [model.get_layer(f"stage{s}_block0_conv1").filters for s in range(2)] == [16, 32]
    with pytest.raises(ValueError):
        model.get_layer("stage2_block0_add")


def test_custom_c_fixed_width_and_depth():
    hp = kt.HyperParameters()
    hp.Fixed("width", 48)
    hp.Fixed("depth", 4)
    _, _, model = build("custom_c", hp)
    assert model.get_layer("res_conv0").filters == 48
    assert [model.get_layer(f"res{level}_conv").filters for level in range(4)] == [48, 96, 192, 384]
    assert not model.get_layer("srm_highpass").trainable  # the fixed high-pass bank never learns


@pytest.mark.parametrize("name", NAMES)
def test_images_below_the_minimum_size_are_refused(name):
    too_small = MIN_IMAGE_SIZE[name] - 1
    with pytest.raises(ValueError, match=f"{name} needs images of at least {MIN_IMAGE_SIZE[name]} px, got {too_small}"):
        ARCHITECTURES[name](image_size=too_small)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_weights_and_missing_files_are_refused(name, tmp_path):
    with pytest.raises(WeightsError, match=f"{name}: weights 'best' is neither one of"):
        ARCHITECTURES[name](image_size=MIN_IMAGE_SIZE[name], weights="best")
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(WeightsError, match=re.escape(f"{name}: weights '{missing}' is neither one of")):
        ARCHITECTURES[name](image_size=MIN_IMAGE_SIZE[name], weights=str(missing))


def test_named_weights_belong_to_their_architecture():
    ARCHITECTURES["vggface16"](image_size=32, weights="vggface")
    ARCHITECTURES["densenet121"](image_size=32, weights="imagenet")
    with pytest.raises(WeightsError, match="densenet121: weights 'vggface'"):
        ARCHITECTURES["densenet121"](image_size=32, weights="vggface")
    with pytest.raises(WeightsError, match="custom_a: weights 'imagenet'"):
        ARCHITECTURES["custom_a"](image_size=32, weights="imagenet")


def test_vggface_weights_not_in_the_cache_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="VGGFace16 weights not found") as error:
        build("vggface16", weights="vggface")
    assert VGGFACE_URL in str(error.value)


def test_imagenet_weights_unavailable_is_a_weights_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no internet")

    monkeypatch.setattr(keras.applications, "DenseNet121", offline)
    with pytest.raises(WeightsError, match="densenet121: cannot get the ImageNet weights .*no internet"):
        build("densenet121", weights="imagenet")


@pytest.mark.parametrize("name", ["custom_a", "custom_c", "npr"])
def test_a_weights_file_is_loaded_and_adds_fine_tune(name, tmp_path, default_build):
    _, _, model = default_build(name)
    path = tmp_path / f"{name}.weights.h5"
    model.save_weights(path)
    saved = model.get_layer(EMBEDDING_LAYER).get_weights()

    _, hp, loaded = build(name, weights=str(path))
    assert hp.get("fine_tune") == 0.5
    assert set(hp.values) == set(DEFAULTS[name]) - {"input"} | {"fine_tune"}  # pretrained: RGB input
    for mine, theirs in zip(loaded.get_layer(EMBEDDING_LAYER).get_weights(), saved):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(("fine_tune", "trainable"), [(0.0, False), (1.0, True)])
def test_fixed_fine_tune_freezes_the_backbone(fine_tune, trainable, tmp_path, default_build):
    _, _, model = default_build("custom_a")
    path = tmp_path / "custom_a.weights.h5"
    model.save_weights(path)

    hp = kt.HyperParameters()
    hp.Fixed("fine_tune", fine_tune)
    _, _, loaded = build("custom_a", hp, weights=str(path))
    backbone = [layer for layer in loaded.layers if layer.weights and layer.name not in (EMBEDDING_LAYER, OUTPUT_LAYER)]
    assert backbone and all(layer.trainable is trainable for layer in backbone)
    assert loaded.get_layer(OUTPUT_LAYER).trainable


@pytest.mark.filterwarnings("ignore:Skipping nested container:UserWarning")  # keras, on the mismatched file
def test_weights_that_do_not_fit_are_a_weights_error(tmp_path, default_build):
    _, _, other = default_build("npr")
    path = tmp_path / "npr.weights.h5"
    other.save_weights(path)
    with pytest.raises(WeightsError, match=re.escape(f"custom_c: cannot load weights from {path}")):
        build("custom_c", weights=str(path))

    unrelated = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="unrelated")])
    unrelated.save(tmp_path / "unrelated.keras")
    with pytest.raises(WeightsError, match="no layer of .*unrelated.keras matches a layer of custom_c"):
        build("custom_c", weights=str(tmp_path / "unrelated.keras"))


def test_npr_residual_is_each_pixel_minus_the_corner_of_its_2x2_cell():
    from deepfake_detection.architectures import NeighbouringPixelResidual

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (1, 6, 6, 3)).astype(np.float32)
    residual = keras.ops.convert_to_numpy(NeighbouringPixelResidual()(image))
    expected = image - np.repeat(np.repeat(image[:, ::2, ::2], 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(residual, expected, atol=1e-7)
    assert np.abs(residual).max() > 0.1  # a natural (here: random) image leaves a residual
    upsampled = np.repeat(np.repeat(image[:, :3, :3], 2, axis=1), 2, axis=2)  # nearest 2x up-sampling
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(NeighbouringPixelResidual()(upsampled)), 0.0)
    odd = keras.ops.convert_to_numpy(NeighbouringPixelResidual()(image[:, :5, :5]))
    assert odd.shape == (1, 5, 5, 3)  # an odd side keeps its size


def _no_download(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args[:2]}")

    monkeypatch.setattr(keras.utils, "get_file", refuse)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", refuse)


@pytest.mark.slow  # two DenseNet121 builds
def test_imagenet_weights_in_the_keras_cache_are_loaded_without_the_network(tmp_path, monkeypatch):
    from deepfake_detection.architectures.families import DENSENET_NOTOP_FILE

    keras.utils.set_random_seed(3)
    source = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(32, 32, 3))
    write_keras2_weights(source, tmp_path / "models" / DENSENET_NOTOP_FILE)  # where keras.applications caches it
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _no_download(monkeypatch)
    keras.utils.set_random_seed(4)
    with pytest.warns(UserWarning, match="is not the file Keras publishes"):  # a stand-in, not the real file
        _, hp, model = build("densenet121", weights="imagenet")
    backbone = model.get_layer("densenet121_backbone")
    for layer in ("conv1_conv", "conv5_block16_2_conv", "bn"):
        for mine, theirs in zip(backbone.get_layer(layer).get_weights(), source.get_layer(layer).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert hp.get("fine_tune") == 0.5


def test_vggface_weights_in_the_keras_cache_are_loaded_by_layer_name(tmp_path, monkeypatch):
    from deepfake_detection.architectures.families import VGGFACE_FILE

    keras.utils.set_random_seed(5)
    _, _, full = build("vggface16")
    notop = keras.Model(full.input, full.get_layer("pool5").output)  # rcmalli's no-top file: conv1_1 … pool5
    write_keras2_weights(notop, tmp_path / "models" / "vggface" / VGGFACE_FILE)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _no_download(monkeypatch)
    keras.utils.set_random_seed(6)
    _, _, model = build("vggface16", weights="vggface")
    for layer in ("conv1_1", "conv3_2", "conv5_3"):
        for mine, theirs in zip(model.get_layer(layer).get_weights(), notop.get_layer(layer).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert not np.array_equal(
        model.get_layer("embedding").get_weights()[0], full.get_layer("embedding").get_weights()[0]
    )


@pytest.mark.parametrize("name", build_params(["vggface16", "densenet121", "custom_a"]))
def test_generic_backbones_learn_on_the_npr_residual_from_scratch_and_on_rgb_with_weights(
    name, tmp_path, default_build
):
    _, hp, scratch = default_build(name)
    assert hp.get("input") == "npr"
    assert scratch.get_layer("npr_residual") and "preprocess" not in [layer.name for layer in scratch.layers]
    rgb = kt.HyperParameters()
    rgb.Fixed("input", "rgb")
    _, _, searched = build(name, rgb)
    assert searched.get_layer("preprocess") and "npr_residual" not in [layer.name for layer in searched.layers]
    source = searched.get_layer("densenet121_backbone") if name == "densenet121" else searched
    path = write_keras2_weights(source, tmp_path / f"{name}.h5")  # loaded by layer name
    _, hp, pretrained = build(name, weights=str(path))
    assert "input" not in hp.values and pretrained.get_layer("preprocess")  # weights were learnt on RGB


@pytest.mark.parametrize("name", build_params(ARCHITECTURES))
def test_every_architecture_has_an_embedding_of_the_documented_size(name):
    expected = {
        "vggface16": 2048,
        "densenet121": 1024,
        "custom_a": 512,
        "npr": 512,
        "custom_c": 512,
        "spectrum": 16,
    }[name]  # spectrum: one ring per frequency up to Nyquist, image_size / 2
    model = get_architecture(name, 32).build(kt.HyperParameters())
    assert model.get_layer("embedding").output.shape[-1] == expected
    assert model.output.shape[-1] == 1 and model.input.shape[1:] == (32, 32, 3)


def test_azimuthal_spectrum_finds_the_frequency_of_a_stripe_pattern():
    from deepfake_detection.architectures.families import AzimuthalSpectrum

    size, frequency = 32, 5
    stripes = np.cos(2 * np.pi * frequency * np.arange(size) / size)[None, :] * np.ones((size, 1))
    images = np.repeat((0.5 + 0.4 * stripes)[None, :, :, None], 3, axis=-1).astype(np.float32)
    flat = np.full_like(images, 0.5)
    layer = AzimuthalSpectrum(size // 2)
    spectrum, spectrum_flat = keras.ops.convert_to_numpy(layer(np.concatenate([images, flat])))
    assert spectrum.shape == (16,)
    assert int(np.argmax(spectrum[1:])) + 1 == frequency  # the stripes' ring stands out, DC aside
    assert spectrum[frequency] - spectrum_flat[frequency] > 1  # mean log power of the ring rises
    np.testing.assert_allclose(spectrum[1:frequency], spectrum_flat[1:frequency], atol=1e-3)
    restored = AzimuthalSpectrum.from_config(layer.get_config())
    assert restored.bins == 16
