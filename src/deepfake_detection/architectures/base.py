"""What every architecture shares: raw-pixel input with the preprocessing inside the model,
a penultimate layer named ``embedding``, a sigmoid ``p_fake`` output, and the compile step.

Models take float32 RGB pixels in [0, 255]; the preprocessing layer is part of the saved
model, so predict and serve need nothing else to feed it.
"""

from __future__ import annotations

from pathlib import Path

import keras
import keras_tuner as kt

from deepfake_detection.errors import SettingsError, WeightsError
from deepfake_detection.evaluation import P_CLIP

EMBEDDING_LAYER = "embedding"
OUTPUT_LAYER = "p_fake"


@keras.saving.register_keras_serializable(package="deepfake_detection")
class Preprocess(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to what a backbone expects; saved with the model."""

    MODES = ("unit", "vggface", "densenet", "raw")

    def __init__(self, mode: str = "unit", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"unknown preprocessing {mode!r}; choose from {self.MODES}")
        self.mode = mode

    def call(self, inputs):
        from deepfake_detection.data.pipeline import preprocess

        return preprocess(inputs, self.mode)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="deepfake_detection")
class TemperatureScaling(keras.layers.Layer):
    """``sigmoid(logit(p) / temperature)``: the calibration fit on ``valid``, saved with the model."""

    def __init__(self, temperature: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, p_fake):
        p_fake = keras.ops.clip(p_fake, P_CLIP, 1 - P_CLIP)
        return keras.ops.sigmoid((keras.ops.log(p_fake) - keras.ops.log1p(-p_fake)) / self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="deepfake_detection")
class NeighbouringPixelResidual(keras.layers.Layer):
    """NPR (Tan et al., CVPR 2024): the image minus its 2x nearest-neighbour down- then up-sampled
    copy, i.e. each pixel minus the top-left pixel of its 2x2 cell. Up-sampling decoders make the
    four pixels of a cell depend on one another; this residual keeps that and drops the content."""

    def call(self, inputs):
        ops = keras.ops
        height, width = inputs.shape[1], inputs.shape[2]
        corner = inputs[:, ::2, ::2, :]
        up = ops.repeat(ops.repeat(corner, 2, axis=1), 2, axis=2)[:, :height, :width, :]
        return inputs - up


def calibrated(model: keras.Model, temperature: float) -> keras.Model:
    """``model`` with :class:`TemperatureScaling` on its ``p_fake`` output (same layers and weights)."""
    output = TemperatureScaling(temperature, name="calibrated_p_fake", dtype="float32")(model.outputs[0])
    return keras.Model(model.inputs, output, name=model.name)


class Architecture(kt.HyperModel):
    """A keras-tuner HyperModel for one architecture.

    Args:
        image_size: side of the square input in pixels.
        weights: ``none`` (from scratch), a named pretrained set where the architecture has
            one, or a path to a local ``.h5`` / ``.keras`` / ``.weights.h5`` file.
    """

    name: str = ""
    preprocessing: str = "unit"
    embedding_dim: int = 0
    named_weights: tuple[str, ...] = ()  # pretrained sets besides "none" and local paths
    inputs: tuple[str, ...] = ("rgb",)  # input representations offered (rgb, npr); the first is the default
    min_image_size: int = 16
    learning_rates: tuple[float, float, float] = (1e-4, 3e-3, 1e-3)  # search range and default (the peak)
    weight_decay: float = 1e-4  # AdamW's decoupled weight decay (default of the searched choice)
    augment: float = 0.5  # default augmentation strength
    plan_weight: float = 1.0  # a budget's epochs go to architectures in proportion to it (plan_epochs)
    # Training seconds per 1,000 images at 64 px measured once on a reference machine (2 vCPU, no
    # GPU; `python benchmarks/training_speed.py`): a reference figure only. A time budget is
    # planned from this machine's speed, measured before training (training/speed.py).
    seconds_per_kimage: float = 10.0

    def __init__(self, image_size: int = 64, weights: str = "none"):
        super().__init__(name=self.name, tunable=True)
        if image_size < self.min_image_size:
            raise SettingsError(f"{self.name} needs images of at least {self.min_image_size} px, got {image_size}")
        weights = str(weights or "none")
        if weights not in ("none", *self.named_weights) and not Path(weights).expanduser().is_file():
            allowed = ", ".join(("none", *self.named_weights, "a path to a weights file"))
            raise WeightsError(f"{self.name}: weights {weights!r} is neither one of ({allowed}) nor an existing file")
        self.image_size = image_size
        self.weights = weights
        # Optimizer steps the learning-rate schedule spans (warm-up, then cosine decay to zero);
        # set by the trainer before each build, 0 = a constant learning rate.
        self.training_steps = 0

    def epoch_seconds(self, train_images: int) -> float:
        """Seconds of one training epoch (validation included) on the reference machine (a reference
        figure: budgets are planned from the speed measured where they run)."""
        return self.seconds_per_kimage * train_images / 1000 * (self.image_size / 64) ** 2

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"

    # -- to be provided by each architecture ------------------------------------------
    def backbone(self, x, hp: kt.HyperParameters):
        """Layers from the preprocessed input to the ``embedding`` tensor."""
        raise NotImplementedError

    def load_pretrained(self, model: keras.Model) -> None:
        """Load ``self.weights`` into ``model`` (called only when pretrained)."""
        load_weights_file(model, self.weights, self.name)

    # -- shared -------------------------------------------------------------------------
    def build(self, hp: kt.HyperParameters) -> keras.Model:
        inputs = keras.Input((self.image_size, self.image_size, 3), name="image")
        if self.input_representation(hp) == "npr":
            x = NeighbouringPixelResidual(name="npr_residual")(inputs)
            x = keras.layers.Rescaling(1 / 30, name="npr_scale")(x)  # grey levels / 30: mostly within ±1
        else:
            x = Preprocess(self.preprocessing, name="preprocess")(inputs)
        embedding = self.backbone(x, hp)
        x = keras.layers.Dropout(hp.Float("dropout", 0.0, 0.6, step=0.1, default=0.3), name="head_dropout")(embedding)
        outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_LAYER, dtype="float32")(x)
        model = keras.Model(inputs, outputs, name=self.name)
        if model.get_layer(EMBEDDING_LAYER).output.shape[-1] != self.embedding_dim:
            raise AssertionError(f"{self.name}: the {EMBEDDING_LAYER!r} layer must have {self.embedding_dim} units")
        if self.pretrained:
            self.load_pretrained(model)
            self.freeze(model, hp)
        hp.Float("augment", 0.0, 1.0, step=0.25, default=self.augment)  # used by the input pipeline
        low, high, default = self.learning_rates
        peak = hp.Float("learning_rate", low, high, sampling="log", default=default)
        weight_decay = hp.Choice("weight_decay", [0.0, 1e-4, 1e-2], default=self.weight_decay)
        smoothing = hp.Choice("label_smoothing", [0.0, 0.05, 0.1], default=0.05)
        model.compile(
            optimizer=keras.optimizers.AdamW(learning_rate_schedule(peak, self.training_steps), weight_decay),
            loss=keras.losses.BinaryCrossentropy(label_smoothing=smoothing),
            metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
        )
        return model

    def input_representation(self, hp: kt.HyperParameters) -> str:
        """``rgb`` (the preprocessed pixels) or ``npr`` (:class:`NeighbouringPixelResidual`): searched
        where the architecture offers both, the first of :attr:`inputs` by default. With pretrained
        weights it is RGB where the architecture offers it: the named sets were learnt on RGB, and a
        weights file is taken to be too."""
        choices = self.inputs
        if self.pretrained and "rgb" in choices:
            return "rgb"
        return hp.Choice("input", list(choices), default=choices[0]) if len(choices) > 1 else choices[0]

    def freeze(self, model: keras.Model, hp: kt.HyperParameters) -> None:
        """With pretrained weights, fine-tune only the top ``fine_tune`` fraction of backbone layers."""
        fraction = hp.Float("fine_tune", 0.0, 1.0, step=0.25, default=0.5)
        backbone = [layer for layer in model.layers if layer.weights and layer.name not in ("embedding", OUTPUT_LAYER)]
        frozen = int(round((1 - fraction) * len(backbone)))
        for layer in backbone[:frozen]:
            layer.trainable = False


WARMUP_FRACTION = 0.1


def learning_rate_schedule(peak: float, steps: int):
    """``peak`` when ``steps`` is 0; else a linear warm-up from ``peak``/100 to ``peak`` over the first
    10 % of ``steps`` (at least one), then a cosine decay to zero over the rest."""
    if steps <= 0:
        return peak
    warmup = max(1, int(WARMUP_FRACTION * steps))
    return keras.optimizers.schedules.CosineDecay(
        peak / 100, decay_steps=max(1, steps - warmup), warmup_target=peak, warmup_steps=warmup, alpha=0.0
    )


def load_weights_file(model: keras.Model, path: str, name: str) -> None:
    """Load a local weights file by layer name (legacy ``.h5``) or as a whole model / weights file."""
    path = str(Path(path).expanduser())
    try:
        if path.endswith(".keras"):
            source = keras.saving.load_model(path, compile=False, safe_mode=True)
            loaded = 0
            for layer in model.layers:
                try:
                    other = source.get_layer(layer.name)
                except ValueError:
                    continue
                if layer.weights:
                    layer.set_weights(other.get_weights())
                    loaded += 1
            if not loaded:
                raise WeightsError(f"{name}: no layer of {path} matches a layer of {name} by name")
        elif path.endswith(".weights.h5"):
            model.load_weights(path)
        else:
            model.load_weights(path, by_name=True, skip_mismatch=False)
    except WeightsError:
        raise
    except (ValueError, KeyError, OSError) as error:
        raise WeightsError(f"{name}: cannot load weights from {path}: {error}") from None
