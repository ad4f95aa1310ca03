"""The time budget: the planner's known answers, --plan, the budget clock, and (on real tiny
training) the measured plan, the refusal before anything trains and a fit stopped at its budget."""

from __future__ import annotations

from dataclasses import replace

import mlflow
import pytest
from helpers import tiny_settings
from mlflow import MlflowClient

from deepfake_detection.errors import SettingsError
from deepfake_detection.training import budget as budget_module
from deepfake_detection.training import run_training
from deepfake_detection.training.budget import TOLERANCE, Budget
from deepfake_detection.training.plan import parse_plan, plan_epochs, planned_seconds
from deepfake_detection.training.speed import Speed

# (first-epoch seconds, each further epoch's seconds) per architecture, budget s, max epochs -> plan
PLANS = [
    # equal costs: equal epochs until the budget is spent exactly
    ({"a": (10, 10), "b": (10, 10)}, 100, 8, {"a": 5, "b": 5}),
    # a generous budget: every architecture at the cap
    ({"a": (10, 10), "b": (10, 10)}, 1000, 3, {"a": 3, "b": 3}),
    # b cannot afford a third epoch; a, cheaper, takes what b leaves
    ({"a": (10, 10), "b": (10, 30)}, 90, 10, {"a": 5, "b": 2}),
    ({"a": (10, 10), "b": (10, 30)}, 100, 10, {"a": 3, "b": 3}),
    # a start-up cost counts once, in the first epoch
    ({"a": (40, 10), "b": (10, 10)}, 100, 10, {"a": 4, "b": 3}),
    # exactly one epoch each fits
    ({"a": (50, 50), "b": (50, 50)}, 100, 10, {"a": 1, "b": 1}),
]


@pytest.mark.parametrize(("costs", "budget", "cap", "expected"), PLANS)
def test_the_planner_gives_the_known_plan(costs, budget, cap, expected):
    first = {n: c[0] for n, c in costs.items()}
    more = {n: c[1] for n, c in costs.items()}
    plan = plan_epochs(first, more, budget, cap)
    assert plan == expected
    assert list(plan) == list(costs)  # in the order asked for
    assert sum(planned_seconds(plan, first, more).values()) <= budget


def test_a_budget_that_cannot_buy_one_epoch_of_each_is_refused_naming_what_fits():
    first = {"vggface16": 474.0, "npr": 55.0, "spectrum": 3.0}
    with pytest.raises(SettingsError) as refused:
        plan_epochs(first, first, 120, 8)
    message = str(refused.value)
    assert "one epoch each costs 532 s" in message
    assert "vggface16 474 s" in message
    assert "fits for: spectrum, npr" in message  # the cheapest first, as many as fit together
    assert "at least 8.87" in message  # minutes: 532 s
    with pytest.raises(SettingsError, match="fits for: none of them"):
        plan_epochs(first, first, 2, 8)


def test_plan_names_every_architecture_trained_with_whole_epochs():
    assert parse_plan("npr=4, spectrum=2", ["spectrum", "npr"]) == {"spectrum": 2, "npr": 4}
    for text, error in [
        ("npr=4", "no epochs for spectrum"),
        ("npr=4,spectrum=2,custom_a=1", "names custom_a, which this run does not train"),
        ("npr=0,spectrum=2", "'npr=0' is not NAME=EPOCHS"),
        ("npr=four,spectrum=2", "'npr=four' is not NAME=EPOCHS"),
        ("npr,spectrum=2", "'npr' is not NAME=EPOCHS"),
        ("npr=1,npr=2,spectrum=2", "names npr twice"),
    ]:
        with pytest.raises(SettingsError, match=error):
            parse_plan(text, ["npr", "spectrum"])


