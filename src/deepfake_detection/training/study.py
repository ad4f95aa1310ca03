"""What one architecture's training is: the settings checked, the data loaded, and the study
(its working folder, keyed on every setting that changes what a trial scores)."""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import keras_tuner as kt

from deepfake_detection import multihost, tracking, tuning
from deepfake_detection.architectures import Architecture, get_architecture, parse_architectures
from deepfake_detection.config import TrainSettings
from deepfake_detection.data.pipeline import Augment, load_splits, make_dataset, sample
from deepfake_detection.degradations import suite
from deepfake_detection.errors import SettingsError
from deepfake_detection.training.plan import parse_plan, steps_per_epoch

DISTRIBUTE = ("none", "mirrored", "multi-host")


def check_settings(settings: TrainSettings) -> list[str]:
    """Refuse unknown architectures, tuners and distributions, image sizes an architecture cannot
    take and weights it cannot load, before any run opens; returns the architecture names."""
    names = parse_architectures(settings.arch)
    if settings.tuner not in tuning.TUNERS:
        raise SettingsError(f"unknown tuner {settings.tuner!r}; choose from {', '.join(tuning.TUNERS)}")
    if settings.distribute not in DISTRIBUTE:
        raise SettingsError(f"unknown distribution {settings.distribute!r}; choose from {', '.join(DISTRIBUTE)}")
    if settings.distribute == "multi-host":
        multihost.check(settings)
    suite(settings.degradations)  # raises on an unknown suite or degradation
    for name in names:
        get_architecture(name, settings.image_size, settings.weights)  # raises on a size or weights it refuses
    if settings.plan:
        _, shares = parse_plan(settings.plan, names)
        if settings.distribute == "multi-host" and min(shares.values()) < 1:
            raise SettingsError("--plan: a multi-host fit trains on the whole training set; drop the @SHARE")
    elif settings.budget_minutes > 0 and settings.distribute == "multi-host":
        raise SettingsError(
            "--budget-minutes is measured and held on one machine; a multi-host fit runs the epochs it is given: "
            "pin them with --plan (or --epochs)"
        )
    elif settings.budget_minutes > 0 and settings.tuner == "hyperband":
        raise SettingsError(
            "--budget-minutes plans trials of the same epochs as the final fit, and hyperband sets its own: "
            "use --tuner random or bayesian with a budget, or pin the epochs with --plan"
        )
    return names


# Every setting that changes what a trial scores; a study resumes only under all of them.
STUDY_KEYS = (
    "image_size",
    "seed",
    "augment",
    "augment_recipe",
    "tuner",
    "epochs",
    "batch_size",
    "weights",
    "executions_per_trial",
    "num_samples",
)


def study_dir(name: str, settings: TrainSettings, digest: str, share: float = 1.0) -> Path:
    """The working folder of one search and fit (tuner state, checkpoints); its name is the study.

    Keyed on the architecture, the dataset digest and every setting in :data:`STUDY_KEYS`, so a
    ``train`` with other epochs, tuner, batch size… starts a new study instead of mixing trials
    scored under different settings; ``max_trials`` is not in it (more trials extend a study).
    A ``share`` of the training set below 1 (a plan's) is in it too.
    """
    key = json.dumps(
        {k: getattr(settings, k) for k in STUDY_KEYS} | ({"train_share": share} if share < 1 else {}), sort_keys=True
    )
    tag = hashlib.sha256(key.encode()).hexdigest()[:10]
    return Path(settings.work_dir) / f"{name}-{digest}-{settings.image_size}px-{tag}"


