"""The registered model: a self-contained MLflow pyfunc around the trained Keras model.

Image size, class names and the decision threshold travel with it (``detector.json``); the
preprocessing is a layer inside the Keras model. Input: a pandas DataFrame with a column
``image`` of encoded image bytes (or, as a convenience, ``path`` of image files). Output:
``p_fake`` (probability of the positive class ``fake``) and ``label`` (``fake`` / ``real``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

CONFIG_FILE = "detector.json"
KERAS_FILE = "model.keras"


@dataclass(frozen=True)
class DetectorConfig:
    architecture: str
    image_size: int
    threshold: float
    class_names: tuple[str, str] = ("real", "fake")  # index = label id; fake = 1 is positive
    positive_class: str = "fake"
    dataset_digest: str = ""


def decode_images(model_input: pd.DataFrame, image_size: int) -> np.ndarray:
    """Decode the ``image`` bytes (or read ``path`` files) with the training pipeline's ops."""
    from deepfake_detection.data.pipeline import decode_bytes_and_resize

    if "image" in model_input.columns and model_input["image"].notna().all():
        blobs = [bytes(b) for b in model_input["image"]]
    elif "path" in model_input.columns:
        blobs = [Path(p).read_bytes() for p in model_input["path"]]
    else:
        raise ValueError("model input needs a column 'image' (encoded image bytes) or 'path' (image files)")
    if not blobs:
        return np.zeros((0, image_size, image_size, 3), np.float32)
    return np.stack([decode_bytes_and_resize(blob, image_size).numpy() for blob in blobs])


class DeepfakeDetector(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper; ``.keras_model`` and ``.config`` are available after loading."""

    def load_context(self, context) -> None:
        import keras

        from deepfake_detection import architectures  # noqa: F401  registers custom layers

        self.config = DetectorConfig(**json.loads(Path(context.artifacts["config"]).read_text()))
        self.keras_model = keras.saving.load_model(context.artifacts["keras_model"], compile=False, safe_mode=True)

    def predict_pixels(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        if len(images) == 0:
            return np.zeros(0)
        return self.keras_model.predict(images, batch_size=batch_size, verbose=0).reshape(-1)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        p_fake = self.predict_pixels(decode_images(model_input, self.config.image_size))
        labels = np.where(p_fake >= self.config.threshold, "fake", "real")
        return pd.DataFrame({"p_fake": p_fake.astype(float), "label": labels})


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("binary", "image", required=False), ColSpec("string", "path", required=False)])
    outputs = Schema([ColSpec("double", "p_fake"), ColSpec("string", "label")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_detector(keras_model, config: DetectorConfig, example_image: bytes, work_dir: Path, name: str = "model"):
    """Log the detector as a pyfunc model in the active run; returns the ModelInfo."""
    import deepfake_detection

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    keras_path = work_dir / KERAS_FILE
    keras_model.save(keras_path)
    config_path = work_dir / CONFIG_FILE
    config_path.write_text(json.dumps(asdict(config), indent=2))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(deepfake_detection.__file__).parent / "pyfunc_entry.py"),
        artifacts={"keras_model": str(keras_path), "config": str(config_path)},
        code_paths=[str(Path(deepfake_detection.__file__).parent)],
        signature=signature(),
        input_example=pd.DataFrame({"image": [example_image]}),
        metadata={"positive_class": "fake", "class_names": list(config.class_names), "threshold": config.threshold,
                  "image_size": config.image_size, "architecture": config.architecture},  # fmt: skip
    )


def load_detector(model_uri: str) -> DeepfakeDetector:
    """Load a registered or logged detector (``models:/…``, ``runs:/…``) as the Python object."""
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
