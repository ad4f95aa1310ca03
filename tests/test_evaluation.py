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
    # A generator's fakes are compared with the reals of their source (bench: .1 .4):
    #   transpose .9 beats 2, .35 beats 1: 3/4;   upsample .2 beats 1 (.1): 1/2
    assert per_group_roc_auc(manifest, p_fake, "generator") == pytest.approx({"transpose": 0.75, "upsample": 0.5})
    # Sources use their own rows only; ciplab has fakes only and is skipped:
    #   bench: reals .1 .4, fakes .9 .35 .2 → (2 + 1 + 1) / 6;   kaggle: real .3 .5, fake .8 → 2/2
    assert per_group_roc_auc(manifest, p_fake, "source") == pytest.approx({"bench": 4 / 6, "kaggle": 1.0})


def test_equal_error_rate_between_thresholds_is_interpolated():
    # Ranked: fake fake real real real real fake fake. FNR = FPR = 0.5 at threshold 0.5 (reals .5 .4
    # above it are 2 of 4, fakes .3 .2 below it are 2 of 4); the nearest ROC corner says 0.25.
    y = [1, 1, 0, 0, 0, 0, 1, 1]
    assert equal_error_rate(y, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]) == pytest.approx(0.5)
    # A real and a fake tied at .5: the DET curve steps from (FPR, FNR) = (1/2, 0) straight to (0, 1/2),
    # crossing FNR = FPR half-way, at 1/4.
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(0.25)


def test_no_threshold_beats_chance_falls_back_to_one_half_and_is_degenerate():
    from deepfake_detection.evaluation import is_degenerate

    constant = [0.3] * 6
    inverted = SEPARATED[::-1]
    for scores in (constant, inverted):
        threshold = choose_threshold(Y, scores)
        assert threshold == 0.5  # never the inf end of the ROC curve (which used to be clipped to 1.0)
        assert is_degenerate(binary_metrics(Y, scores, threshold))
    assert not is_degenerate(binary_metrics(Y, SEPARATED, choose_threshold(Y, SEPARATED)))
    assert binary_metrics(Y, SEPARATED, 0.5)["youden_j"] == 1.0


@pytest.mark.slow  # bootstraps up to 1,600 rows
def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_n():
    import numpy as np

    from deepfake_detection.evaluation import bootstrap_intervals

    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 1600):
        y = np.repeat([0, 1], n // 2)
        p = np.clip(0.5 + 0.25 * (y - 0.5) + rng.normal(0, 0.2, n), 0, 1)
        point = binary_metrics(y, p, 0.5)
        intervals = bootstrap_intervals(y, p, 0.5, n_resamples=500, seed=1)
        for name, interval in intervals.items():
            assert point[name] in interval, (n, name, point[name], interval)
        widths.append(intervals["roc_auc"].high - intervals["roc_auc"].low)
    assert widths[1] < widths[0] / 2.5  # ~ 1/sqrt(n): 16x the rows, a quarter of the width
    again = bootstrap_intervals(y, p, 0.5, n_resamples=500, seed=1)
    assert again == intervals  # seeded


def test_bootstrap_roc_auc_matches_sklearn_on_every_resample():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from deepfake_detection.evaluation import bootstrap_indices
    from deepfake_detection.row_metrics import roc_auc_rows

    y = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.4, 0.4, 0.4, 0.9, 0.2, 0.6, 0.5, 0.5, 0.7])  # with ties
    index = bootstrap_indices(y, 50, seed=3)
    assert (y[index].sum(axis=1) == y.sum()).all()  # stratified: the class counts are kept
    expected = [roc_auc_score(y[row], p[row]) for row in index]
    np.testing.assert_allclose(roc_auc_rows(y[index], p[index]), expected)


def test_paired_difference_says_when_two_scorers_differ():
    import numpy as np

    from deepfake_detection.evaluation import paired_roc_auc_difference

    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 100)
    good = y + rng.normal(0, 0.5, 200)
    same = paired_roc_auc_difference(y, good, good)
    assert (same.difference, same.low, same.high, same.significant) == (0.0, 0.0, 0.0, False)
    noise = rng.normal(0, 1, 200)
    better = paired_roc_auc_difference(y, good, noise)
    assert better.significant and better.low > 0 and better.low <= better.difference <= better.high
    close = paired_roc_auc_difference(y, good, good + rng.normal(0, 0.05, 200))
    assert not close.significant and close.low < 0 < close.high


def test_temperature_scaling_fixes_overconfidence_without_changing_the_ranking():
    import numpy as np
    from scipy.special import expit
    from sklearn.metrics import roc_auc_score

    from deepfake_detection.evaluation import apply_temperature, fit_temperature

    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], 500)
    true_logits = 1.5 * (y - 0.5) * 2 + rng.normal(0, 1.5, 1000)
    y = (rng.random(1000) < expit(true_logits)).astype(int)  # labels drawn from the true probabilities
    overconfident = expit(3 * true_logits)  # logits three times too large
    temperature = fit_temperature(y, overconfident)
    assert temperature == pytest.approx(3.0, rel=0.15)
    calibrated = apply_temperature(overconfident, temperature)
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(y, overconfident) / 2
    assert roc_auc_score(y, calibrated) == pytest.approx(roc_auc_score(y, overconfident))
    np.testing.assert_allclose(apply_temperature(overconfident, 1.0), overconfident, atol=1e-6)


