"""The time budget as it is spent, and what a user sees of it: a clock that runs only while
something trains (the speed measurement, the searches and the final fits, not the evaluation
and registration between them), and a Keras callback that prints one line per epoch and stops a
fit at an epoch boundary once it would overrun its share."""

from __future__ import annotations

import contextlib
import itertools
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
        """Whether one more epoch of ``name`` would end past its share by more than the tolerance."""
        if not self.enforced or name not in self.ends:
            return False
        late = name in self.deadlines and time.perf_counter() + next_epoch_seconds > self.deadlines[name]
        return late or self.spent() + next_epoch_seconds > self.ends[name] + TOLERANCE * self.seconds

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
    seconds, train loss, valid ROC-AUC and the budget left. With ``enforce``, stops the fit at an
    epoch boundary once another epoch would overrun ``name``'s share of ``budget``; EarlyStopping
    (``restore_best_weights``) then puts the best epoch's weights back."""

    def __init__(self, label: str, epochs: int, budget: Budget, name: str = "", enforce: bool = True):
        super().__init__()
        self.label, self.epochs, self.budget = label, epochs, budget
        self.name = name or label
        self.enforce = enforce
        self.stopped_by_budget = False
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self._started
        loss, auc = logs.get("loss", float("nan")), logs.get("val_auc", float("nan"))
        print(
            f"{self.label}: epoch {epoch + 1}/{self.epochs} {seconds:.0f} s, loss {loss:.3f}, "
            f"valid ROC-AUC {auc:.3f}{self.budget.describe_left()}",
            flush=True,
        )
        if self.enforce and epoch + 1 < self.epochs and self.budget.overruns(self.name, seconds):
            self.stopped_by_budget = True
            self.model.stop_training = True
            print(
                f"{self.label}: stopped by the time budget after epoch {epoch + 1} of {self.epochs} (another "
                f"{seconds:.0f} s epoch would overrun its share); keeping the best epoch's weights",
                flush=True,
            )
