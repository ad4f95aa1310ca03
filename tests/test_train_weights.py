"""train with weights from a file: one of the wrong shape refused before anything is logged,
VGGFace16's legacy HDF5 loaded by layer name, and the pretrained weights of DenseNet-121 and
VGGFace16 where Keras and the VGGFace instructions put them, trained end to end."""

from __future__ import annotations

import contextlib
import os

import keras
import keras_tuner as kt
import numpy as np
import pytest
from conftest import write_keras2_weights
from helpers import CLEAN_ONLY, tiny_settings
from mlflow import MlflowClient

from deepfake_detection.architectures import WeightsError, get_architecture
from deepfake_detection.training import run_training


def test_weights_file_of_the_wrong_shape_is_refused(bench_dataset, tmp_path):
    other = get_architecture("npr", 32).build(kt.HyperParameters())
    other.save_weights(tmp_path / "npr.weights.h5")
    with pytest.raises(WeightsError, match="cannot load weights"):
        run_training(tiny_settings(bench_dataset, tmp_path / "outputs", weights=str(tmp_path / "npr.weights.h5")))
    assert MlflowClient().search_registered_models() == []
    with pytest.raises(WeightsError, match="neither one of"):
        get_architecture("custom_a", 32, weights=str(tmp_path / "nowhere.h5"))


def test_vggface_weights_load_by_layer_name_from_a_legacy_h5(tmp_path):
    keras.utils.set_random_seed(1)
    source = get_architecture("vggface16", 32).build(kt.HyperParameters())
    source.save(tmp_path / "vggface_like.h5")  # legacy HDF5: weights stored by layer name
    keras.utils.set_random_seed(2)
    loaded = get_architecture("vggface16", 32, weights=str(tmp_path / "vggface_like.h5")).build(kt.HyperParameters())
    for layer in ("conv1_1", "conv5_3", "embedding"):
        np.testing.assert_array_equal(
            loaded.get_layer(layer).get_weights()[0], source.get_layer(layer).get_weights()[0]
        )
    with pytest.raises(WeightsError, match="VGGFace16 weights not found"):
        os.environ["KERAS_HOME"] = str(tmp_path / "empty_keras_home")
        try:
            get_architecture("vggface16", 32, weights="vggface").build(kt.HyperParameters())
        finally:
            del os.environ["KERAS_HOME"]


@pytest.mark.train
def test_train_with_pretrained_weights_from_the_keras_cache_end_to_end(bench_dataset, tmp_path, monkeypatch):
    """``--weights imagenet`` / ``vggface`` with the files where Keras and the VGGFace instructions put
    them (locally built stand-ins in the published format): trained, registered, and the frozen
    half of the backbone still holds the file's weights."""
    from deepfake_detection.architectures.families import DENSENET_NOTOP_FILE, VGGFACE_FILE
    from deepfake_detection.model import load_detector

    home = tmp_path / "keras"
    keras.utils.set_random_seed(11)
    densenet = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(32, 32, 3))
    write_keras2_weights(densenet, home / "models" / DENSENET_NOTOP_FILE)
    vgg = get_architecture("vggface16", 32).build(kt.HyperParameters())
    write_keras2_weights(keras.Model(vgg.input, vgg.get_layer("pool5").output), home / "models/vggface" / VGGFACE_FILE)
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", None)  # no download can happen
    checks = (("densenet121", "imagenet", densenet, "conv1_conv"), ("vggface16", "vggface", vgg, "conv1_1"))
    for arch, weights, source, first_layer in checks:
        with pytest.warns(UserWarning) if arch == "densenet121" else contextlib.nullcontext():
            (result,) = run_training(
                tiny_settings(
                    bench_dataset, tmp_path / "outputs", arch=arch, weights=weights, num_samples=16, **CLEAN_ONLY
                )
            )
        params = MlflowClient().get_run(result.run_id).data.params
        assert params["weights"] == weights and params["best.fine_tune"] == "0.5"
        model = load_detector(result.model_uri).keras_model
        if arch == "densenet121":
            model = model.get_layer("densenet121_backbone")
        for mine, theirs in zip(
            model.get_layer(first_layer).get_weights(), source.get_layer(first_layer).get_weights()
        ):
            np.testing.assert_array_equal(mine, theirs)  # loaded, then frozen by fine_tune 0.5
