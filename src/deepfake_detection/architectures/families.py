"""The architectures: VGGFace16, DenseNet-121, three custom CNNs, and a classical spectral baseline."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from keras import layers

from deepfake_detection.architectures.base import EMBEDDING_LAYER, Architecture, WeightsError, load_weights_file
from deepfake_detection.errors import SettingsError

VGGFACE_URL = "https://github.com/rcmalli/keras-vggface/releases/download/v2.0/rcmalli_vggface_tf_notop_vgg16.h5"
VGGFACE_FILE = "rcmalli_vggface_tf_notop_vgg16.h5"


class VGGFace16(Architecture):
    """VGG16 topology with the VGGFace head of the original work:
    pool5 → flatten → Dense 2048 ``embedding`` → sigmoid.

    Layer names follow rcmalli's keras-vggface (``conv1_1`` … ``pool5``) so its no-top
    weights load by name.
    """

    name = "vggface16"
    preprocessing = "vggface"
    embedding_dim = 2048
    named_weights = ("vggface",)
    min_image_size = 32
    BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))

    def backbone(self, x, hp):
        for block, (filters, convs) in enumerate(self.BLOCKS, start=1):
            for conv in range(1, convs + 1):
                x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{block}_{conv}")(x)
            x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
        x = layers.Flatten(name="flatten")(x)
        return layers.Dense(self.embedding_dim, activation="relu", name=EMBEDDING_LAYER)(x)

    def load_pretrained(self, model):
        path = self.weights
        if path == "vggface":
            path = str(vggface_weights_path())
        load_weights_file(model, path, self.name)


def vggface_weights_path() -> Path:
    """The VGGFace16 no-top weights in the Keras cache, or a clear error saying how to get them.

    The file is the public rcmalli release. No checksum is published for it, so this project
    does not download it for you: fetch it once, check it, and place it in the cache (or pass
    its path as ``--weights``).
    """
    path = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models" / "vggface" / VGGFACE_FILE
    if path.is_file():
        return path
    raise WeightsError(
        f"VGGFace16 weights not found at {path}. Download {VGGFACE_URL}, place it there, "
        "or pass its path with --weights /path/to/rcmalli_vggface_tf_notop_vgg16.h5"
    )


class DenseNet121(Architecture):
    """Keras DenseNet-121 with global average pooling as the 1024-dim ``embedding``."""

    name = "densenet121"
    preprocessing = "densenet"
    embedding_dim = 1024
    named_weights = ("imagenet",)
    min_image_size = 32

    def backbone(self, x, hp):
        weights = None
        if self.weights == "imagenet":
            weights = "imagenet"
        base = keras.applications.DenseNet121(
            include_top=False, weights=weights, input_shape=(self.image_size, self.image_size, 3)
        )
        base.name = "densenet121_backbone"
        return layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER)(base(x))

    def build(self, hp):
        if self.weights == "imagenet":
            try:
                return super().build(hp)
            except Exception as error:  # typically no internet: say so plainly
                raise WeightsError(
                    f"densenet121: cannot get the ImageNet weights ({error}); pass a local weights file with --weights"
                ) from None
        return super().build(hp)

    def load_pretrained(self, model):
        if self.weights != "imagenet":  # ImageNet weights were loaded by keras.applications
            backbone = model.get_layer("densenet121_backbone")
            load_weights_file(backbone, self.weights, self.name)

    def freeze(self, model, hp):
        fraction = hp.Float("fine_tune", 0.0, 1.0, step=0.25, default=0.5)
        backbone = model.get_layer("densenet121_backbone")
        weighted = [layer for layer in backbone.layers if layer.weights]
        for layer in weighted[: int(round((1 - fraction) * len(weighted)))]:
            layer.trainable = False


class CustomA(Architecture):
    """The original custom CNN: input batch-norm, then six blocks of Conv 3x3 (16 … 512
    filters, ReLU) → MaxPool 2 → BatchNorm → Dropout (none in block 1), global average
    pooling as the 512-dim ``embedding``."""

    name = "custom_a"
    preprocessing = "unit"
    embedding_dim = 512
    min_image_size = 32  # six 2x poolings need at least 2^5 px... and one more to spare
    FILTERS = (16, 32, 64, 128, 256, 512)

    def backbone(self, x, hp):
        rate = hp.Float("block_dropout", 0.0, 0.4, step=0.1, default=0.2)
        x = layers.BatchNormalization(name="input_bn")(x)
        for block, filters in enumerate(self.FILTERS, start=1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv")(x)
            if x.shape[1] >= 2:
                x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
            x = layers.BatchNormalization(name=f"block{block}_bn")(x)
            if block > 1:
                x = layers.Dropout(rate, name=f"block{block}_dropout")(x)
        return layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER)(x)


class CustomB(Architecture):
    """Residual network of depthwise-separable convolutions, and no pooling before the first
    residual stage: generation artefacts are small and local (up-sampling checkerboards,
    blending seams), so the network keeps full resolution early and spends its parameters on
    many cheap separable filters instead of a few wide ones."""

    name = "custom_b"
    preprocessing = "unit"
    embedding_dim = 512

    def backbone(self, x, hp):
        width = hp.Choice("width", [16, 32, 48], default=32)
        stages = hp.Int("stages", 3, 4, default=3)
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem_conv")(x)
        x = layers.BatchNormalization(name="stem_bn")(x)
        x = layers.Activation("relu", name="stem_relu")(x)
        for stage in range(stages):
            filters = width * 2**stage
            shortcut = layers.Conv2D(filters, 1, strides=2, padding="same", name=f"stage{stage}_shortcut")(x)
            y = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"stage{stage}_sep1")(x)
            y = layers.BatchNormalization(name=f"stage{stage}_bn1")(y)
            y = layers.Activation("relu", name=f"stage{stage}_relu1")(y)
            y = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"stage{stage}_sep2")(y)
            y = layers.BatchNormalization(name=f"stage{stage}_bn2")(y)
            y = layers.MaxPooling2D(3, strides=2, padding="same", name=f"stage{stage}_pool")(y)
            x = layers.Add(name=f"stage{stage}_add")([y, shortcut])
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        return layers.Dense(self.embedding_dim, activation="relu", name=EMBEDDING_LAYER)(x)


def srm_kernels() -> np.ndarray:
    """Three fixed high-pass filters from the SRM steganalysis set (Fridrich and Kodovsky, 2012),
    each applied to every colour channel: ``5 x 5 x 3 x 9``."""
    first = np.zeros((5, 5))
    first[2, 1:4] = [1, -2, 1]
    second = (
        np.array([[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]])
        / 12.0
    )
    third = np.zeros((5, 5))
    third[1:4, 1:4] = [[-1, 2, -1], [2, -4, 2], [-1, 2, -1]]
    third /= 4.0
    kernels = np.zeros((5, 5, 3, 9), dtype=np.float32)
    for k, base in enumerate((first / 2.0, second, third)):
        for channel in range(3):
            kernels[:, :, channel, 3 * k + channel] = base
    return kernels


class CustomC(Architecture):
    """A network that looks at noise residuals rather than content: a fixed (non-trainable)
    bank of SRM high-pass filters removes the picture and keeps the high-frequency residue
    where generators leave their fingerprints, followed by a learnable residual-style stack."""

    name = "custom_c"
    preprocessing = "unit"
    embedding_dim = 512

    def backbone(self, x, hp):
        width = hp.Choice("width", [16, 32, 48], default=32)
        depth = hp.Int("depth", 3, 4, default=3)
        x = layers.Conv2D(
            9,
            5,
            padding="same",
            use_bias=False,
            trainable=False,
            name="srm_highpass",
            kernel_initializer=keras.initializers.Constant(srm_kernels()),
        )(x)
        x = ClipResidual(name="residual_clip")(x)
        x = layers.Conv2D(width, 3, padding="same", activation="relu", name="res_conv0")(x)
        for level in range(depth):
            filters = width * 2**level
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"res{level}_conv")(x)
            x = layers.BatchNormalization(name=f"res{level}_bn")(x)
            x = layers.Activation("relu", name=f"res{level}_relu")(x)
            x = layers.AveragePooling2D(2, name=f"res{level}_pool")(x)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        return layers.Dense(self.embedding_dim, activation="relu", name=EMBEDDING_LAYER)(x)


@keras.saving.register_keras_serializable(package="deepfake_detection")
class ClipResidual(layers.Layer):
    """Scale residuals (computed on 0..1 pixels) to grey levels/20 and truncate them to
    [-3, 3], as SRM-based detectors do, so a few strong edges do not dominate."""

    def call(self, inputs):
        return keras.ops.clip(inputs * 20.0, -3.0, 3.0)


@keras.saving.register_keras_serializable(package="deepfake_detection")
class AzimuthalSpectrum(layers.Layer):
    """The 1-D power spectrum of Durall et al. (2020): log power of the 2-D Fourier transform
    of the grey image, averaged over rings of equal spatial frequency, one value per integer
    radius from 0 to the Nyquist frequency (``bins``)."""

    def __init__(self, bins: int, **kwargs):
        super().__init__(**kwargs)
        self.bins = bins

    def build(self, input_shape):
        height, width = int(input_shape[1]), int(input_shape[2])
        fy = np.minimum(np.arange(height), height - np.arange(height))[:, None]  # unshifted frequency indices
        fx = np.minimum(np.arange(width), width - np.arange(width))[None, :]
        ring = np.floor(np.sqrt((fy * width / height) ** 2 + fx**2)).astype(int).reshape(-1)
        rings = np.zeros((height * width, self.bins), np.float32)
        inside = ring < self.bins
        rings[np.flatnonzero(inside), ring[inside]] = 1.0
        self.rings = rings / rings.sum(axis=0, keepdims=True)  # mean over each ring

    def call(self, inputs):
        ops = keras.ops
        grey = ops.mean(ops.cast(inputs, "float32"), axis=-1)
        real, imag = ops.fft2((grey, ops.zeros_like(grey)))
        power = ops.log(real**2 + imag**2 + 1e-8)
        flat = ops.reshape(power, (-1, power.shape[1] * power.shape[2]))
        return ops.matmul(flat, ops.convert_to_tensor(self.rings))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.bins)

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}


class Spectrum(Architecture):
    """A classical reference, not a CNN (after Durall et al. 2020, "Watch your up-convolution"):
    the azimuthally averaged log power spectrum (``image_size / 2`` values, standardised; the
    ``embedding``) and a logistic regression on it. GAN up-sampling leaves its mark at high
    frequencies, which this sees and nothing else: the cheap baseline every CNN should beat."""

    name = "spectrum"
    preprocessing = "unit"
    learning_rates = (1e-3, 1e-1, 3e-2)  # a logistic regression on 32 features needs larger steps

    def __init__(self, image_size: int = 64, weights: str = "none"):
        super().__init__(image_size, weights)
        self.embedding_dim = image_size // 2

    def backbone(self, x, hp):
        x = AzimuthalSpectrum(self.embedding_dim, name="azimuthal_spectrum")(x)
        return layers.BatchNormalization(name=EMBEDDING_LAYER)(x)  # learned standardisation of each ring


ARCHITECTURES: dict[str, type[Architecture]] = {
    cls.name: cls for cls in (VGGFace16, DenseNet121, CustomA, CustomB, CustomC, Spectrum)
}


def get_architecture(name: str, image_size: int = 64, weights: str = "none") -> Architecture:
    """Instantiate the HyperModel registered as ``name``."""
    try:
        cls = ARCHITECTURES[name]
    except KeyError:
        raise SettingsError(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}") from None
    return cls(image_size=image_size, weights=weights)


def parse_architectures(text: str) -> list[str]:
    """``"all"`` or a comma list → architecture names, validated."""
    names = list(ARCHITECTURES) if text.strip() == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown or not names:
        raise SettingsError(
            f"unknown architecture(s) {', '.join(unknown) or repr(text)}; "
            f"choose 'all' or from {', '.join(ARCHITECTURES)}"
        )
    return names
