"""``train``: for each architecture, search → fit → threshold on valid → evaluate on test → log →
register, one architecture at a time.

The steps, one module each: :mod:`.study` (settings checks, data, the study folder),
:mod:`.plan` (epochs within a budget, how splits are fed), :mod:`.fit` (the final fit and where
it runs), :mod:`.scores` (calibration, threshold, metrics), :mod:`.record` (MLflow logging and
registration), :mod:`.summary` (the best architecture) and :mod:`.run`, which reads as those steps.

MLflow structure: one parent run per invocation, one child run per architecture, one
grandchild run per keras-tuner trial. The distributed roles of a search are in
:mod:`deepfake_detection.distributed`, multi-host fits in :mod:`deepfake_detection.multihost`.
"""

from deepfake_detection.training.plan import plan_epochs, steps_per_epoch
from deepfake_detection.training.run import run_training
from deepfake_detection.training.study import check_settings, study_dir
from deepfake_detection.training.summary import ArchitectureResult, log_summary

__all__ = [
    "ArchitectureResult",
    "check_settings",
    "log_summary",
    "plan_epochs",
    "run_training",
    "steps_per_epoch",
    "study_dir",
]
