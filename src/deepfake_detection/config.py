"""Settings and their defaults, shared by the CLI and ``MLproject`` (a test checks they agree)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DATA = "data/combined-real-vs-fake"


@dataclass(frozen=True)
class PrepareSettings:
    source: str = "bench"  # "bench" or "kaggle"
    output: str = DEFAULT_DATA
    kaggle_140k: str = ""  # folder or .zip of the 140k real and fake faces download
    ciplab: str = ""  # folder or .zip of the ciplab real and fake face detection download
    image_size: int = 64  # bench only
    num_images: int = 500  # bench only, per class
    difficulty: float = 0.5  # bench only, 0 = clean generator output
    seed: int = 42
    split: str = "0.7,0.15,0.15"  # bench train/valid/test fractions
    ciplab_split: str = "0.7,0.15,0.15"  # ciplab train/valid/test fractions
    generator_steps: int = 150  # bench only: training steps of each generator
    link_mode: str = "auto"  # kaggle folders: auto (hardlink, else symlink, else copy) | hardlink | symlink | copy
    overwrite: bool = False


@dataclass(frozen=True)
class TrainSettings:
    arch: str = "all"  # "all" or a comma list of architecture names
    data: str = DEFAULT_DATA
    image_size: int = 64
    epochs: int = 3  # per trial and for the final fit (its cap under a budget)
    budget_minutes: float = 0.0  # training minutes on this machine, measured then split; 0 = `epochs` each
    plan: str = ""  # pinned epochs per architecture, "npr=4,spectrum=1@0.5" (@ share of train); wins over the budget
    max_trials: int = 2
    tuner: str = "random"  # hyperband | bayesian | random | none
    executions_per_trial: int = 1
    weights: str = "none"  # none | vggface | imagenet | path to a local weights file
    batch_size: int = 32
    num_samples: int = 0  # cap per split, 0 = all
    cache_budget_mb: float = 2048  # a split is cached (decoded) in memory only below this; else streamed
    seed: int = 42
    patience: int = 3  # early stopping on val_auc
    augment: float = -1.0  # training augmentation strength (JPEG, blur, rescale, flip); -1 = searched by the tuner
    augment_recipe: str = "upload"  # upload: one degradation at a time; chain: the earlier steps in a row
    degradations: str = "standard"  # valid and test also scored under this suite (the election weighs valid's); none
    distribute: str = "none"  # none | mirrored (this machine's GPUs) | multi-host (processes on JAX, below)
    coordinator: str = ""  # multi-host: process 0's HOST:PORT (required there)
    num_processes: int = 1  # multi-host: processes in all
    process_id: int = 0  # multi-host: this process, 0 (logs and registers) .. num_processes - 1
    distribute_timeout: float = 300  # multi-host: seconds to wait for the coordinator and the others
    work_dir: str = "outputs"  # tuner state and checkpoints
    experiment: str = "deepfake-detection"


@dataclass(frozen=True)
class CompareSettings:
    models: str = "all"  # "all", a comma list of architectures, or models:/ URIs
    alias: str = "champion"
    stage: str = ""  # e.g. Production; wins over alias when set
    data: str = DEFAULT_DATA
    n_components: int = 50
    num_samples: int = 0  # cap per split, 0 = all
    degree: int = 3  # polynomial kernel degree
    svm_c: float = 1.0
    fit_samples: int = 20000  # train / valid images (balanced) that fit PCA + SVM and its threshold; test whole
    exact_max_samples: int = 20000  # above this many training rows, only the approximate kernel runs
    approximate_too: bool = True  # where the exact SVM runs, also the Nystroem one beside it
    skip_missing: bool = False
    robustness: bool = False  # also score the test split under the standard degradation suite
    batch_size: int = 64
    seed: int = 42
    work_dir: str = "outputs"  # embedding cache
    experiment: str = "deepfake-detection"  # where the compare runs go (readers: deepfake-comparisons)
