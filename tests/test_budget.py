"""The time budget: the planner's known answers, --plan, the budget clock, and (on real tiny
training) the measured plan, the refusal before anything trains and a fit stopped at its budget."""

from __future__ import annotations

import re
import types
from dataclasses import replace

import mlflow
import pytest
from helpers import tiny_settings
from mlflow import MlflowClient

from deepfake_detection.errors import SettingsError
from deepfake_detection.training import budget as budget_module
from deepfake_detection.training import run_training
from deepfake_detection.training.budget import TOLERANCE, Budget
from deepfake_detection.training.plan import format_plan, parse_plan, plan_epochs, plan_share, planned_seconds, scaled
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


# (first, more) per architecture, weights, budget s, max epochs -> plan
WEIGHTED_PLANS = [
    # weight 2: twice the epochs of the others at equal cost
    ({"a": (10, 10), "b": (10, 10)}, {"b": 2.0}, 90, 16, {"a": 3, "b": 6}),
    # b's cap is reached; what it cannot take goes to a
    ({"a": (10, 10), "b": (10, 10)}, {"b": 2.0}, 120, 6, {"a": 6, "b": 6}),
    # a dearer architecture of weight 2 still gets its share first, the cheap ones what is left
    ({"a": (10, 10), "b": (10, 20), "c": (5, 5)}, {"b": 2.0}, 125, 16, {"a": 3, "b": 4, "c": 5}),
    # weights of 1 are the unweighted plan
    ({"a": (10, 10), "b": (10, 30)}, {"a": 1.0, "b": 1.0}, 90, 10, {"a": 5, "b": 2}),
]


@pytest.mark.parametrize(("costs", "weights", "budget", "cap", "expected"), WEIGHTED_PLANS)
def test_the_planner_shares_epochs_in_proportion_to_the_weights(costs, weights, budget, cap, expected):
    first = {n: c[0] for n, c in costs.items()}
    more = {n: c[1] for n, c in costs.items()}
    plan = plan_epochs(first, more, budget, cap, weights)
    assert plan == expected
    assert sum(planned_seconds(plan, first, more).values()) <= budget


def test_npr_weighs_double_in_a_budgets_plan():
    from deepfake_detection.architectures import ARCHITECTURES

    assert ARCHITECTURES["npr"].plan_weight == 2.0
    assert {n: a.plan_weight for n, a in ARCHITECTURES.items() if n != "npr"} == dict.fromkeys(
        [n for n in ARCHITECTURES if n != "npr"], 1.0
    )


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


# (first-epoch seconds, of which training steps) per architecture, budget s -> share of the training set
SHARES = [
    # one whole epoch each fits: the whole set
    ({"a": (50, 40), "b": (50, 40)}, 100, 1.0),
    # 20 s too few: 20 s of fixed costs + 80 s of steps must become 80 s -> 3/4 of the steps
    ({"a": (50, 40), "b": (50, 40)}, 80, 0.75),
    # rounded down to a multiple of 0.05: 0.7375 -> 0.7
    ({"a": (50, 40), "b": (50, 40)}, 79, 0.7),
    # exactly the smallest share (fixed 20 s + a tenth of 80 s)
    ({"a": (50, 40), "b": (50, 40)}, 28, 0.1),
]


@pytest.mark.parametrize(("costs", "budget", "expected"), SHARES)
def test_a_budget_short_of_one_epoch_each_trains_on_the_share_that_fits(costs, budget, expected):
    first = {n: c[0] for n, c in costs.items()}
    steps = {n: c[1] for n, c in costs.items()}
    share = plan_share(first, steps, budget)
    assert share == pytest.approx(expected)
    cut = scaled(first, steps, share)
    assert plan_epochs(cut, cut, budget, 1) == dict.fromkeys(costs, 1)  # now one epoch of each fits
    assert sum(cut.values()) <= budget + 1e-9


def test_a_budget_short_of_a_tenth_of_an_epoch_each_is_refused_naming_what_would_fit():
    first, steps = {"a": 50.0, "b": 50.0}, {"a": 40.0, "b": 40.0}
    with pytest.raises(SettingsError) as refused:
        plan_share(first, steps, 27)
    message = str(refused.value)
    assert "cannot train one epoch of every architecture on this machine on 10% of the training set" in message
    assert "one epoch each costs 28 s" in message and "at least 0.47 (1.67 for whole epochs)" in message


