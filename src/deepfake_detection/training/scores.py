"""Scores on valid and test: calibration and threshold chosen on valid, metrics with intervals on
test; and the same splits under a degradation suite (the election weighs valid's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from deepfake_detection import evaluation, robustness
from deepfake_detection.degradations import suite
from deepfake_detection.training.study import Search

# What a split's summary under the suite adds to its metrics (valid_..., test_...).
DEGRADED_KEYS = ("mean_degraded_roc_auc", "worst_degraded_roc_auc")

# Valid's and test's images under the suite, decoded, for the next architecture of the run.
_KEPT: dict[tuple, robustness.Inputs] = {}


def _kept_inputs(files) -> robustness.Inputs:
    key = tuple(files)
    if key not in _KEPT:
        if len(_KEPT) >= 2:  # another dataset: what was kept is of no use
            _KEPT.clear()
        _KEPT[key] = robustness.Inputs(robustness.KEPT_BYTES // 2)
    return _KEPT[key]


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


@dataclass
class Degraded:
    """Valid and test under the run's degradation suite: :func:`robustness.metrics_table` of each."""

    suite: str
    valid: pd.DataFrame
    test: pd.DataFrame


def degrade_splits(model: keras.Model, search: Search, scores: Scores, degradations: str) -> Degraded | None:
    """Score valid and test under ``degradations`` (a suite name or list; ``none``: nothing) with
    the calibrated model at its threshold, as the registered detector will score; each split's
    mean and worst degraded ROC-AUC (with intervals) join ``scores.valid`` / ``scores.test``.
    The degraded images are decoded once per run and split, not once per architecture."""
    from deepfake_detection.architectures import calibrated
    from deepfake_detection.model import DeepfakeDetector, DetectorConfig

    chosen = suite(degradations)
    if not chosen:
        return None
    config = DetectorConfig(search.name, search.settings.image_size, scores.threshold, temperature=scores.temperature)
    detector = DeepfakeDetector.of(calibrated(model, scores.temperature), config)
    tables = {}
    for split, metrics in (("valid", scores.valid), ("test", scores.test)):
        rows = search.parts[split]
        scored = robustness.score(
            detector,
            [Path(f).read_bytes for f in rows["file"]],
            evaluation.fake_labels(rows),
            chosen,
            batch_size=robustness.scoring_batch(search.settings.batch_size, search.settings.image_size),
            seed=search.settings.seed,
            label=f"{search.name} {split}",
            inputs=_kept_inputs(rows["file"]),
        )
        tables[split] = robustness.metrics_table(scored, scores.threshold, chosen, search.name, every_interval=False)
        summary = robustness.summary(tables[split], scored)
        metrics.update({k: v for k, v in summary.items() if k.startswith(DEGRADED_KEYS)})
    return Degraded(degradations, tables["valid"], tables["test"])