@dataclass
class Search:
    """What one architecture's search and final fit need: the HyperModel, its data, the
    hyperparameters pinned by the settings, and the working folder whose name is the study."""

    architecture: Architecture
    settings: TrainSettings
    parts: dict  # split → manifest rows
    digest: str
    fixed: kt.HyperParameters
    share: float = 1.0  # of the training set, for every trial and the final fit

    @classmethod
    def create(cls, name: str, settings: TrainSettings, parts: dict, digest: str, share: float = 1.0) -> Search:
        """Seed everything, then check pretrained weights fit by building once (fail fast). A
        ``share`` below 1 trains on that share of the training images (balanced over the labels,
        the same for every trial and the final fit, for ``settings.seed``)."""
        import tensorflow as tf

        warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
        keras.utils.set_random_seed(settings.seed)
        tf.config.experimental.enable_op_determinism()
        architecture = get_architecture(name, settings.image_size, settings.weights)
        if architecture.pretrained:
            architecture.build(kt.HyperParameters())
            keras.backend.clear_session()
            keras.utils.set_random_seed(settings.seed)
        if share < 1:
            parts = parts | {"train": share_of(parts["train"], share, settings.seed)}
        architecture.training_steps = settings.epochs * steps_per_epoch(len(parts["train"]), settings.batch_size)
        fixed = kt.HyperParameters()
        if settings.augment >= 0:  # a fixed augmentation strength instead of searching it
            fixed.Fixed("augment", settings.augment)
        return cls(architecture, settings, parts, digest, fixed, share)

    @property
    def name(self) -> str:
        return self.architecture.name

    @property
    def run_dir(self) -> Path:
        return study_dir(self.name, self.settings, self.digest, self.share)

    @property
    def search_dir(self) -> Path:
        """keras-tuner's folder of this search (``directory/project_name``): oracle, trials, worker locks."""
        return self.run_dir / "tuner" / "search"

    @property
    def tags(self) -> dict:
        return {"architecture": self.name, "dataset_digest": self.digest}

    def data(self, split: str, augment=None, shuffle: bool = False, rows=None, cache: bool | None = None):
        """A split (or ``rows`` of it) as a batched ``tf.data.Dataset`` of (pixels, label), fake = 1;
        cached in memory as the cache budget decides, unless ``cache`` says."""
        s = self.settings
        return make_dataset(
            s.data,
            split,
            s.image_size,
            s.batch_size,
            augment=augment,
            shuffle=shuffle,
            seed=s.seed,
            cache=cache,
            cache_budget_mb=s.cache_budget_mb,
            manifest=self.parts[split] if rows is None else rows,
        )

    @functools.cached_property
    def valid(self):
        return self.data("valid")

    @functools.cached_property
    def test(self):
        return self.data("test")

    def train_data(self, strength: float):
        """The training split, shuffled and augmented with ``strength``."""
        return self.data("train", Augment(strength=strength, recipe=self.settings.augment_recipe), shuffle=True)

    def tuner(self, strategy=None, parent_run_id: str | None = None, tags: dict | None = None) -> kt.Tuner:
        """The keras-tuner search, resumed from ``run_dir`` when it exists."""
        s = self.settings
        return tuning.make_tuner(
            s.tuner,
            tuning.AugmentedHyperModel(self.architecture, self.train_data),
            directory=self.search_dir.parent,
            project_name=self.search_dir.name,
            max_trials=s.max_trials,
            epochs=s.epochs,
            executions_per_trial=s.executions_per_trial,
            seed=s.seed,
            tags={**self.tags, **(tags or {})},
            fixed=self.fixed,
            parent_run_id=parent_run_id,
            distribution_strategy=strategy,
        )


def share_of(rows, share: float, seed: int):
    """``share`` of the training ``rows`` (at least 2), balanced over the labels, the same for ``seed``."""
    return sample(rows, max(2, int(share * len(rows))), seed)


def load_training_data(settings: TrainSettings) -> tuple[TrainSettings, dict, str]:
    """The settings with a normalised data path, the split manifests and the dataset digest."""
    parts = load_splits(settings.data, settings.num_samples, settings.seed)
    digest = tracking.dataset_digest_of(settings.data)
    return replace(settings, data=str(Path(settings.data))), parts, digest