def test_the_budget_clock_runs_only_while_charging_and_holds_each_share(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(budget_module.time, "perf_counter", lambda: now[0])
    clock = Budget(100.0, {"a": 30.0, "b": 50.0}, spent_before=10.0)  # shares end at 40 s and 90 s
    assert clock.ends == {"a": 40.0, "b": 90.0}
    with clock.charging():
        now[0] = 20.0
        assert clock.spent() == 30.0
    now[0] = 500.0  # evaluation, registration: not charged
    assert clock.spent() == 30.0 and clock.left() == 70.0
    slack = TOLERANCE * 100
    assert not clock.overruns("a", 40 + slack - 30 - 0.5)
    assert clock.overruns("a", 40 + slack - 30 + 0.5)
    assert not clock.overruns("b", 40)  # b's share ends later
    assert not clock.overruns("not planned", 1e9)
    assert not Budget().overruns("a", 1e9)  # no budget: never stops
    assert clock.describe_left() == "; budget left 1:10 of 1:40"


@pytest.mark.train
def test_a_measured_plan_trains_the_same_models_as_the_same_plan_pinned(bench_dataset, tmp_path, capsys):
    settings = tiny_settings(
        bench_dataset, tmp_path / "measured", arch="npr,spectrum", epochs=1, budget_minutes=30, num_samples=24
    )
    measured = run_training(settings)
    out = capsys.readouterr().out
    assert "measured npr:" in out and "measured this machine's training speed in" in out
    assert "final-fit epochs for a 30-minute budget on this machine: {'npr': 1, 'spectrum': 1}" in out
    assert "npr: epoch 1/1" in out and "budget left" in out
    client = MlflowClient()
    parent = client.get_run(client.get_run(measured[0].run_id).data.tags["mlflow.parentRunId"])
    assert parent.data.tags["plan_source"] == "measured"
    assert parent.data.params["plan.npr"] == "1"
    speeds = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/plan/speeds.json")
    rows = dict(zip(speeds["columns"], zip(*speeds["data"])))
    assert rows["name"] == ("npr", "spectrum")
    assert all(s > 0 for s in rows["train_step"]) and rows["epochs"] == (1, 1)
    pinned = run_training(replace(settings, budget_minutes=0, plan="npr=1,spectrum=1", work_dir=str(tmp_path / "p")))
    pinned_parent = client.get_run(client.get_run(pinned[0].run_id).data.tags["mlflow.parentRunId"])
    assert pinned_parent.data.tags["plan_source"] == "pinned"
    for a, b in zip(measured, pinned):
        assert a.test == b.test  # measuring first leaves no trace on what trains


@pytest.mark.train
def test_a_budget_too_small_is_refused_before_anything_trains(bench_dataset, tmp_path):
    settings = tiny_settings(bench_dataset, tmp_path / "outputs", arch="spectrum", budget_minutes=0.001)
    with pytest.raises(SettingsError, match="cannot train one epoch of every architecture on this machine"):
        run_training(settings)
    experiment = mlflow.get_experiment_by_name(settings.experiment)
    assert experiment is None or not MlflowClient().search_runs([experiment.experiment_id])
    assert MlflowClient().search_registered_models("name='deepfake-spectrum'") == []


@pytest.mark.train
def test_a_fit_behind_its_plan_stops_at_an_epoch_boundary_and_says_so(bench_dataset, tmp_path, monkeypatch, capsys):
    # The machine "got busier": the measurement says one epoch costs a millisecond, so a
    # 6-second budget plans the cap of 5 epochs; the real epochs take longer than the whole budget.
    fast = Speed("spectrum", 1e-5, 1e-5, 0.0, 0.0, 8)
    monkeypatch.setattr("deepfake_detection.training.run.measure_speed", lambda search: fast)
    settings = tiny_settings(
        bench_dataset, tmp_path / "outputs", arch="spectrum", epochs=5, budget_minutes=0.1, patience=5
    )
    (result,) = run_training(settings)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["fit_epochs"] == "5"
    assert run.data.tags["stopped_by_budget"] == "true"
    assert run.data.metrics["stopped_by_budget"] == 1.0
    assert run.data.metrics["epochs_run"] < 5
    out = capsys.readouterr().out
    assert "spectrum: stopped by the time budget after epoch" in out
    assert result.version == "1"  # registered all the same, with the best epoch's weights
