"""``evaluate``: one detector (anything ``predict`` takes) on one or more labelled sets
(:mod:`deepfake_detection.data.labelled`), clean and under a degradation suite
(:mod:`deepfake_detection.degradations`), at the model's registered threshold. Per (set,
degradation): ROC-AUC, AP, EER, accuracy, real accuracy and fake accuracy, each with its 95 %
bootstrap interval, and the images scored and refused. Everything is computed before the run
opens, so a bad set or model leaves no run behind; the run gets the sets as MLflow datasets in
the ``evaluation`` context, the metrics as ``<set>/<degradation>/<metric>``, the table and the
refused files, and the plots at the artifact root.

Why not ``mlflow.models.evaluate``: on a static dataset it is given predicted labels, not
probabilities, so it computes neither ROC-AUC nor AP nor EER; on our pyfunc it would read the
``p_fake`` column as labels; and it has no intervals nor refused rows. What it would log is here,
from :mod:`deepfake_detection.evaluation`, with intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from deepfake_detection import robustness
from deepfake_detection.data.labelled import LabelledSet, load_sets
from deepfake_detection.degradations import CLEAN, suite

SHOWN = ("roc_auc", "average_precision", "eer", "accuracy", "real_accuracy", "fake_accuracy")


@dataclass(frozen=True)
class Evaluation:
    model_uri: str
    threshold: float
    degradations: str
    sets: list[LabelledSet]
    table: pd.DataFrame  # one row per (set, degradation): robustness.metrics_table with a "set" column
    scored: dict[str, robustness.Scored]  # set name -> scores under every condition

    def refused(self) -> pd.DataFrame:
        """Every file refused under some condition: set, file, degradation, why."""
        rows = []
        for labelled in self.sets:
            for condition, errors in self.scored[labelled.name].errors.items():
                rows += [
                    (labelled.name, labelled.rows["file"][i], condition, why) for i, why in enumerate(errors) if why
                ]
        return pd.DataFrame(rows, columns=["set", "file", "degradation", "error"])

    def metrics(self) -> dict[str, float]:
        """The run's metrics: ``<set>/<degradation>/<metric>`` (and ``_ci_low``, ``_ci_high``),
        ``images``, ``refused``; per set the clean, mean and worst degraded ROC-AUC."""
        out: dict[str, float] = {}
        for row in self.table.itertuples(index=False):
            prefix = f"{row.set}/{row.degradation}"
            out |= {f"{prefix}/images": row.images, f"{prefix}/refused": row.refused}
            for name in SHOWN:
                for key in (name, f"{name}_ci_low", f"{name}_ci_high"):
                    value = getattr(row, key)
                    if pd.notna(value):
                        out[f"{prefix}/{key}"] = float(value)
        for name, summary in self.summaries().items():
            out |= {f"{name}/{k}": v for k, v in summary.items()}
        return out

    def summaries(self) -> dict[str, dict[str, float]]:
        """Per set (with both classes scored): :func:`robustness.summary`, the mean's interval included."""
        return {
            name: robustness.summary(group, self.scored[name])
            for name, group in self.table.groupby("set", sort=False)
            if group["roc_auc"].notna().any()
        }


def evaluate_model(
    model: str, sets: list[str], degradations: str = "standard", alias: str = "champion", batch_size: int = 64, seed=0
) -> Evaluation:
    """Score ``model`` on every set of ``sets`` under ``degradations`` (nothing is logged)."""
    from deepfake_detection.inference import model_uri
    from deepfake_detection.model import load_detector

    chosen = suite(degradations)  # refused before anything loads
    labelled = load_sets(sets)
    uri = model_uri(model, alias)
    detector = load_detector(uri)
    tables, scored = [], {}
    for one in labelled:
        scored[one.name] = robustness.score(
            detector, list(one.read), one.y, chosen, batch_size=batch_size, seed=seed, label=one.name
        )
        table = robustness.metrics_table(scored[one.name], detector.config.threshold, chosen, label=model)
        tables.append(table.assign(set=one.name))
    table = pd.concat(tables, ignore_index=True)
    return Evaluation(uri, detector.config.threshold, degradations, labelled, table, scored)


