"""The time budget as it is spent, and what a user sees of it: a clock that runs only while
something trains (the speed measurement, the searches and the final fits, not the evaluation
and registration between them), and a Keras callback that prints one line per epoch, re-plans a
fit whose epochs run longer than planned (fewer epochs, its learning rate still decaying to zero
by the last) and stops a fit at an epoch boundary once it would overrun its share."""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time

import keras

# A fit stops only when its next epoch would end more than this share of the whole budget past
# the point the plan gave it: what a planned run's ordinary noise never reaches (so the plan, not
# the clock, decides the epochs and the table stays reproducible), while a machine that got busier
# is held to its budget + this share.
TOLERANCE = 0.10


class Budget:
    """``seconds`` of training (0 = no budget): counts only inside :meth:`charging`.

    ``planned`` (architecture → planned seconds, in training order) gives each architecture the
    point on the clock its share ends at: the plan's cumulative seconds, after ``spent_before``
    (the speed measurement), plus what the plan leaves of the budget unused (whole epochs and the
    epoch cap rarely fill it): a fit the measurement under-estimated may use that slack, never
    the time planned for the architectures after it. Time an architecture leaves unused goes to
    those after it; time it overran is taken from them.
    """

    def __init__(self, seconds: float = 0.0, planned: dict[str, float] | None = None, spent_before: float = 0.0):
        self.seconds = seconds
        self._spent = spent_before
        self._since: float | None = None
        planned = planned or {}
        unused = max(0.0, seconds - spent_before - sum(planned.values()))
        cumulative = itertools.accumulate(planned.values(), initial=spent_before + unused)
        self.ends = dict(zip(planned, list(cumulative)[1:]))
        # A whole job's budget (main): the wall-clock moment (perf_counter) each architecture's
        # training must end by, for the rest of the job to fit (run.deadlines); no tolerance.
        self.deadlines: dict[str, float] = {}

    def __deepcopy__(self, memo):  # keras-tuner copies a trial's callbacks: they share the one clock
        return self

    @property
    def enforced(self) -> bool:
        return self.seconds > 0 and bool(self.ends)

    @contextlib.contextmanager
    def charging(self):
        self._since = time.perf_counter()
        try:
            yield self
        finally:
            self._spent += time.perf_counter() - self._since
            self._since = None

    def spent(self) -> float:
        running = time.perf_counter() - self._since if self._since is not None else 0.0
        return self._spent + running

    def left(self) -> float:
        return self.seconds - self.spent()

    def overruns(self, name: str, next_epoch_seconds: float) -> bool:
        """Whether one more epoch of ``name`` would end past its share by more than the tolerance
        (or past its deadline)."""
        return self.epochs_that_fit(name, next_epoch_seconds) == 0

    def epochs_that_fit(self, name: str, epoch_seconds: float) -> int | None:
        """How many more epochs of ``epoch_seconds`` fit before ``name``'s share ends (plus the
        tolerance) and before its deadline; None where nothing is enforced for it."""
        if not self.enforced or name not in self.ends:
            return None
        room = self.ends[name] + TOLERANCE * self.seconds - self.spent()
        if name in self.deadlines:
            room = min(room, self.deadlines[name] - time.perf_counter())
        return max(0, int(room // max(epoch_seconds, 1e-9)))

    def describe_left(self) -> str:
        if self.seconds <= 0:
            return ""
        left = self.left()
        sign, left = ("-" if left < 0 else ""), abs(left)
        return f"; budget left {sign}{_clock(left)} of {_clock(self.seconds)}"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"


class EpochProgress(keras.callbacks.Callback):
    """One line per epoch, flushed (``mlflow run`` pipes the output): what trains, epoch i/n, its
    seconds, train loss, valid ROC-AUC and the budget left. With ``enforce``, holds the fit to
    ``name``'s share of ``budget`` at every epoch boundary:

    * from the second epoch on (the first pays the start-up), where the epochs so far (their
      mean, the first left out) say fewer of the planned epochs fit, the fit is **re-planned** to
      end after those that fit: its cosine learning-rate schedule is shortened to end there, so
      a fit on a machine slower than measured still anneals instead of stopping at a high
      learning rate (:func:`end_schedule_after`), and it says so. Where later epochs run faster
      and one more than that fits with an epoch to spare, it is re-planned up again, never
      past the plan;
    * once not one more epoch fits, it stops.

    Either way EarlyStopping (``restore_best_weights``) then puts the best epoch's weights back,
    and ``stopped_by_budget`` is set."""

    def __init__(self, label: str, epochs: int, budget: Budget, name: str = "", enforce: bool = True):
        super().__init__()
        self.label, self.epochs, self.budget = label, epochs, budget
        self.name = name or label
        self.enforce = enforce
        self.stopped_by_budget = False
        self.end = epochs  # the epoch the fit ends after: the plan's, or fewer once re-planned
        self._started = 0.0
        self._seconds: list[float] = []

    @property
    def replanned(self) -> int:
        """The epochs the fit was re-planned to (0: never re-planned)."""
        return self.end if self.end < self.epochs else 0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self._started
        self._seconds.append(seconds)
        loss, auc = logs.get("loss", float("nan")), logs.get("val_auc", float("nan"))
        print(
            f"{self.label}: epoch {epoch + 1}/{self.end} {seconds:.0f} s, loss {loss:.3f}, "
            f"valid ROC-AUC {auc:.3f}{self.budget.describe_left()}",
            flush=True,
        )
        if not self.enforce or epoch + 1 >= self.epochs:
            return
        if epoch + 1 >= self.end:
            self._stop(f"{self.label}: the re-planned fit ends after epoch {epoch + 1} of the {self.epochs} planned")
            return
        if self.budget.overruns(self.name, seconds):
            self._stop(
                f"{self.label}: stopped by the time budget after epoch {epoch + 1} of {self.end} (another "
                f"{seconds:.0f} s epoch would overrun its share)"
            )
            return
        typical = statistics.mean(self._seconds[1:]) if len(self._seconds) > 1 else 0.0
        more = self.budget.epochs_that_fit(self.name, typical) if typical else None
        if more is None:
            return
        if epoch + 1 + more < self.end:  # behind: end after the epochs that fit
            end = epoch + 1 + more
        elif self.end < self.epochs and epoch + more > self.end:  # caught up, by a whole epoch's margin
            end = min(self.epochs, epoch + more)
        else:
            return
        steps = int(self.model.optimizer.iterations.numpy()) // (epoch + 1)
        self.end = end
        annealed = end_schedule_after(self.model, self.end * steps)
        print(
            f"{self.label}: its epochs take {typical:.0f} s: re-planned to {self.end} of the {self.epochs} planned "
            "epochs" + ("; the learning rate now decays to zero by the last" if annealed else ""),
            flush=True,
        )

    def _stop(self, message: str) -> None:
        self.stopped_by_budget = True
        self.model.stop_training = True
        print(f"{message}; keeping the best epoch's weights", flush=True)


def end_schedule_after(model: keras.Model, steps: int) -> bool:
    """End ``model``'s warm-up + cosine learning-rate schedule (``base.learning_rate_schedule``)
    after ``steps`` optimizer steps in all (fewer than it planned, or back up to them), and trace
    the training step again so the fit uses it; False where the optimizer has no such schedule
    (a constant learning rate)."""
    # Keras 3 keeps the schedule object in the optimizer's `_learning_rate` (no public getter).
    schedule = getattr(model.optimizer, "_learning_rate", None)
    if not isinstance(schedule, keras.optimizers.schedules.CosineDecay):
        return False
    schedule.decay_steps = max(1, steps - (schedule.warmup_steps or 0))
    model.make_train_function(force=True)
    return True
