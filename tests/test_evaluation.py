"""Known answers for the detection metrics, on tables small enough to check by hand.

Fake is the positive class (1), real is 0; a row is predicted fake when ``p_fake >= threshold``.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from deepfake_detection.evaluation import (
    binary_metrics,
    choose_threshold,
    equal_error_rate,
    expected_calibration_error,
    per_group_roc_auc,
)

# Three reals below three fakes: a scorer that separates the classes perfectly.
Y = [0, 0, 0, 1, 1, 1]
SEPARATED = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]


def test_a_perfect_scorer():
    threshold = choose_threshold(Y, SEPARATED)
    assert 0.3 < threshold <= 0.7  # between the highest real and the lowest fake score
    assert threshold == pytest.approx(0.7)  # today: the lowest fake score (the first ROC point with J = 1)
    metrics = binary_metrics(Y, SEPARATED, threshold)
    assert {k: metrics[k] for k in ("tn", "fp", "fn", "tp")} == {"tn": 3, "fp": 0, "fn": 0, "tp": 3}
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision"):
        assert metrics[name] == 1.0, name
    assert metrics["eer"] == 0.0
    assert equal_error_rate(Y, SEPARATED) == 0.0
    # ECE at the default 10 bins: every row alone in its bin, gaps |p - y| = .1 .2 .3 .3 .2 .1, mean 0.2
    assert metrics["ece"] == pytest.approx(0.2)


def test_an_inverted_scorer():
    inverted = SEPARATED[::-1]  # every fake scores below every real
    metrics = binary_metrics(Y, inverted, 0.5)
    assert metrics["roc_auc"] == 0.0
    assert metrics["eer"] == 1.0  # every threshold either rejects all fakes or accepts all reals
    assert equal_error_rate(Y, inverted) == 1.0
    assert {k: metrics[k] for k in ("tn", "fp", "fn", "tp")} == {"tn": 0, "fp": 3, "fn": 3, "tp": 0}
    assert metrics["accuracy"] == metrics["precision"] == metrics["recall"] == metrics["f1"] == 0.0


def test_precision_recall_f1_counted_by_hand():
    #            fakes (1) ------------ reals (0) ---------------------------
    y_true = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    p_fake = [0.9, 0.8, 0.6, 0.3, 0.7, 0.55, 0.1, 0.2, 0.4, 0.45]
    # At 0.5: fakes .9 .8 .6 caught (tp = 3), fake .3 missed (fn = 1),
    # reals .7 .55 flagged (fp = 2), reals .1 .2 .4 .45 passed (tn = 4).
    metrics = binary_metrics(y_true, p_fake, 0.5)
    assert {k: metrics[k] for k in ("tn", "fp", "fn", "tp")} == {"tn": 4, "fp": 2, "fn": 1, "tp": 3}
    assert metrics["accuracy"] == pytest.approx(7 / 10)
    assert metrics["precision"] == pytest.approx(3 / 5)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))  # = 2/3
    # ROC-AUC = fraction of (fake, real) pairs ordered right: .9 and .8 beat all 6 reals,
    # .6 beats 5 (not .7), .3 beats 2 (.1, .2): (6 + 6 + 5 + 2) / 24.
    assert metrics["roc_auc"] == pytest.approx(19 / 24)
    # AP = mean precision at each fake's rank (ranks 1, 2, 4, 8 by score): (1/1 + 2/2 + 3/4 + 4/8) / 4
    assert metrics["average_precision"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 8) / 4)


def test_a_score_equal_to_the_threshold_counts_as_fake():
    metrics = binary_metrics([0, 1], [0.5, 0.5], 0.5)
    assert {k: metrics[k] for k in ("tn", "fp", "fn", "tp")} == {"tn": 0, "fp": 1, "fn": 0, "tp": 1}


def test_equal_error_rate_by_hand():
    # Ranked by score: .9 fake, .7 fake, .6 real, .4 fake, .2 real, .1 real.
    # Threshold .6 accepts 1 of 3 reals (FPR = 1/3) and misses 1 of 3 fakes (FNR = 1/3): EER = 1/3.
    assert equal_error_rate(Y, [0.1, 0.2, 0.6, 0.4, 0.7, 0.9]) == pytest.approx(1 / 3)


def test_expected_calibration_error_by_hand():
    y_true = [0, 0, 1, 0, 1, 1]
    p_fake = [0.1, 0.2, 0.4, 0.6, 0.7, 0.9]
    # Two bins, [0, .5) and [.5, 1]:
    #   low:  p .1 .2 .4 → mean 0.7/3; y 0 0 1 → 1/3; gap 0.1;    weight 3/6 → 0.05
    #   high: p .6 .7 .9 → mean 2.2/3; y 0 1 1 → 2/3; gap 0.2/3;  weight 3/6 → 0.1/3
    #   ECE = 0.05 + 0.1/3 = 1/12
    assert expected_calibration_error(y_true, p_fake, bins=2) == pytest.approx(1 / 12)
    # A score of exactly 0.5 falls in the upper bin: gap |0.5 - 1| with all the weight.
    assert expected_calibration_error([1], [0.5], bins=2) == pytest.approx(0.5)
    # Perfectly calibrated on average within one bin.
    assert expected_calibration_error([0, 1], [0.5, 0.5], bins=1) == pytest.approx(0.0)


def test_choose_threshold_maximises_youden_j():
    y_true = [0, 0, 0, 0, 1, 1, 1]
    p_fake = [0.1, 0.2, 0.3, 0.6, 0.5, 0.7, 0.8]
    # Candidate thresholds and J = TPR - FPR (3 fakes, 4 reals):
    #   .8: 1/3 - 0 = .33   .7: 2/3 - 0 = .67   .6: 2/3 - 1/4 = .42   .5: 1 - 1/4 = .75 (best)
    #   .3: 1 - 2/4 = .5    .2: 1 - 3/4 = .25   .1: 1 - 1 = 0
    threshold = choose_threshold(y_true, p_fake)
    assert threshold == pytest.approx(0.5)
    metrics = binary_metrics(y_true, p_fake, threshold)
    assert {k: metrics[k] for k in ("tn", "fp", "fn", "tp")} == {"tn": 3, "fp": 1, "fn": 0, "tp": 3}


def test_one_class_only():
    assert choose_threshold([0, 0, 0], [0.1, 0.8, 0.4]) == 0.5
    assert choose_threshold([1, 1], [0.1, 0.8]) == 0.5
    metrics = binary_metrics([0, 0, 0], [0.1, 0.8, 0.4], 0.5)
    for name in ("roc_auc", "average_precision", "eer"):
        assert math.isnan(metrics[name]), name
    assert {k: metrics[k] for k in ("tn", "fp", "fn", "tp")} == {"tn": 2, "fp": 1, "fn": 0, "tp": 0}
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["precision"] == metrics["recall"] == metrics["f1"] == 0.0  # zero_division=0


def test_per_group_roc_auc_by_hand():
    manifest = pd.DataFrame(
        {
            "label": ["real", "real", "real", "fake", "fake", "fake", "fake", "real", "fake"],
            "generator": ["", "", "", "transpose", "transpose", "upsample", "", "", ""],
            "source": ["bench", "bench", "kaggle", "bench", "bench", "bench", "kaggle", "kaggle", "ciplab"],
        }
    )
    p_fake = [0.1, 0.4, 0.3, 0.9, 0.35, 0.2, 0.8, 0.5, 0.6]
    # Generators are compared with every real (.1 .4 .3 .5):
    #   transpose .9 beats 4, .35 beats 2 (.1, .3): 6/8;   upsample .2 beats 1 (.1): 1/4
    assert per_group_roc_auc(manifest, p_fake, "generator") == pytest.approx({"transpose": 0.75, "upsample": 0.25})
    # Sources use their own rows only; ciplab has fakes only and is skipped:
    #   bench: reals .1 .4, fakes .9 .35 .2 → (2 + 1 + 1) / 6;   kaggle: real .3 .5, fake .8 → 2/2
    assert per_group_roc_auc(manifest, p_fake, "source") == pytest.approx({"bench": 4 / 6, "kaggle": 1.0})
