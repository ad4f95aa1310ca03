"""``explain``: Grad-CAM heatmaps (Selvaraju et al. 2017) for any architecture.

The heatmap shows where the last convolutional feature map pushes the decision towards the
target class: ``fake`` (the positive class, default), ``real``, or whichever was predicted. The
score differentiated is the logit of ``p_fake`` (negated for ``real``), which does not saturate
the way the sigmoid does. Each image gets one PNG: the original beside the heatmap over it.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfake_detection.errors import DeepfakeError

TARGETS = ("fake", "real", "predicted")


class ExplainError(DeepfakeError):
    """The model has no layer Grad-CAM can use, or the layer asked for does not exist."""


@dataclass(frozen=True)
class Explanation:
    source: str
    overlay: Path | None
    p_fake: float
    label: str
    target: str
    layer: str
    error: str = ""


def last_conv_layer(model) -> str:
    """The last convolutional feature map: the last conv layer (or nested convolutional backbone,
    such as DenseNet) and, after it, its activation / normalisation / residual sum at the same
    resolution, stopping at pooling."""
    import keras

    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) == 4
    ]
    convs = [
        i for i, layer in enumerate(layers) if isinstance(layer, keras.Model) or "conv" in type(layer).__name__.lower()
    ]
    if not convs:
        raise ExplainError(f"{model.name} has no convolutional layer with a 4-D output; Grad-CAM needs one")
    spatial = tuple(layers[convs[-1]].output.shape[1:3])
    chosen = convs[-1]
    for i in range(convs[-1] + 1, len(layers)):
        if tuple(layers[i].output.shape[1:3]) != spatial or "pool" in type(layers[i]).__name__.lower():
            break
        if not isinstance(layers[i], keras.layers.Dropout):  # identity at inference
            chosen = i
    return layers[chosen].name


def gradcam_model(model, layer_name: str | None = None):
    """A model mapping images to (feature map of ``layer_name``, p_fake); returns it and the layer name."""
    import keras

    name = layer_name or last_conv_layer(model)
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise ExplainError(
            f"{model.name} has no layer {name!r}; layers with 4-D outputs: "
            + ", ".join(other.name for other in model.layers if len(other.output.shape) == 4)
        ) from None
    if len(layer.output.shape) != 4:
        raise ExplainError(f"layer {name!r} of {model.name} has output shape {layer.output.shape}, not a feature map")
    features = layer.output
    if isinstance(layer, keras.Model):
        # A nested backbone's ``.output`` belongs to its own graph; take the tensor of its call inside ``model``.
        features = layer._inbound_nodes[-1].output_tensors[0]
    return keras.Model(model.inputs[0], [features, model.output]), name


def gradcam(cam_model, images: np.ndarray, target: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps in [0, 1] at feature-map resolution (N, h, w) and p_fake (N,) for a batch.

    A heatmap that is zero everywhere means the layer holds no evidence *for* the target class
    (every location lowers its score), which weak models show; it is not rescaled into one.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        features, p_fake = cam_model(x, training=False)
        p = tf.clip_by_value(tf.reshape(tf.cast(p_fake, tf.float32), [-1]), 1e-7, 1 - 1e-7)
        logit = tf.math.log(p) - tf.math.log1p(-p)
        if target == "fake":
            sign = tf.ones_like(logit)
        elif target == "real":
            sign = -tf.ones_like(logit)
        else:
            sign = tf.where(p >= threshold, 1.0, -1.0)
        score = tf.reduce_sum(sign * logit)
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # one weight per channel
    cams = tf.nn.relu(tf.reduce_sum(weights * tf.cast(features, tf.float32), axis=-1)).numpy()
    peak = cams.reshape(len(cams), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0), p.numpy()


def overlay_figure(original: np.ndarray, heatmap: np.ndarray, title: str, path: Path) -> None:
    """Save [original | heatmap over original] as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    height, width = original.shape[:2]
    resized = np.asarray(Image.fromarray((heatmap * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR))
    figure, axes = plt.subplots(1, 2, figsize=(8, 4.4))
    axes[0].imshow(original)
    axes[0].set_title("original")
    axes[1].imshow(original)
    shown = axes[1].imshow(resized / 255.0, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[1].set_title("Grad-CAM")
    for axis in axes:
        axis.axis("off")
    figure.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _safe_stem(path: Path, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:80] or "image"
    name, number = stem, 1
    while name in used:
        number += 1
        name = f"{stem}-{number}"
    used.add(name)
    return name


def run_explain(
    input_spec: str,
    model: str,
    output: str | Path,
    target: str = "predicted",
    layer: str = "",
    max_images: int = 16,
    alias: str = "champion",
    batch_size: int = 16,
) -> list[Explanation]:
    """Write ``<output>/<stem>_gradcam.png`` for up to ``max_images`` files of ``input_spec``."""
    from PIL import Image, ImageOps

    from deepfake_detection import tracking
    from deepfake_detection.data.images import BadImage
    from deepfake_detection.inference import collect_inputs, model_uri
    from deepfake_detection.model import load_detector, load_pixels

    if target not in TARGETS:
        raise ExplainError(f"target must be one of {TARGETS}, got {target!r}")
    files = collect_inputs(input_spec)[: max_images or None]
    tracking.configure()
    uri = model_uri(model, alias)
    detector = load_detector(uri)
    cam_model, layer_name = gradcam_model(detector.keras_model, layer or None)
    threshold = detector.config.threshold
    output = Path(output)
    results, used, batch = [], set(), []

    def flush():
        if not batch:
            return
        cams, p_fake = gradcam(cam_model, np.stack([b[2] for b in batch]), target, threshold)
        for (source, original, _), cam, p in zip(batch, cams, p_fake):
            label = "fake" if p >= threshold else "real"
            towards = target if target != "predicted" else label
            path = output / f"{_safe_stem(source, used)}_gradcam.png"
            note = "" if cam.max() > 0 else " (no location supports it)"
            title = (
                f"{source.name}: p_fake={p:.3f} → {label} (threshold {threshold:.3f}; fake = positive class)\n"
                f"Grad-CAM towards '{towards}' at layer {layer_name}{note}"
            )
            overlay_figure(original, cam, title, path)
            results.append(Explanation(str(source), path, float(p), label, towards, layer_name))
        batch.clear()

    for source in files:
        try:
            blob = source.read_bytes()
            pixels = load_pixels(blob, detector.config.image_size)  # checks the image first
            original = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(blob))).convert("RGB"))
        except (OSError, BadImage) as error:
            results.append(Explanation(str(source), None, float("nan"), "", target, layer_name, str(error)))
            continue
        batch.append((source, original, pixels))
        if len(batch) >= batch_size:
            flush()
    flush()
    if os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run`: log the overlays with the run
        import mlflow

        with tracking.run("explain", tags={"step": "explain", "model_uri": uri}):
            mlflow.log_params(
                {
                    "explain.input": input_spec,
                    "explain.model_uri": uri,
                    "explain.target": target,
                    "explain.layer": layer_name,
                }
            )
            for item in results:
                if item.overlay is not None:
                    mlflow.log_artifact(str(item.overlay), artifact_path="gradcam")
    return results
