"""Scores on valid and test: calibration and threshold chosen on valid, metrics with intervals on test."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from deepfake_detection import evaluation
from deepfake_detection.training.study import Search


@dataclass
class Scores:
    """Calibrated p_fake on valid and test (the network's own output as ``raw_*``), the temperature
    and threshold chosen on valid, and the metrics at that threshold (fake = 1). ``test`` holds
    each interval metric's 95 % bootstrap interval as ``<metric>_ci_low`` / ``<metric>_ci_high``."""

    y_valid: np.ndarray
    p_valid: np.ndarray
    raw_valid: np.ndarray
    y_test: np.ndarray
    p_test: np.ndarray
    raw_test: np.ndarray
    temperature: float
    threshold: float
    valid: dict
    test: dict

    @property
    def degenerate(self) -> bool:
        return evaluation.is_degenerate(self.valid)


def evaluate(model: keras.Model, search: Search) -> Scores:
    """Score valid and test; calibrate (temperature scaling) and choose the threshold on valid,
    never on test; 95 % bootstrap intervals of the test metrics."""
    raw_valid = model.predict(search.valid, verbose=0).reshape(-1)
    raw_test = model.predict(search.test, verbose=0).reshape(-1)
    y_valid, y_test = evaluation.fake_labels(search.parts["valid"]), evaluation.fake_labels(search.parts["test"])
    temperature = evaluation.fit_temperature(y_valid, raw_valid)
    p_valid = evaluation.apply_temperature(raw_valid, temperature)
    p_test = evaluation.apply_temperature(raw_test, temperature)
    threshold = evaluation.choose_threshold(y_valid, p_valid)
    test = evaluation.metrics_with_intervals(y_test, p_test, threshold, seed=search.settings.seed)
    return Scores(
        y_valid,
        p_valid,
        raw_valid,
        y_test,
        p_test,
        raw_test,
        temperature,
        threshold,
        valid=evaluation.binary_metrics(y_valid, p_valid, threshold),
        test=test,
    )
