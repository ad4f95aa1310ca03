"""The architectures: VGGFace16, DenseNet-121, two custom CNNs, NPR (an up-sampling-trace detector)
and a classical spectral baseline."""

from __future__ import annotations

import os
import warnings
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
    weights load by name. Trained from scratch (``weights=none``) it is VGG16-BN, as
    torchvision's ``vgg16_bn``: batch normalisation between each convolution and its ReLU, He
    initialisation: without them the 13-layer plain stack stayed at chance for three epochs from
    scratch on the 2,000-per-class benchmark. The pretrained VGGFace weights were learnt without
    batch normalisation, so with weights there is none, and the input is RGB (from scratch, the
    NPR residual by default: hyperparameter ``input``).
    """

    name = "vggface16"
    augment = 0.0  # from scratch it has two or three epochs to find the artefact: nothing hides it
    seconds_per_kimage = 24.3
    preprocessing = "vggface"
    embedding_dim = 2048
    named_weights = ("vggface",)
    inputs = ("npr", "rgb")
    min_image_size = 32
    BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))

    def backbone(self, x, hp):
        batch_norm = not self.pretrained
        for block, (filters, convs) in enumerate(self.BLOCKS, start=1):
            for conv in range(1, convs + 1):
                name = f"conv{block}_{conv}"
                if batch_norm:
                    x = layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal", name=name)(x)
                    x = layers.BatchNormalization(name=f"{name}_bn")(x)
                    x = layers.Activation("relu", name=f"{name}_relu")(x)
                else:
                    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
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
    path = keras_cache() / "vggface" / VGGFACE_FILE
    if path.is_file():
        return path
    raise WeightsError(
        f"VGGFace16 weights not found at {path}. Download {VGGFACE_URL}, place it there, "
        "or pass its path with --weights /path/to/rcmalli_vggface_tf_notop_vgg16.h5"
    )


class DenseNet121(Architecture):
    """Keras DenseNet-121 with global average pooling as the 1024-dim ``embedding``. From scratch
    its input is the NPR residual by default; with ImageNet weights, RGB."""

    name = "densenet121"
    seconds_per_kimage = 12.1
    preprocessing = "densenet"
    embedding_dim = 1024
    named_weights = ("imagenet",)
    inputs = ("npr", "rgb")
    min_image_size = 32

    def backbone(self, x, hp):
        download = self.weights == "imagenet" and imagenet_weights_path() is None  # keras fetches them
        base = keras.applications.DenseNet121(
            include_top=False,
            weights="imagenet" if download else None,
            input_shape=(self.image_size, self.image_size, 3),
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
        path = imagenet_weights_path() if self.weights == "imagenet" else Path(self.weights)
        if path is None:  # keras.applications downloaded the ImageNet weights and loaded them
            return
        if self.weights == "imagenet" and _md5(path) != DENSENET_NOTOP_MD5:
            warnings.warn(f"{path} is not the file Keras publishes (MD5 differs); loading it anyway", stacklevel=2)
        load_weights_file(model.get_layer("densenet121_backbone"), str(path), self.name)

    def freeze(self, model, hp):
        fraction = hp.Float("fine_tune", 0.0, 1.0, step=0.25, default=0.5)
        backbone = model.get_layer("densenet121_backbone")
        weighted = [layer for layer in backbone.layers if layer.weights]
        for layer in weighted[: int(round((1 - fraction) * len(weighted)))]:
            layer.trainable = False


DENSENET_NOTOP_FILE = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
DENSENET_NOTOP_MD5 = "30ee3e1110167f948a6b9946edeeb738"  # keras.applications.densenet's file_hash


def keras_cache() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models"


def imagenet_weights_path() -> Path | None:
    """Keras' DenseNet-121 ImageNet no-top weights where ``keras.applications`` caches them, if there.

    Found there, they are loaded from the file (no network); otherwise keras.applications
    downloads them. A file copied there by hand from a machine that has them works offline.
    """
    path = keras_cache() / DENSENET_NOTOP_FILE
    return path if path.is_file() else None


def _md5(path: Path) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CustomA(Architecture):
    """The original custom CNN: input batch-norm, then six blocks of Conv 3x3 (16 … 512
    filters, ReLU) → MaxPool 2 → BatchNorm → Dropout (none in block 1), global average
    pooling as the 512-dim ``embedding``. From scratch it reads the NPR residual by default
    (hyperparameter ``input``), as VGGFace16 and DenseNet-121 do."""

    name = "custom_a"
    seconds_per_kimage = 1.8
    inputs = ("npr", "rgb")
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
    seconds_per_kimage = 3.4
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


class NPR(Architecture):
    """A small ResNet on the neighbouring-pixel residual (after Tan et al., "Rethinking the
    Up-Sampling Operations in CNN-based Generative Network for Generalizable Deepfake Detection",
    CVPR 2024): the residual of 2x nearest down-then-up-sampling (:class:`NeighbouringPixelResidual`,
    in grey levels / 30), a 3x3 stem at full resolution, residual stages of two basic blocks (the
    first strided), global average pooling and a 512-dim ``embedding``. Built for the trace every
    up-sampling decoder leaves; like the paper's network it trains from scratch. It took the place
    of ``custom_b`` (depthwise-separable residual net), the slowest custom net to train and the
    last to learn when the two were tried side by side."""

    name = "npr"
    # Three images in four degraded as uploads are (the upload recipe): against 0.5, the worst
    # degraded test ROC-AUC 0.772 against 0.747, clean the same (BENCHMARKS §4).
    augment = 0.75
    # Twice the epochs of the others under a budget: its robustness comes last (0.5x down-scale
    # 0.650 after 4 epochs, 0.873 after 7, 0.918 after 14; clean 0.964, 0.997, 0.998: BENCHMARKS §4).
    plan_weight = 2.0
    seconds_per_kimage = 6.0
    inputs = ("npr",)
    embedding_dim = 512

    def backbone(self, x, hp):
        width = hp.Choice("width", [16, 32, 48], default=32)
        stages = hp.Int("stages", 2, 3, default=3)
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem_conv")(x)
        x = layers.BatchNormalization(name="stem_bn")(x)
        x = layers.Activation("relu", name="stem_relu")(x)
        for stage in range(stages):
            filters = width * 2**stage
            for block in range(2):
                strides = 2 if block == 0 else 1
                x = _basic_block(x, filters, strides, name=f"stage{stage}_block{block}")
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        return layers.Dense(self.embedding_dim, activation="relu", name=EMBEDDING_LAYER)(x)


def _basic_block(x, filters: int, strides: int, name: str):
    """ResNet's basic block: two 3x3 conv-BN, a projection shortcut where the shape changes."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


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
    seconds_per_kimage = 0.5
    preprocessing = "unit"
    learning_rates = (1e-3, 1e-1, 3e-2)  # a logistic regression on 32 features needs larger steps

    def __init__(self, image_size: int = 64, weights: str = "none"):
        super().__init__(image_size, weights)
        self.embedding_dim = image_size // 2

    def backbone(self, x, hp):
        x = AzimuthalSpectrum(self.embedding_dim, name="azimuthal_spectrum")(x)
        return layers.BatchNormalization(name=EMBEDDING_LAYER)(x)  # learned standardisation of each ring


ARCHITECTURES: dict[str, type[Architecture]] = {
    cls.name: cls for cls in (VGGFace16, DenseNet121, CustomA, CustomC, NPR, Spectrum)
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