def test_per_level_roc_auc_on_a_ciplab_tree(tmp_path):
    from conftest import write_ciplab

    from deepfake_detection.data.prepare import prepare_kaggle

    prepare_kaggle(tmp_path / "out", ciplab=write_ciplab(tmp_path / "c", per_level=4, real=12), progress=False)
    manifest = pd.read_csv(tmp_path / "out" / "manifest.csv", keep_default_na=False)
    score = {"": 0.5, "easy": 0.9, "mid": 0.5, "hard": 0.1}  # reals have level ""
    p_fake = manifest["level"].map(score).to_numpy()
    # easy fakes all above the reals, mid tied with them, hard all below: 1, 1/2, 0
    assert per_group_roc_auc(manifest, p_fake, "level") == {"easy": 1.0, "hard": 0.0, "mid": 0.5}


def test_a_confident_coin_flip_is_calibrated_to_one_half():
    import numpy as np

    from deepfake_detection.evaluation import apply_temperature, fit_temperature

    # Outputs at 1e-6 / 1 - 1e-6, right half the time (the spectral baseline's raw outputs looked
    # like this): only a very large temperature brings them to 0.5; a bound at 20 left ECE at 0.17.
    y = np.array([0, 1] * 50)
    p = np.array([1e-6, 1 - 1e-6, 1 - 1e-6, 1e-6] * 25)
    calibrated = apply_temperature(p, fit_temperature(y, p))
    assert np.abs(calibrated - 0.5).max() < 0.01
    assert expected_calibration_error(y, calibrated) < 0.01 < 0.4 < expected_calibration_error(y, p)


@pytest.mark.slow  # bootstraps 1,000 rows three times
def test_bootstrap_in_chunks_keeps_every_resample_and_the_intervals(monkeypatch):
    import numpy as np

    from deepfake_detection import evaluation

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 500)
    p = np.clip(0.5 * y + rng.normal(0.25, 0.3, 1000), 0, 1)
    whole = evaluation.bootstrap_intervals(y, p, 0.5, seed=1)
    assert len(list(evaluation.bootstrap_index_chunks(y, 1000, seed=1))) == 1  # 1,000 x 1,000 fits in one chunk
    monkeypatch.setattr(evaluation, "BOOTSTRAP_ELEMENTS", 30_000)  # 30 resamples of 1,000 rows a chunk
    chunks = list(evaluation.bootstrap_index_chunks(y, 1000, seed=1))
    assert len(chunks) == 34 and sum(len(c) for c in chunks) == 1000 and max(c.size for c in chunks) <= 30_000
    assert all((y[c].sum(axis=1) == 500).all() for c in chunks)  # still stratified
    chunked = evaluation.bootstrap_intervals(y, p, 0.5, seed=1)
    for name, interval in whole.items():  # other resamples, the same intervals within bootstrap noise
        assert abs(chunked[name].low - interval.low) < 0.01 and abs(chunked[name].high - interval.high) < 0.01, name
    difference = evaluation.paired_roc_auc_difference(y, p, np.roll(p, 1), seed=1)
    assert difference.low < difference.difference < difference.high


def test_the_bootstraps_vectorised_metrics_are_the_point_estimates_row_by_row():
    """AP (scikit-learn's), EER (the ROC curve's crossing of FNR = FPR, read off
    ``sklearn.metrics.roc_curve``) and ECE of each resample, computed for all rows at once, equal
    the per-row functions, on rows with and without tied scores."""
    import numpy as np
    from sklearn import metrics as skm

    from deepfake_detection.row_metrics import average_precision_rows, curve_rows, ece_rows, eer_rows

    def eer_from_the_roc_curve(y, p):
        fpr, tpr, _ = skm.roc_curve(y, p, drop_intermediate=False)
        gap = (1 - tpr) - fpr
        b = int(np.argmax(gap <= 0))
        if gap[b] == 0:
            return fpr[b]
        return fpr[b - 1] + gap[b - 1] / (gap[b - 1] - gap[b]) * (fpr[b] - fpr[b - 1])

    rng = np.random.default_rng(3)
    for tied in (False, True):
        y = rng.integers(0, 2, (200, 25))
        y[:, :2] = [0, 1]  # both classes in every row
        p = rng.random((200, 25))
        if tied:
            p = np.round(p * 4) / 4  # five distinct scores: runs of ties, saturated ones among them
        curve = curve_rows(y, p)
        np.testing.assert_allclose(
            average_precision_rows(*curve), [skm.average_precision_score(a, b) for a, b in zip(y, p)], atol=1e-12
        )
        np.testing.assert_allclose(eer_rows(*curve), [eer_from_the_roc_curve(a, b) for a, b in zip(y, p)], atol=1e-12)
        np.testing.assert_allclose(ece_rows(y, p), [expected_calibration_error(a, b) for a, b in zip(y, p)], atol=1e-12)
        assert [equal_error_rate(a, b) for a, b in zip(y[:5], p[:5])] == list(eer_rows(*curve_rows(y[:5], p[:5])))
