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

from deepfake_detection.architectures import ARCHITECTURES, EMBEDDING_LAYER, OUTPUT_LAYER, WeightsError
from deepfake_detection.architectures.families import VGGFACE_URL

COMMON = {"dropout": 0.3, "augment": 0.5, "learning_rate": 1e-3}
# The hyperparameters each architecture registers when built from an empty HyperParameters
# (without pretrained weights, so no ``fine_tune``), with their defaults as written in the code.
DEFAULTS = {
    "vggface16": COMMON,
    "densenet121": COMMON,
    "custom_a": {"block_dropout": 0.2, **COMMON},
    "custom_b": {"width": 32, "stages": 3, **COMMON},
    "custom_c": {"width": 32, "depth": 3, **COMMON},
    "spectrum": {**COMMON, "learning_rate": 3e-2},
}
MIN_IMAGE_SIZE = {"vggface16": 32, "densenet121": 32, "custom_a": 32, "custom_b": 16, "custom_c": 16, "spectrum": 16}
EMBEDDING_UNITS = {"vggface16": 2048, "densenet121": 1024, "custom_a": 512, "custom_b": 512, "custom_c": 512}
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


def test_every_architecture_is_covered():
    assert set(DEFAULTS) == set(MIN_IMAGE_SIZE) == set(ARCHITECTURES)


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_and_their_defaults(name):
    architecture, hp, _ = build(name)
    assert hp.values == pytest.approx(DEFAULTS[name])
    assert {p.name: p.default for p in hp.space} == pytest.approx(DEFAULTS[name])
    assert hp.get("learning_rate") == architecture.learning_rates[2]
    assert "fine_tune" not in hp.values  # only with pretrained weights


@pytest.mark.parametrize("name", NAMES)
def test_model_layers_and_output(name):
    architecture, _, model = build(name)
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


@pytest.mark.parametrize("name", NAMES)
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


def test_custom_b_fixed_width_and_stages():
    hp = kt.HyperParameters()
    hp.Fixed("width", 16)
    hp.Fixed("stages", 4)
    _, _, model = build("custom_b", hp)
    assert model.get_layer("stem_conv").filters == 16
    assert [model.get_layer(f"stage{s}_sep2").filters for s in range(4)] == [16, 32, 64, 128]
    with pytest.raises(ValueError):
        model.get_layer("stage4_add")


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


@pytest.mark.parametrize("name", ["custom_a", "custom_b", "custom_c"])
def test_a_weights_file_is_loaded_and_adds_fine_tune(name, tmp_path):
    _, _, model = build(name)
    path = tmp_path / f"{name}.weights.h5"
    model.save_weights(path)
    saved = model.get_layer(EMBEDDING_LAYER).get_weights()

    _, hp, loaded = build(name, weights=str(path))
    assert hp.get("fine_tune") == 0.5
    assert set(hp.values) == set(DEFAULTS[name]) | {"fine_tune"}
    for mine, theirs in zip(loaded.get_layer(EMBEDDING_LAYER).get_weights(), saved):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(("fine_tune", "trainable"), [(0.0, False), (1.0, True)])
def test_fixed_fine_tune_freezes_the_backbone(fine_tune, trainable, tmp_path):
    _, _, model = build("custom_a")
    path = tmp_path / "custom_a.weights.h5"
    model.save_weights(path)

    hp = kt.HyperParameters()
    hp.Fixed("fine_tune", fine_tune)
    _, _, loaded = build("custom_a", hp, weights=str(path))
    backbone = [layer for layer in loaded.layers if layer.weights and layer.name not in (EMBEDDING_LAYER, OUTPUT_LAYER)]
    assert backbone and all(layer.trainable is trainable for layer in backbone)
    assert loaded.get_layer(OUTPUT_LAYER).trainable


@pytest.mark.filterwarnings("ignore:Skipping nested container:UserWarning")  # keras, on the mismatched file
def test_weights_that_do_not_fit_are_a_weights_error(tmp_path):
    _, _, other = build("custom_b")
    path = tmp_path / "custom_b.weights.h5"
    other.save_weights(path)
    with pytest.raises(WeightsError, match=re.escape(f"custom_c: cannot load weights from {path}")):
        build("custom_c", weights=str(path))

    unrelated = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="unrelated")])
    unrelated.save(tmp_path / "unrelated.keras")
    with pytest.raises(WeightsError, match="no layer of .*unrelated.keras matches a layer of custom_c"):
        build("custom_c", weights=str(tmp_path / "unrelated.keras"))
