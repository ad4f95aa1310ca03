"""Registry of architectures: name → keras-tuner HyperModel, each with an ``embedding`` layer."""

from deepfake_detection.architectures.base import (
    EMBEDDING_LAYER,
    OUTPUT_LAYER,
    Architecture,
    NeighbouringPixelResidual,
    Preprocess,
    TemperatureScaling,
    WeightsError,
    calibrated,
)
from deepfake_detection.architectures.families import ARCHITECTURES, get_architecture, parse_architectures

__all__ = [
    "ARCHITECTURES",
    "EMBEDDING_LAYER",
    "OUTPUT_LAYER",
    "Architecture",
    "NeighbouringPixelResidual",
    "Preprocess",
    "TemperatureScaling",
    "WeightsError",
    "calibrated",
    "get_architecture",
    "parse_architectures",
]
