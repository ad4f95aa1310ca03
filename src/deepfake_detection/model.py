"""The registered model: a self-contained MLflow pyfunc around the trained Keras model.

Image size, class names and the decision threshold travel with it (``detector.json``); the
preprocessing is a layer inside the Keras model. Input: a pandas DataFrame with a column
``image`` of encoded image bytes (or, as a convenience, ``path`` of image files). Output:
``p_fake`` (probability of the positive class ``fake``), ``label`` (``fake`` / ``real``) and
``error`` (why a row could not be scored; empty otherwise; such rows have ``p_fake`` NaN).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from deepfake_detection.data.images import BadImage, check_image
from deepfake_detection.errors import MissingModelError

CONFIG_FILE = "detector.json"
KERAS_FILE = "model.keras"
DISTRIBUTION = "deepfake-image-detection"  # the package's name on an index (pyproject.toml)
MAX_IMAGE_BYTES = 50 * 2**20  # one encoded image; larger uploads are refused, not decoded
DEFAULT_MAX_REQUEST_BYTES = 64 * 2**20  # all images of one pyfunc call / REST request together


@dataclass(frozen=True)
class DetectorConfig:
    architecture: str
    image_size: int
    threshold: float
    class_names: tuple[str, str] = ("real", "fake")  # index = label id; fake = 1 is positive
    positive_class: str = "fake"
    dataset_digest: str = ""
    temperature: float = 1.0  # calibration on valid, already applied by the model's last layer


def usable_bytes(blob: bytes) -> bytes:
    """The bytes the training pipeline would have decoded for this upload.

    The image is checked and, where ``prepare`` would have stored a normalised copy (EXIF
    rotation, 16-bit, palette, WebP …), normalised the same way.

    Raises:
        BadImage: too many bytes, empty, not an image, truncated, corrupt or too many pixels.
    """
    if len(blob) > MAX_IMAGE_BYTES:
        raise BadImage(f"{len(blob):,} bytes is over the limit of {MAX_IMAGE_BYTES:,} bytes per image")
    return check_image(blob).normalised or blob


def load_pixels(blob: bytes, image_size: int) -> np.ndarray:
    """Encoded image bytes → float32 RGB pixels in [0, 255], exactly as training saw them."""
    from deepfake_detection.data.pipeline import decode_bytes_and_resize

    return decode_bytes_and_resize(usable_bytes(blob), image_size).numpy()


def max_request_bytes() -> int:
    """Largest total of image bytes one pyfunc call accepts (``DEEPFAKE_MAX_REQUEST_BYTES``)."""
    return int(os.environ.get("DEEPFAKE_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES))


def _in_server() -> bool:
    return os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() == "true"


def _invalid(message: str):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)  # served as HTTP 400


def _read_input(model_input: pd.DataFrame) -> tuple[list[bytes | None], list[str]]:
    """Per row: the image bytes (``image`` column, else the ``path`` file) or None and why not."""
    images = model_input["image"] if "image" in model_input.columns else pd.Series([None] * len(model_input))
    paths = model_input["path"] if "path" in model_input.columns else pd.Series([None] * len(model_input))
    if "image" not in model_input.columns and "path" not in model_input.columns:
        raise _invalid(
            "model input needs a column 'image' (encoded image bytes) or 'path' (image files); "
            f"got columns {list(model_input.columns)}"
        )
    blobs, errors, total, limit = [], [], 0, max_request_bytes()
    for image, path in zip(images.tolist(), paths.tolist()):
        blob, error = None, ""
        if image is not None and not (isinstance(image, float) and np.isnan(image)):
            blob = bytes(image)
        elif isinstance(path, str) and path:
            if _in_server() and os.environ.get("DEEPFAKE_SERVE_ALLOW_PATHS", "") != "1":
                raise _invalid(
                    "the 'path' column is refused by the server (it would read the server's files); "
                    "send encoded image bytes in 'image', or set DEEPFAKE_SERVE_ALLOW_PATHS=1"
                )
            try:
                blob = Path(path).read_bytes()
            except OSError as failure:
                error = f"cannot read {path}: {failure.strerror or failure}"
        else:
            error = "row has neither image bytes nor a path"
        total += len(blob) if blob else 0
        if total > limit:
            raise _invalid(f"request too large: more than {limit:,} bytes of images; send fewer images per request")
        blobs.append(blob)
        errors.append(error)
    return blobs, errors


@dataclass(frozen=True)
class Prepared:
    """Images checked and decoded, ready for the network: every row's error ("" when usable),
    the indices of the usable rows and their pixels."""

    errors: list[str]
    good: list[int]
    pixels: np.ndarray


_LOADED: dict[tuple, object] = {}  # Keras models by (file, size, mtime), for this process
_LOADED_MAX = 4


def padded_rows(rows: int, batch_size: int) -> int:
    """The batch a short batch is padded to: the next power of two, at most ``batch_size``. The
    network then sees at most log2(batch_size) + 1 input shapes per process (each traced once)
    whatever sizes the callers send (Spark's Arrow batches, REST requests), and wastes less
    than half of any batch."""
    return min(batch_size, 1 << max(rows - 1, 0).bit_length())


class DeepfakeDetector(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper; ``.keras_model`` and ``.config`` are available after loading."""

    def load_context(self, context) -> None:
        self.load(context.artifacts["keras_model"], context.artifacts["config"])

    @classmethod
    def of(cls, keras_model, config: DetectorConfig) -> DeepfakeDetector:
        """The detector of a model still in memory (as training holds it), scoring as the logged one will."""
        detector = cls()
        detector.keras_model, detector.config = keras_model, config
        return detector

    def load(self, keras_path: str, config_path: str) -> None:
        import keras

        from deepfake_detection import architectures  # noqa: F401  registers custom layers

        self.config = DetectorConfig(**json.loads(Path(config_path).read_text()))
        stat = Path(keras_path).stat()
        key = (str(Path(keras_path).resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _LOADED:  # once per process: Spark's local mode loads the pyfunc per partition
            while len(_LOADED) >= _LOADED_MAX:
                _LOADED.pop(next(iter(_LOADED)))
            # safe_mode refuses to deserialise Python lambdas (arbitrary code) from the file.
            _LOADED[key] = keras.saving.load_model(keras_path, compile=False, safe_mode=True)
        self.keras_model = _LOADED[key]

    def decode(self, blobs: list[bytes]) -> np.ndarray:
        """Checked encoded images → float32 pixels ``(n, size, size, 3)``, decoded and resized by
        the training pipeline's own ops (in parallel, in a tf.data pipeline)."""
        import tensorflow as tf

        from deepfake_detection.data.pipeline import decode_bytes_and_resize

        size = self.config.image_size
        if not blobs:
            return np.zeros((0, size, size, 3), np.float32)
        dataset = (
            tf.data.Dataset.from_tensor_slices(tf.constant(blobs, dtype=tf.string))
            .map(lambda blob: decode_bytes_and_resize(blob, size), num_parallel_calls=tf.data.AUTOTUNE)
            .batch(256)
        )
        return np.concatenate([batch.numpy() for batch in dataset])

    def predict_pixels(self, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """p_fake for decoded pixels, ``batch_size`` rows per forward pass. Plain
        ``predict_on_batch`` on array slices: on 2 CPUs ``keras.Model.predict``'s own tf.data
        iterator took 0.7 s or 1.3 s for the same 1,000 images from one call to the next, this
        loop 0.57 s every time."""
        scores = []
        for start in range(0, len(pixels), batch_size):
            x = pixels[start : start + batch_size]
            rows = len(x)
            padded = padded_rows(rows, batch_size)
            if padded > rows:  # a last batch of any size is traced as one of a few shapes, not its own
                x = np.concatenate([x, np.zeros((padded - rows, *x.shape[1:]), x.dtype)])
            scores.append(np.asarray(self.keras_model.predict_on_batch(x)).reshape(-1)[:rows])
        return np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)

    def predict_encoded(self, blobs: list[bytes], batch_size: int = 64) -> np.ndarray:
        """p_fake for checked encoded images: decoded exactly as training decoded them, then scored."""
        return self.predict_pixels(self.decode(blobs), batch_size)

    def prepare(self, blobs: list[bytes | None], errors: list[str] | None = None) -> Prepared:
        """Check and decode: everything before the network, for :meth:`score_prepared`."""
        usable, errors = self.check_blobs(blobs, errors)
        good = [i for i, blob in enumerate(usable) if blob is not None]
        return Prepared(errors, good, self.decode([usable[i] for i in good]))

    def score_prepared(self, prepared: Prepared, batch_size: int = 64) -> pd.DataFrame:
        """The rows of :meth:`prepare`d images: ``p_fake``, ``label`` and ``error`` (unscored: NaN, no label)."""
        p_fake = np.full(len(prepared.errors), np.nan)
        if prepared.good:
            p_fake[prepared.good] = self.predict_pixels(prepared.pixels, batch_size)
        labels = np.where(np.isnan(p_fake), "", np.where(p_fake >= self.config.threshold, "fake", "real"))
        return pd.DataFrame({"p_fake": p_fake, "label": labels, "error": prepared.errors})

    def check_blobs(
        self, blobs: list[bytes | None], errors: list[str] | None = None
    ) -> tuple[list[bytes | None], list[str]]:
        """Per image: the bytes to decode (checked, normalised where needed) or None, and why not."""
        errors = list(errors) if errors is not None else [""] * len(blobs)

        def check(index: int) -> bytes | None:
            if blobs[index] is None:
                return None
            try:
                return usable_bytes(blobs[index])
            except BadImage as failure:
                errors[index] = str(failure)
                return None

        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # PIL releases the GIL
            usable = list(pool.map(check, range(len(blobs))))
        return usable, errors

    def predict_blobs(
        self,
        blobs: list[bytes | None],
        errors: list[str] | None = None,
        batch_size: int = 64,
    ) -> pd.DataFrame:
        """Score encoded images; a row that cannot be decoded gets ``p_fake`` NaN, no label and its ``error``."""
        return self.score_prepared(self.prepare(blobs, errors), batch_size)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        blobs, errors = _read_input(model_input)
        scored = self.predict_blobs(blobs, errors)
        if _in_server():  # JSON has no NaN: an unscored row's p_fake is null
            scored["p_fake"] = scored["p_fake"].astype(object).where(scored["p_fake"].notna(), None)
        return scored


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("binary", "image", required=False), ColSpec("string", "path", required=False)])
    outputs = Schema([ColSpec("double", "p_fake"), ColSpec("string", "label"), ColSpec("string", "error")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def pip_requirements() -> list[str] | None:
    """The logged detector's pip requirements: this package's runtime dependencies (its code
    travels with the model as ``code_paths``), pinned to the versions installed here; ``None``
    (MLflow infers them) when the package is not installed. Inferring loads the model in a
    subprocess (8 s of the 26 s a tiny ``train`` of custom_a took) and got them wrong here: it
    listed this package, which no index serves, and left TensorFlow and Keras out."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    try:
        specs = [Requirement(spec) for spec in requires(DISTRIBUTION) or []]
        return [
            f"{spec.name}=={version(spec.name)}"
            for spec in specs
            if spec.marker is None or spec.marker.evaluate({"extra": ""})  # not the optional extras
        ]
    except PackageNotFoundError:
        return None


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
        pip_requirements=pip_requirements(),
        input_example=pd.DataFrame({"image": [example_image]}),
        metadata={
            "positive_class": "fake",
            "class_names": list(config.class_names),
            "threshold": config.threshold,
            "image_size": config.image_size,
            "architecture": config.architecture,
        },
    )


def check_detector(model_uri: str):
    """The ``ModelInfo`` of ``model_uri`` (its metadata holds the threshold); fails fast, from
    the metadata alone (no TensorFlow), when the model is missing or is not a detector.

    Raises:
        MissingModelError: as :func:`load_pyfunc` would.
    """
    try:
        info = mlflow.models.get_model_info(model_uri)
    except Exception as error:  # MlflowException, OSError, a registry that does not answer
        raise MissingModelError(f"cannot load model {model_uri}: {str(error).splitlines()[0][:300]}") from None
    if "threshold" not in (info.metadata or {}) or "python_function" not in info.flavors:
        raise MissingModelError(
            f"{model_uri} is not a deepfake detector (an MLflow model logged by `deepfake-detection train`); "
            f"its flavors: {', '.join(info.flavors)}"
        )
    return info


def load_pyfunc(model_uri: str):
    """Load a detector (``models:/…``, ``runs:/…``, a local folder) as an MLflow ``PyFuncModel``.

    Raises:
        MissingModelError: the model does not exist, or is not a deepfake detector.
    """
    from mlflow.exceptions import MlflowException

    from deepfake_detection import registry
    from deepfake_detection.access.client import require

    if model_uri.startswith("models:/"):  # on a server with authentication: READ on the registered model
        require(f"load {model_uri}", models=[registry.name_in_uri(model_uri)], model_level="READ")
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as error:
        raise MissingModelError(f"cannot load model {model_uri}: {str(error).splitlines()[0][:300]}") from None
    try:
        detector = model.unwrap_python_model()
    except (MlflowException, AttributeError, ValueError):
        detector = None
    if not isinstance(detector, DeepfakeDetector):
        raise MissingModelError(
            f"{model_uri} is not a deepfake detector (an MLflow model logged by "
            f"`deepfake-detection train`); its flavors: {', '.join(model.metadata.flavors)}"
        )
    return model


def load_detector(model_uri: str) -> DeepfakeDetector:
    """The detector behind ``model_uri`` as the Python object (``.keras_model``, ``.config``)."""
    return load_pyfunc(model_uri).unwrap_python_model()
