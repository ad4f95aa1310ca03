"""Robustness: how a detector scores labelled images clean and under each degradation of a suite
(:mod:`deepfake_detection.degradations`): re-compressed, re-sized, blurred, noisy, cropped, as
pictures are on their way to a user. Each degradation is applied to the image *file* at its own
resolution, identically to both classes, encoded again, then decoded and resized as the model
always does. Every metric carries its 95 % bootstrap interval; fake is the positive class (1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detection.degradations import CLEAN, CLEAN_PARAMETER, STANDARD, Degradation, degrade

CHUNK_FILES = 1024  # files read and degraded at a time: memory bounded for any set
KEPT_BYTES = 1 << 30  # decoded pixels :class:`Inputs` keeps for the next detector, at most
# Rows per forward pass when scoring many conditions, at 64 x 64 px (fewer at larger sizes): on 2
# CPUs a pass of 256 scored custom_a and spectrum 1.5-2x faster than one of 32, npr 1.15x.
SCORING_ROWS_AT_64 = 256


def scoring_batch(batch_size: int, image_size: int) -> int:
    """The rows per forward pass for scoring: :data:`SCORING_ROWS_AT_64` at 64 px, as many pixels
    at other sizes, never fewer than the training batch."""
    return max(batch_size, int(SCORING_ROWS_AT_64 * (64 / image_size) ** 2))


# The metrics of every (set, degradation) row, each with ``_ci_low`` / ``_ci_high``.
METRICS = ("roc_auc", "average_precision", "eer", "accuracy", "real_accuracy", "fake_accuracy")


@dataclass(frozen=True)
class Scored:
    """``p_fake`` of every row under every condition (NaN where refused) and why a row was refused."""

    y: np.ndarray  # 1 = fake, 0 = real
    p_fake: dict[str, np.ndarray]  # condition name ("none" first) -> p_fake per row
    errors: dict[str, list[str]]  # condition name -> "" or the reason the row was not scored


class Inputs:
    """The checked, degraded and decoded images of one set of files, kept for the next detector
    that scores the same files at the same image size and seed (every architecture of a training
    run scores valid and test under the same suite: each degrades and decodes them once, not once
    per architecture). Keeps up to ``max_bytes`` of pixels; what does not fit is made again."""

    def __init__(self, max_bytes: int = KEPT_BYTES):
        self.max_bytes = max_bytes
        self._kept: dict[tuple, object] = {}
        self._bytes = 0

    def get(self, key: tuple):
        return self._kept.get(key)

    def put(self, key: tuple, prepared):
        if self._bytes + prepared.pixels.nbytes <= self.max_bytes:
            self._kept[key] = prepared
            self._bytes += prepared.pixels.nbytes
        return prepared


def _read_all(read: list[Callable[[], bytes]]) -> tuple[list, list[str]]:
    blobs, errors = [], []
    for reader in read:
        try:
            blobs.append(reader())
            errors.append("")
        except OSError as error:
            blobs.append(None)
            errors.append(f"cannot read: {error.strerror or error}")
    return blobs, errors


def _degraded(blob: bytes | None, degradation: Degradation, seed: int) -> tuple[bytes | None, str]:
    if blob is None:  # refused as given: the reason is the model's check's
        return None, ""
    try:
        return degrade(blob, degradation, seed), ""
    except (OSError, ValueError) as error:  # Pillow cannot decode it: the model's check says the same
        return None, f"cannot decode for {degradation.name}: {error}"


def prepare_degraded(detector, usable: list, clean_errors: list[str], degradation: Degradation, seed: int):
    """The degraded files, decoded by the model's own decode and resize. The model's input
    checks ran on the file as given (``clean_errors``); what :func:`degrade` encoded is a plain
    RGB PNG or JPEG, so it is decoded without checking it again (a quarter of the time)."""
    from deepfake_detection.model import Prepared

    pairs = [_degraded(blob, degradation, seed) for blob in usable]
    errors = [clean_errors[i] or why for i, (_, why) in enumerate(pairs)]
    good = [i for i, (blob, _) in enumerate(pairs) if blob is not None and not errors[i]]
    return Prepared(errors, good, detector.decode([pairs[i][0] for i in good]))


def score(
    detector,
    read: list[Callable[[], bytes]],
    y: np.ndarray,
    degradations: tuple[Degradation, ...] = STANDARD,
    *,
    batch_size: int = 64,
    seed: int = 0,
    label: str = "",
    inputs: Inputs | None = None,
) -> Scored:
    """Score the files that ``read`` reads (labels ``y``) clean and under each of ``degradations``.
    A file that cannot be read or decoded is refused (its reason kept) under every condition,
    never dropped. ``inputs`` keeps the decoded images for the next detector scoring the same
    files (the caller's to keep per set of files)."""
    from tqdm import tqdm

    size = detector.config.image_size
    if inputs is None:
        inputs = Inputs(max_bytes=0)

    conditions: dict[str, Degradation | None] = {CLEAN: None} | {d.name: d for d in degradations}
    p_fake: dict[str, list[np.ndarray]] = {name: [] for name in conditions}
    errors: dict[str, list[str]] = {name: [] for name in conditions}
    for start in tqdm(range(0, len(read), CHUNK_FILES), desc=f"robustness {label}".strip(), unit="chunk"):
        chunk, blobs, usable = read[start : start + CHUNK_FILES], None, None
        clean = inputs.get((start, size, CLEAN))
        if clean is None:
            blobs, read_errors = _read_all(chunk)
            clean = inputs.put((start, size, CLEAN), detector.prepare(blobs, read_errors))  # the model's checks
        for name, degradation in conditions.items():
            prepared = clean if degradation is None else inputs.get((start, size, name, seed))
            if prepared is None:
                if usable is None:  # the bytes the model's checks accepted (read again if only pixels were kept)
                    blobs = blobs if blobs is not None else _read_all(chunk)[0]
                    usable = [None if clean.errors[i] else blob for i, blob in enumerate(blobs)]
                prepared = prepare_degraded(detector, usable, clean.errors, degradation, seed)
                inputs.put((start, size, name, seed), prepared)
            rows = detector.score_prepared(prepared, batch_size=batch_size)
            p_fake[name].append(rows["p_fake"].to_numpy(dtype=float))
            errors[name] += list(rows["error"])
    return Scored(
        np.asarray(y).astype(int),
        {n: np.concatenate(v) if v else np.empty(0) for n, v in p_fake.items()},
        errors,
    )


def metrics_table(
    scored: Scored, threshold: float, degradations: tuple[Degradation, ...], label: str = "", every_interval=True
) -> pd.DataFrame:
    """One row per condition: images scored and refused, and :data:`METRICS` at ``threshold`` over
    the scored rows (NaN where one class has no scored row), with their 95 % intervals; with
    ``every_interval`` false only ROC-AUC's (the bootstrap of AP, EER and the rest takes seconds
    per condition, ROC-AUC's milliseconds: what training and ``compare`` report)."""
    from deepfake_detection.evaluation import binary_metrics, metrics_with_intervals, roc_auc_interval

    families = {CLEAN: ("clean", np.nan)} | {d.name: (d.family, d.parameter) for d in degradations}
    rows = []
    for name, p in scored.p_fake.items():
        kept = ~np.isnan(p)
        y, p = scored.y[kept], p[kept]
        row = {"model": label, "degradation": name, "family": families[name][0], "parameter": families[name][1]}
        row |= {"images": int(kept.sum()), "refused": int((~kept).sum())}
        if len(np.unique(y)) == 2:
            if every_interval:
                metrics = metrics_with_intervals(y, p, threshold)
            else:
                interval = roc_auc_interval(y, p)
                metrics = binary_metrics(y, p, threshold) | {
                    "roc_auc_ci_low": interval.low,
                    "roc_auc_ci_high": interval.high,
                }
            row |= {
                key: metrics.get(key, np.nan) for base in METRICS for key in (base, f"{base}_ci_low", f"{base}_ci_high")
            }
            row["mean_p_fake"] = float(np.mean(p))
        else:
            row |= {key: np.nan for base in METRICS for key in (base, f"{base}_ci_low", f"{base}_ci_high")}
            row["mean_p_fake"] = float(np.mean(p)) if len(p) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate(detector, rows: pd.DataFrame, label: str, batch_size: int = 64, degradations=STANDARD) -> pd.DataFrame:
    """:func:`metrics_table` of ``detector`` on manifest ``rows`` (``file``, ``label``) under ``degradations``."""
    from deepfake_detection.evaluation import fake_labels

    read = [Path(f).read_bytes for f in rows["file"]]
    scored = score(detector, read, fake_labels(rows), degradations, batch_size=batch_size, label=label)
    return metrics_table(scored, detector.config.threshold, degradations, label, every_interval=False)


def summary(table: pd.DataFrame, scored: Scored | None = None) -> dict[str, float]:
    """Clean ROC-AUC and the mean and worst ROC-AUC over the degradations of one model's table
    (the clean row excluded), the worst with its interval; with ``scored``, the mean's interval
    too (rows scored under every condition, resampled together)."""
    from deepfake_detection.evaluation import mean_roc_auc_interval

    degraded = table[table["degradation"] != CLEAN]
    clean = table[table["degradation"] == CLEAN].iloc[0]
    out = {"clean_roc_auc": float(clean["roc_auc"])}
    for key in ("ci_low", "ci_high"):
        out[f"clean_roc_auc_{key}"] = float(clean[f"roc_auc_{key}"])
    if not len(degraded):
        return out
    worst = degraded.loc[degraded["roc_auc"].idxmin()]
    out |= {
        "mean_degraded_roc_auc": float(degraded["roc_auc"].mean()),
        "worst_degraded_roc_auc": float(worst["roc_auc"]),
        "worst_degraded_roc_auc_ci_low": float(worst["roc_auc_ci_low"]),
        "worst_degraded_roc_auc_ci_high": float(worst["roc_auc_ci_high"]),
    }
    if scored is not None:
        names = list(degraded["degradation"])
        stacked = np.stack([scored.p_fake[n] for n in names])
        kept = ~np.isnan(stacked).any(axis=0)
        if len(np.unique(scored.y[kept])) == 2:
            mean, interval = mean_roc_auc_interval(scored.y[kept], list(stacked[:, kept]))
            out |= {
                "mean_degraded_roc_auc": mean,
                "mean_degraded_roc_auc_ci_low": interval.low,
                "mean_degraded_roc_auc_ci_high": interval.high,
            }
    return out


def robustness_figure(table: pd.DataFrame):
    """ROC-AUC against severity, one panel per degradation family, one line per model, the clean
    score as each line's first point; 95 % intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in dict.fromkeys(table["family"]) if f != "clean"]
    figure, axes = plt.subplots(1, max(1, len(families)), figsize=(2.6 * max(1, len(families)), 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    for axis, family in zip(axes, families):
        for model, group in table.groupby("model", sort=False):
            clean = group[group["family"] == "clean"].assign(parameter=CLEAN_PARAMETER[family])
            points = pd.concat([clean, group[group["family"] == family]]).sort_values("parameter")
            errors = [points["roc_auc"] - points["roc_auc_ci_low"], points["roc_auc_ci_high"] - points["roc_auc"]]
            axis.errorbar(points["parameter"], points["roc_auc"], yerr=errors, marker="o", capsize=2, label=model)
        axis.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        axis.set_title(family)
        labels = {"jpeg": "quality", "blur": "sigma (px)", "noise": "sigma (grey levels)", "crop": "share of each side"}
        axis.set_xlabel(labels.get(family, "scale factor"))
        if family in ("jpeg", "downscale", "crop"):
            axis.invert_xaxis()  # severity grows to the right in every panel, from the clean point
    axes[0].set_ylabel("ROC-AUC (positive class: fake)")
    axes[0].set_ylim(0.3, 1.02)
    axes[-1].legend(fontsize=7, loc="lower left")
    figure.suptitle("ROC-AUC under degradations (clean = first point of each line)")
    figure.tight_layout()
    return figure


def pivot(table: pd.DataFrame) -> pd.DataFrame:
    """ROC-AUC with one row per model and the conditions as columns, clean first."""
    wide = table.pivot(index="model", columns="degradation", values="roc_auc")
    order = list(dict.fromkeys(table["degradation"]))
    return wide[order]