def log_evaluation(evaluation: Evaluation, experiment: str, folder) -> str:
    """One MLflow run of ``evaluation``: params, the sets as datasets (context ``evaluation``),
    the metrics, ``evaluation.csv``, ``refused.csv`` and the plots at the artifact root."""
    import mlflow

    from deepfake_detection import plots, tracking
    from deepfake_detection.evaluation import roc_points

    tags = {"step": "evaluate", "model_uri": evaluation.model_uri, "positive_class": "fake"}
    with tracking.run("evaluate", experiment=experiment, tags=tags) as active:
        mlflow.log_params(
            {
                "evaluate.model_uri": evaluation.model_uri,
                "evaluate.sets": ",".join(s.source for s in evaluation.sets)[:6000],
                "evaluate.degradations": evaluation.degradations,
                "threshold": evaluation.threshold,
            }
        )
        with tracking.quiet_schema_hints():
            for labelled in evaluation.sets:
                dataset = mlflow.data.from_pandas(
                    labelled.rows, source=labelled.source, name=labelled.name, targets="label"
                )
                mlflow.log_input(dataset, context="evaluation")
        mlflow.log_metrics(evaluation.metrics())
        evaluation.table.to_csv(folder / "evaluation.csv", index=False)
        evaluation.refused().to_csv(folder / "refused.csv", index=False)
        mlflow.log_artifact(str(folder / "evaluation.csv"))
        mlflow.log_artifact(str(folder / "refused.csv"))
        for labelled in evaluation.sets:
            scored = evaluation.scored[labelled.name]
            curves = {}
            for condition, p in scored.p_fake.items():
                kept = ~pd.isna(p)
                if len(set(scored.y[kept])) == 2:
                    curves[condition] = roc_points(scored.y[kept], p[kept])
            title = f"ROC on {labelled.name}, clean and degraded (positive class: fake)"
            mlflow.log_figure(plots.roc_figure(curves, title), f"roc_{labelled.name}.png")
        if (evaluation.table["degradation"] != CLEAN).any():
            by_set = evaluation.table.assign(model=evaluation.table["set"])
            mlflow.log_figure(robustness.robustness_figure(by_set), "auc_vs_severity.png")
        return active.info.run_id


def format_table(evaluation: Evaluation) -> str:
    """The printed table: per set and degradation, images scored / refused and each metric with
    its 95 % interval."""
    lines = [
        f"model {evaluation.model_uri}, threshold {evaluation.threshold:.3f} (p_fake >= threshold -> fake; "
        "positive class: fake = 1, real = 0); 95 % bootstrap intervals"
    ]
    header = f"{'set':<20} {'degradation':<16} {'images':>6} {'refused':>7}  " + "  ".join(
        f"{name:<21}" for name in SHOWN
    )
    lines.append(header)
    for row in evaluation.table.itertuples(index=False):
        cells = []
        for name in SHOWN:
            value, low, high = (getattr(row, k) for k in (name, f"{name}_ci_low", f"{name}_ci_high"))
            cells.append(f"{value:.3f} [{low:.3f}, {high:.3f}]" if pd.notna(value) else f"{'n/a':<21}")
        label = row.degradation if row.degradation != CLEAN else "none (clean)"
        lines.append(f"{row.set:<20} {label:<16} {row.images:>6} {row.refused:>7}  " + "  ".join(cells))
    for name, summary in evaluation.summaries().items():
        if "worst_degraded_roc_auc" in summary:
            lines.append(f"{name}: {describe_summary(summary)}")
    return "\n".join(lines)


def describe_summary(summary: dict[str, float]) -> str:
    """``clean ROC-AUC 0.982 [..], mean over the degradations 0.91 [..], worst 0.77 [..]``."""

    def interval(key: str) -> str:
        low, high = summary.get(f"{key}_ci_low"), summary.get(f"{key}_ci_high")
        return f"{summary[key]:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None else "")

    return (
        f"clean ROC-AUC {interval('clean_roc_auc')}, mean over the degradations "
        f"{interval('mean_degraded_roc_auc')}, worst {interval('worst_degraded_roc_auc')}"
    )


def run_evaluate(
    model: str,
    sets: list[str],
    degradations: str = "standard",
    alias: str = "champion",
    batch_size: int = 64,
    seed: int = 0,
    experiment: str = "deepfake-detection",
) -> tuple[Evaluation, str]:
    """The ``evaluate`` entry point: compute, then log one run; returns it and the run id."""
    import tempfile
    from pathlib import Path

    from deepfake_detection import tracking

    tracking.configure()
    evaluation = evaluate_model(model, sets, degradations, alias, batch_size, seed)
    with tempfile.TemporaryDirectory() as folder:
        run_id = log_evaluation(evaluation, experiment, Path(folder))
    return evaluation, run_id
