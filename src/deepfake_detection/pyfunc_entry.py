"""Models-from-code entry for the registered pyfunc: MLflow loads this file rather than a
pickled object, so loading a model runs no pickled code."""

import mlflow

from deepfake_detection.model import DeepfakeDetector

mlflow.models.set_model(DeepfakeDetector())