def test_plan_names_every_architecture_trained_with_whole_epochs():
    assert parse_plan("npr=4, spectrum=2", ["spectrum", "npr"]) == (
        {"spectrum": 2, "npr": 4},
        {"spectrum": 1, "npr": 1},
    )
    epochs, shares = parse_plan("npr=1@0.45,spectrum=2", ["npr", "spectrum"])
    assert (epochs, shares) == ({"npr": 1, "spectrum": 2}, {"npr": 0.45, "spectrum": 1.0})
    assert format_plan(epochs, shares) == "npr=1@0.45,spectrum=2"  # what the run prints to reproduce it
    for text, error in [
        ("npr=4", "no epochs for spectrum"),
        ("npr=4,spectrum=2,custom_a=1", "names custom_a, which this run does not train"),
        ("npr=0,spectrum=2", "'npr=0' is not NAME=EPOCHS"),
        ("npr=four,spectrum=2", "'npr=four' is not NAME=EPOCHS"),
        ("npr,spectrum=2", "'npr' is not NAME=EPOCHS"),
        ("npr=1@0,spectrum=2", "'npr=1@0' is not NAME=EPOCHS"),
        ("npr=1@1.5,spectrum=2", "'npr=1@1.5' is not NAME=EPOCHS"),
        ("npr=1@half,spectrum=2", "'npr=1@half' is not NAME=EPOCHS"),
        ("npr=1,npr=2,spectrum=2", "names npr twice"),
    ]:
        with pytest.raises(SettingsError, match=error):
            parse_plan(text, ["npr", "spectrum"])


