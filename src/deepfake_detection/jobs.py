"""The jobs behind the commands that do more than one step: ``prepare`` (build, then log the
dataset), ``main`` (the README's default run), ``promote`` by hand and ``ui``. The CLI parses
options and calls these."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from deepfake_detection import registry, tracking, views
from deepfake_detection.access.client import require
from deepfake_detection.config import CompareSettings, PrepareSettings, TrainSettings
from deepfake_detection.data import bench
from deepfake_detection.data.prepare import parse_fractions, prepare_bench, prepare_kaggle


def _optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def run_prepare(settings: PrepareSettings, track: bool = True):
    """Prepare a dataset as ``settings`` say, logging it to MLflow when ``track``."""
    if settings.source == "bench":
        bench.check_settings(
            image_size=settings.image_size, num_images=settings.num_images, difficulty=settings.difficulty
        )
    if track:
        tracking.configure()
    if settings.source == "bench":
        report = prepare_bench(
            Path(settings.output),
            image_size=settings.image_size,
            num_images=settings.num_images,
            difficulty=settings.difficulty,
            seed=settings.seed,
            split=parse_fractions(settings.split),
            generator_steps=settings.generator_steps,
            overwrite=settings.overwrite,
        )
    else:
        report = prepare_kaggle(
            Path(settings.output),
            kaggle_140k=_optional_path(settings.kaggle_140k),
            ciplab=_optional_path(settings.ciplab),
            ciplab_split=parse_fractions(settings.ciplab_split),
            seed=settings.seed,
            overwrite=settings.overwrite,
            link_mode=settings.link_mode,
        )
    if track:
        with tracking.run(f"prepare-{settings.source}", tags={"step": "prepare"}):
            tracking.log_prepared_dataset(report)
    for line in report.lines():
        click.echo(line)
    return report


def run_main(bench_settings: PrepareSettings, train: TrainSettings) -> None:
    """The README's main job: build the offline benchmark if missing, train every architecture,
    compare the versions just trained; all under one ``main`` run."""
    from deepfake_detection.compare import run_compare
    from deepfake_detection.comparison_report import print_table
    from deepfake_detection.training import check_settings, log_summary, run_training
    from deepfake_detection.training.run import Job
    from deepfake_detection.training.summary import print_results

    data = train.data
    check_settings(train)  # before any run opens or any image is made
    build = not Path(data, "manifest.csv").exists()
    if build:
        bench.check_settings(
            image_size=bench_settings.image_size,
            num_images=bench_settings.num_images,
            difficulty=bench_settings.difficulty,
        )
    tracking.configure()
    started = time.perf_counter()
    with tracking.run("main", tags={"step": "main"}):
        if build:
            run_prepare(bench_settings)
        else:
            click.echo(f"using the existing dataset at {data}")
        # The budget is the whole job's: what follows training (compare scores every split) is kept out of it.
        results = run_training(train, job=Job(train.budget_minutes * 60, started, ("train", "valid", "test")))
        print_results(results)
        # The versions just trained, whether or not the election made them champion.
        trained = ",".join(f"models:/{registry.registered_name(r.architecture)}/{r.version}" for r in results)
        # The exact SVM alone: the Nystroem one beside it is `compare`'s to show, not the main job's.
        print_table(run_compare(CompareSettings(models=trained, data=data, seed=train.seed, approximate_too=False)))
        log_summary(results)  # the same leaderboard on the outermost run, the first one the UI shows
    budget = f" (budget {train.budget_minutes:g} min)" if train.budget_minutes and not train.plan else ""
    click.echo(f"main finished in {time.perf_counter() - started:.0f} s{budget}")
    click.echo(
        f"runs are in {tracking.tracking_uri()}; look at them with: make ui (or: deepfake-detection ui), which prints"
    )
    click.echo("the link to the leaderboard: the architecture runs sorted by test ROC-AUC")


def promote(arch: str, version: str, role: str) -> None:
    """Move ``role`` (champion / challenger) to a version by hand, as a user allowed to."""
    name = registry.registered_name(arch)
    tracking.configure()
    require(
        f"make {name} version {version} {role}",
        models=[name],
        model_level="MANAGE" if role == registry.CHAMPION else "EDIT",
    )
    registry.promote(arch, version, role, by_hand=True)
    click.echo(f"{name} version {version} is now {role}")


def open_ui(host: str, port: int, experiment: str, links_only: bool) -> None:
    """Publish the leaderboard views, print their links, then replace this process with ``mlflow
    ui`` on the tracking store (nothing starts against a tracking server: its links are printed)."""
    import mlflow

    uri = tracking.configure()
    remote = uri.startswith(("http://", "https://"))
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise click.ClickException(f"no experiment {experiment!r} in {uri}: run `make run` (or train) first")
    views.publish(found.experiment_id)  # also for experiments trained before the views existed
    base = uri if remote else f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    click.echo(f"MLflow UI for {uri}, experiment {experiment!r} (positive class: fake):")
    for view, link in views.links(base, found.experiment_id):
        click.echo(f"  {view.title}:\n    {link}")
    click.echo(f"  registered models:\n    {base}/#/models")
    if links_only or remote:
        return
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    click.echo(" ".join(command[2:]), err=True)
    os.execv(sys.executable, command)
