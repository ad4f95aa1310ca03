"""Errors the user can act on. The CLI prints their message and exits non-zero."""


class DeepfakeError(Exception):
    """Base class: something about the input or the environment is wrong, and we say what."""


class LayoutError(DeepfakeError):
    """A source folder or archive does not have the expected layout."""


class UnsafeArchiveError(DeepfakeError):
    """A zip archive has members that would be written outside the target folder."""


class DatasetError(DeepfakeError):
    """A prepared dataset is missing, incomplete or inconsistent."""


class TrackingError(DeepfakeError):
    """The MLflow tracking server cannot be reached or used."""


class MissingModelError(DeepfakeError):
    """A model, registered model, alias or stage asked for does not exist, or is not a detector."""


class TuningError(DeepfakeError):
    """A distributed hyperparameter search cannot start or go on (address, chief, roles)."""


class DistributedError(DeepfakeError):
    """The processes of a multi-host fit cannot start, do not agree, or one of them stopped."""


class SettingsError(DeepfakeError, ValueError):
    """A setting is out of range or does not fit the rest (an architecture and an image size, say).

    Also a ``ValueError``, as keras-tuner's ``FatalValueError`` is, so code that guards against
    bad values catches it; the CLI prints its message instead of a traceback.
    """


class WeightsError(DeepfakeError):
    """Pretrained weights are missing, unavailable offline, or do not fit the architecture."""