def test_the_budget_clock_runs_only_while_charging_and_holds_each_share(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(budget_module.time, "perf_counter", lambda: now[0])
    # the plan leaves 10 of the 100 s unused: each share ends that much later than the plan's
    # cumulative seconds (40 s and 90 s), so an under-estimated fit may use it; a full plan moves nothing
    clock = Budget(100.0, {"a": 30.0, "b": 50.0}, spent_before=10.0)
    assert clock.ends == {"a": 50.0, "b": 100.0}
    assert Budget(100.0, {"a": 30.0, "b": 60.0}, spent_before=10.0).ends == {"a": 40.0, "b": 100.0}
    with clock.charging():
        now[0] = 20.0
        assert clock.spent() == 30.0
    now[0] = 500.0  # evaluation, registration: not charged
    assert clock.spent() == 30.0 and clock.left() == 70.0
    slack = TOLERANCE * 100
    assert not clock.overruns("a", 50 + slack - 30 - 0.5)
    assert clock.overruns("a", 50 + slack - 30 + 0.5)
    assert not clock.overruns("b", 40)  # b's share ends later
    assert not clock.overruns("not planned", 1e9)
    assert not Budget().overruns("a", 1e9)  # no budget: never stops
    assert clock.describe_left() == "; budget left 1:10 of 1:40"


@pytest.mark.train
def test_a_measured_plan_trains_the_same_models_as_the_same_plan_pinned(bench_dataset, tmp_path, capsys):
    settings = tiny_settings(
        bench_dataset, tmp_path / "measured", arch="custom_c,spectrum", epochs=1, budget_minutes=30, num_samples=24
    )
    measured = run_training(settings)
    out = capsys.readouterr().out
    assert "measured custom_c:" in out and "measured this machine's training speed in" in out
    assert "final-fit epochs for a 30-minute budget on this machine: {'custom_c': 1, 'spectrum': 1}" in out
    assert "custom_c: epoch 1/1" in out and "budget left" in out
    client = MlflowClient()
    parent = client.get_run(client.get_run(measured[0].run_id).data.tags["mlflow.parentRunId"])
    assert parent.data.tags["plan_source"] == "measured"
    assert parent.data.params["plan.custom_c"] == "1"
    speeds = mlflow.artifacts.load_dict(f"runs:/{parent.info.run_id}/plan/speeds.json")
    rows = dict(zip(speeds["columns"], zip(*speeds["data"])))
    assert rows["name"] == ("custom_c", "spectrum")
    assert all(s > 0 for s in rows["train_step"]) and rows["epochs"] == (1, 1)
    assert all(s > 0 for s in rows["score_row"])  # the scoring passes after each fit, timed too
    pinned = run_training(
        replace(settings, budget_minutes=0, plan="custom_c=1,spectrum=1", work_dir=str(tmp_path / "p"))
    )
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


def test_a_jobs_deadlines_leave_each_architecture_what_follows_it():
    from deepfake_detection.training.run import Job, deadlines

    # a 600 s job started at t = 100; plan: a 200 s then b 100 s of training; after a 50 s, after b 30 s
    job = Job(600.0, started=100.0)
    ends = deadlines(job, {"a": 200.0, "b": 100.0}, {"a": 50.0, "b": 30.0})
    # a must end by 700 - (50 + 30) - 100 (b's training) = 520; b by 700 - 30 = 670
    assert ends == {"a": pytest.approx(520.0), "b": pytest.approx(670.0)}


def test_a_fit_past_its_jobs_deadline_stops_though_its_share_has_time(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(budget_module.time, "perf_counter", lambda: now[0])
    clock = Budget(100.0, {"a": 30.0, "b": 60.0}, spent_before=10.0)
    clock.deadlines = {"a": 1000.0, "b": 2000.0}
    now[0] = 990.0  # the wall clock: scoring and registering between fits ran long
    with clock.charging():
        now[0] = 995.0  # 5 s of training charged: a's share (ends at 40 s) has plenty left
        assert not clock.overruns("a", 4.0)
        assert clock.overruns("a", 6.0)  # but another 6 s epoch would end past a's deadline
        assert not clock.overruns("b", 6.0)


@pytest.mark.train
def test_a_fit_behind_its_plan_stops_at_an_epoch_boundary_and_says_so(bench_dataset, tmp_path, monkeypatch, capsys):
    # The machine "got busier": the measurement says one epoch costs a millisecond, so a
    # 1.2-second budget plans the cap of 5 epochs (and leaves the rest of it unused, which the
    # fit may also take); the real epochs take longer than the whole budget.
    fast = Speed("spectrum", 1e-5, 1e-5, 0.0, 0.0, 8)
    monkeypatch.setattr("deepfake_detection.training.run.measure_speed", lambda search: fast)
    settings = tiny_settings(
        bench_dataset, tmp_path / "outputs", arch="spectrum", epochs=5, budget_minutes=0.02, patience=5
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


@pytest.mark.train
def test_a_budget_short_of_one_epoch_trains_each_epoch_on_a_share_and_prints_how_to_pin_it(
    bench_dataset, tmp_path, monkeypatch, capsys
):
    # One epoch "costs" 20 s of training steps (2 batches of 16 at 10 s each), the budget 10.2 s.
    slow = Speed("spectrum", 10.0, 0.0, 0.0, 0.0, 16)
    monkeypatch.setattr("deepfake_detection.training.run.measure_speed", lambda search: slow)
    settings = tiny_settings(bench_dataset, tmp_path / "outputs", arch="spectrum", budget_minutes=0.17)
    (result,) = run_training(settings)
    out = capsys.readouterr().out
    # about half the steps fit (what measuring took, here Search.create alone, comes off the budget first)
    share, train_images, total = re.search(
        r"each epoch trains on (\d+)% of the training set \((\d+) of (\d+) images\)", out
    ).groups()
    share, train_images, total = int(share) / 100, int(train_images), int(total)
    # balanced over the two labels: an even count, what the fit trains on (its param below)
    assert 0.1 <= share <= 0.5 and train_images == 2 * (int(share * total) // 2) < total
    assert f"reproduce this plan on another machine with --plan spectrum=1@{share:g}" in out
    run = MlflowClient().get_run(result.run_id)
    assert float(run.data.params["train_share"]) == share
    assert run.data.params["train_images"] == str(train_images)
    parent = MlflowClient().get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["plan"] == f"spectrum=1@{share:g}"
    assert float(parent.data.params["plan.spectrum.train_share"]) == share
    assert result.version == "1"


def _known_speeds(monkeypatch, clock: list[float], score_row: float = 0.0):
    """measure_and_plan on known speeds: every architecture measures in 10 s of a fake clock, one
    epoch of 64 training images (4 batches) costs 4 x 1 + 1 x 0.5 (valid) + 2 x 0.25 (saves) = 5 s,
    scoring an image ``score_row`` s (unmeasured: 0.5 / 16 s, the validation steps' rate),
    degrading one 1 ms."""
    from deepfake_detection.training import run as run_module

    def measured(search):
        clock[0] += 10.0
        return Speed(search, 1.0, valid_step=0.5, save=0.25, startup=2.0, batch_size=16, score_row=score_row)

    monkeypatch.setattr(run_module.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(run_module.Search, "create", lambda name, *args, **kwargs: name)
    monkeypatch.setattr(run_module, "measure_speed", measured)
    monkeypatch.setattr(run_module, "measure_degrading", lambda rows, settings, degradations: 0.001)
    return run_module


def test_a_jobs_budget_keeps_what_follows_training_out_of_training(monkeypatch, capsys):
    import pandas as pd

    from deepfake_detection.config import TrainSettings

    clock = [100.0]
    run = _known_speeds(monkeypatch, clock, score_row=1 / 64)  # scoring passes twice the validation rate
    parts = {"train": pd.DataFrame(index=range(64)), "valid": pd.DataFrame(index=range(16))}
    parts["test"] = pd.DataFrame(index=range(16))
    settings = TrainSettings(arch="a,b", budget_minutes=2, tuner="none", epochs=20, degradations="standard")
    job = run.Job(120.0, started=70.0, splits_after=("train", "valid", "test"))  # 30 s spent: the dataset
    plan = run.measure_and_plan(settings, ["a", "b"], parts, "digest", job)
    # after each fit: scoring (valid + test) x (2 + 11 degradations) + 96 images of compare
    # = 512 images x 1 / 64 s = 8 s, 4 saves x 0.25 s and the start-up, 2 s: 11 s each;
    # degrading valid and test once under the 11: 32 x 11 x 1 ms
    assert plan.reserved == pytest.approx(2 * 11 + 32 * 11 * 0.001)
    left = 120 - 30 - 20 - plan.reserved  # the job's, less the dataset, measuring and the reserve
    assert plan.budget.left() == pytest.approx(left)
    assert sum(plan.seconds.values()) <= left and plan.epochs == {"a": 4, "b": 4}  # 7 s first, 5 s more
    out = capsys.readouterr().out
    assert "measured a: 16 training images/s, 64 scored images/s" in out
    assert "keeps an estimated 22 s for what follows training" in out and "48 s are left to train" in out
    plan.describe(settings, parts["train"])  # names the job's budget
    assert "for the job's 2-minute budget" in plan.describe(settings, parts["train"])


def test_a_jobs_budget_that_leaves_nothing_to_train_trains_the_least_and_says_what_the_job_needs(monkeypatch, capsys):
    import pandas as pd

    from deepfake_detection.config import TrainSettings

    clock = [100.0]
    run = _known_speeds(monkeypatch, clock)
    parts = {"train": pd.DataFrame(index=range(64)), "valid": pd.DataFrame(index=range(16))}
    parts["test"] = pd.DataFrame(index=range(16))
    settings = TrainSettings(arch="a,b", budget_minutes=1, tuner="none", degradations="standard")
    job = run.Job(60.0, started=70.0, splits_after=("train", "valid", "test"))
    plan = run.measure_and_plan(settings, ["a", "b"], parts, "digest", job)
    # the default job gives a result on any machine: one epoch each on 10 % of the training set
    assert plan.epochs == {"a": 1, "b": 1} and plan.shares == {"a": 0.1, "b": 0.1}
    assert sum(plan.seconds.values()) == pytest.approx(2 * 3.4)  # 7 s an epoch, 4 s of it steps: 10 % of those
    out = capsys.readouterr().out
    assert "this machine is too slow for the job's 1 minutes" in out and "expect weak models" in out
    # the job spent 50 s and keeps 38.4 s; one epoch each on 10 % of the training set costs 2 x 3.4 s
    assert "(what is left after the 50 s the job spent and the 38 s it keeps for after training)" in out
    assert "Raise --budget-minutes to at least 1.59 (1.71 for whole epochs)" in out


def test_a_train_budget_that_leaves_nothing_to_train_is_refused(monkeypatch):
    import pandas as pd

    from deepfake_detection.config import TrainSettings

    clock = [100.0]
    run = _known_speeds(monkeypatch, clock)
    parts = {split: pd.DataFrame(index=range(n)) for split, n in (("train", 64), ("valid", 16), ("test", 16))}
    settings = TrainSettings(arch="a,b", budget_minutes=0.3, tuner="none", degradations="standard")
    with pytest.raises(SettingsError, match="Raise --budget-minutes to at least 0.45"):
        run.measure_and_plan(settings, ["a", "b"], parts, "digest")  # 18 s: measuring takes 20


def _fit_on_a_fake_clock(monkeypatch, epoch_seconds: list[float], planned: int, steps_per_epoch: int = 4):
    """A tiny Keras fit of ``planned`` epochs under a 100-s budget whose share for it is all 100
    s (+ the 10 % tolerance), its epochs taking ``epoch_seconds`` on the budget's clock (the last
    repeated); returns the model, its history and its EpochProgress."""
    import keras
    import numpy as np

    from deepfake_detection.architectures.base import learning_rate_schedule
    from deepfake_detection.training.budget import EpochProgress

    clock = {"now": 0.0}  # the budget's clock only
    monkeypatch.setattr(budget_module, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))

    class SlowEpochs(keras.callbacks.Callback):  # runs before EpochProgress: each epoch "took" its seconds
        def on_epoch_end(self, epoch, logs=None):
            clock["now"] += epoch_seconds[min(epoch, len(epoch_seconds) - 1)]

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(16 * steps_per_epoch, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.AdamW(learning_rate_schedule(0.1, planned * steps_per_epoch)), "binary_crossentropy")
    budget = Budget(100.0, {"m": 100.0})
    progress = EpochProgress("m", planned, budget)
    with budget.charging():
        history = model.fit(x, y, batch_size=16, epochs=planned, callbacks=[SlowEpochs(), progress], verbose=0)
    return model, history, progress


def _last_learning_rate(model) -> float:
    return float(model.optimizer._learning_rate(int(model.optimizer.iterations.numpy()) - 1))


@pytest.mark.train
def test_a_fit_slower_than_planned_is_replanned_to_fewer_epochs_and_its_learning_rate_still_anneals(
    monkeypatch, capsys
):
    """Epochs of 10 s where the plan gave 20 of them 100 s (+ 10 s of tolerance): after the
    second epoch the fit is re-planned to the 11 that fit, its cosine schedule ends there (the
    learning rate of its last step is ~0, not the ~half of the peak that 11 of 20 epochs would
    leave), and it stops after the 11th, saying so."""
    from deepfake_detection.architectures.base import learning_rate_schedule

    model, history, progress = _fit_on_a_fake_clock(monkeypatch, [10.0], planned=20)
    assert len(history.history["loss"]) == 11 == progress.replanned  # (100 + 10 - 20) // 10 = 9 more after 2
    assert progress.stopped_by_budget
    assert int(model.optimizer.iterations.numpy()) == 11 * 4
    assert _last_learning_rate(model) < 0.01 * 0.1  # annealed: within a step of zero
    assert float(learning_rate_schedule(0.1, 20 * 4)(11 * 4 - 1)) > 0.04  # the plan's schedule, cut short
    out = capsys.readouterr().out
    assert "m: its epochs take 10 s: re-planned to 11 of the 20 planned epochs" in out
    assert "m: epoch 11/11 10 s" in out and "m: the re-planned fit ends after epoch 11 of the 20 planned" in out


@pytest.mark.train
def test_a_fit_replanned_down_by_a_slow_epoch_is_replanned_up_again_never_past_its_plan(monkeypatch, capsys):
    """A 30-s second epoch, then 5-s ones, in a 10-epoch plan with 110 s of room: re-planned to 4
    (2 more fit after 35 s), then up one step at a time as the mean falls (each time only where
    one more epoch fits with one to spare), back to the 10 planned; all 10 run, annealed."""
    model, history, progress = _fit_on_a_fake_clock(monkeypatch, [5.0, 30.0, 5.0], planned=10)
    assert len(history.history["loss"]) == 10 and progress.replanned == 0 and not progress.stopped_by_budget
    out = capsys.readouterr().out
    ends = [int(n) for n in re.findall(r"re-planned to (\d+) of the 10 planned epochs", out)]
    assert ends == [4, 6, 7, 9, 10]
    assert _last_learning_rate(model) < 0.01 * 0.1
