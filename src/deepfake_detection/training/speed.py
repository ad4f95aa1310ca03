"""How fast each architecture trains on this machine: a few real training and validation steps,
timed after warm-up, before anything trains; a time budget is planned from these."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import keras_tuner as kt

from deepfake_detection.data.pipeline import Augment
from deepfake_detection.robustness import scoring_batch
from deepfake_detection.training.plan import steps_per_epoch
from deepfake_detection.training.study import Search

STEPS = 3  # training batches of each of the two measuring epochs
VALID_STEPS = 2  # validation batches of each
# Saves of a model after its fit (the registered Keras file, the pyfunc's copy, the artifacts).
SAVES_AFTER_FIT = 4


@dataclass(frozen=True)
class Speed:
    """One architecture's measured costs on this machine, at the run's batch size and image size."""

    name: str
    train_step: float  # seconds per training batch (forward, backward, update, metrics)
    valid_step: float  # seconds per validation batch
    save: float  # seconds to save the model once (the fit checkpoints every epoch)
    startup: float  # seconds a fit spends before its steps run at their rate (tracing, first decode)
    batch_size: int
    score_row: float = 0.0  # seconds per image scored in the scoring passes after a fit (0: unmeasured)

    def epoch_seconds(self, train_images: int, valid_images: int) -> float:
        """One epoch: the training batches, the validation pass and two saves (best model, backup)."""
        return (
            self.train_seconds(train_images)
            + steps_per_epoch(valid_images, self.batch_size) * self.valid_step
            + 2 * self.save
        )

    def train_seconds(self, train_images: int) -> float:
        """The training batches of one epoch: the part of it that scales with the training images."""
        return steps_per_epoch(train_images, self.batch_size) * self.train_step

    def images_per_second(self) -> float:
        return self.batch_size / self.train_step

    def scored_per_second(self) -> float:
        """Images scored per second in the scoring passes after a fit (where unmeasured, at the
        validation steps' rate: scoring passes are larger, so at least that)."""
        seconds = self.score_row or self.valid_step / self.batch_size
        return 1 / seconds if seconds else float("inf")

    def predict_seconds(self, images: int) -> float:
        """Scoring ``images``: a forward pass each, in scoring passes."""
        return images / self.scored_per_second()

    def after_fit_seconds(self, images: int) -> float:
        """What follows a fit on this machine: scoring ``images``, saving the model for the
        registry (:data:`SAVES_AFTER_FIT`) and building it again to score (its start-up)."""
        return self.predict_seconds(images) + SAVES_AFTER_FIT * self.save + self.startup

    def as_row(self) -> dict:
        return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in asdict(self).items()}  # 4 digits


def measure_speed(search: Search) -> Speed:
    """Time ``search``'s architecture at its default hyperparameters (the pinned ones kept) as its
    fit runs: Keras' ``fit`` on the run's input pipeline (decoded images cached, augmented as the
    fit's are), batch size and image size, for two short epochs of ``STEPS`` training and
    ``VALID_STEPS`` validation batches. The second epoch gives the step times (a training step's:
    the median of its batches, so one batch slowed by something else on the machine does not
    skew the plan); what the build and the fit took beyond two such epochs is the start-up every
    fit pays (Keras' symbolic build, tracing the step functions, filling the cache). Then one
    save. The model is discarded and Keras' global state cleared, so what trains afterwards is as
    it would be without this."""
    settings = search.settings
    hp = kt.HyperParameters()
    hp.merge(search.fixed)
    started = time.perf_counter()
    model = search.architecture.build(hp)  # registers every default
    augment = Augment(strength=hp.get("augment"), recipe=search.settings.augment_recipe)
    train = _dataset(search, "train", STEPS, augment)
    valid = _dataset(search, "valid", VALID_STEPS, None)
    clock = _EpochClock()
    model.fit(train, validation_data=valid, epochs=2, callbacks=[clock], verbose=0)
    fitted = time.perf_counter() - started  # the build, Keras' symbolic build before epoch 1, both epochs
    train_seconds, valid_seconds = clock.epochs[1]
    train_step = statistics.median(clock.batches[1])
    valid_steps = steps_per_epoch(
        min(len(search.parts["valid"]), VALID_STEPS * settings.batch_size), settings.batch_size
    )
    score_row = _score_row_seconds(model, valid, scoring_batch(settings.batch_size, settings.image_size))
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        model.save(Path(folder, "model.keras"))
        save = time.perf_counter() - started
    keras.backend.clear_session()
    startup = max(0.0, fitted - 2 * (train_seconds + valid_seconds))
    valid_step = valid_seconds / valid_steps
    return Speed(search.name, train_step, valid_step, save, startup, settings.batch_size, score_row)


def _score_row_seconds(model, valid, rows: int) -> float:
    """Seconds per image of a scoring pass of ``rows`` images, as the scoring after each fit runs
    them (``predict_on_batch``, :func:`robustness.scoring_batch` rows): the median of three
    passes after one that traces, on ``valid``'s images repeated up to ``rows``."""
    import numpy as np

    pixels = np.concatenate([x for x, _ in valid.as_numpy_iterator()])
    batch = np.resize(pixels, (rows, *pixels.shape[1:]))
    model.predict_on_batch(batch)
    passes = []
    for _ in range(3):
        started = time.perf_counter()
        model.predict_on_batch(batch)
        passes.append(time.perf_counter() - started)
    return statistics.median(passes) / rows


DEGRADE_SAMPLE = 64  # valid images degraded to time the suite


def measure_degrading(valid_rows, settings, degradations: tuple) -> float:
    """Seconds to degrade, re-encode and decode one image under one degradation, as the scoring
    after each fit does: the first :data:`DEGRADE_SAMPLE` of ``valid_rows`` under every one of
    ``degradations`` (0 without any), at ``settings``' image size and seed."""
    from deepfake_detection.model import DeepfakeDetector, DetectorConfig
    from deepfake_detection.robustness import prepare_degraded

    if not degradations:
        return 0.0
    detector = DeepfakeDetector.of(None, DetectorConfig("timing", settings.image_size, 0.5))
    blobs = [Path(f).read_bytes() for f in valid_rows["file"].head(DEGRADE_SAMPLE)]
    started = time.perf_counter()
    for degradation in degradations:
        prepare_degraded(detector, blobs, [""] * len(blobs), degradation, settings.seed)
    return (time.perf_counter() - started) / (len(blobs) * len(degradations))


def _dataset(search: Search, split: str, batches: int, augment):
    """The first ``batches`` batches of ``split`` through the fit's pipeline (cached, shuffled and
    augmented for training)."""
    rows = search.parts[split].head(search.settings.batch_size * batches)
    return search.data(split, augment, shuffle=split == "train", rows=rows, cache=True)


class _EpochClock(keras.callbacks.Callback):
    """Each epoch's (training seconds, validation seconds), and its training batches' seconds."""

    def __init__(self):
        super().__init__()
        self.epochs: list[tuple[float, float]] = []
        self.batches: list[list[float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._begin = time.perf_counter()
        self.batches.append([])

    def on_train_batch_begin(self, batch, logs=None):
        self._batch = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.batches[-1].append(time.perf_counter() - self._batch)

    def on_test_begin(self, logs=None):
        self._test = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        self.epochs.append((self._test - self._begin, end - self._test))
