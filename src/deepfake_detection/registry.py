"""The Model Registry: register a detector, elect its champion and challenger, promote by hand.

Every architecture has one registered model, ``deepfake-<arch>``. Its versions carry tags
(architecture, dataset digest, valid and test ROC-AUC, degenerate, run) from which the election
below decides which version is ``champion`` (stage ``Production``) and which ``challenger``
(stage ``Staging``). The election reads ``valid`` only: test numbers are reported, never used
to choose.
"""

from __future__ import annotations

import random
import time
import warnings
from dataclasses import dataclass

from deepfake_detection.errors import TrackingError

CHAMPION, CHALLENGER = "champion", "challenger"
STAGES = {CHAMPION: "Production", CHALLENGER: "Staging"}
# Registered-model tags left by a promotion by hand: the version a person made champion, and the
# newest version then; elections afterwards weigh only the first and versions after the second.
HAND_PICKED, HAND_PICKED_AMONG = "champion_promoted_by_hand", "champion_promoted_by_hand_among"
VALID_SCORE = "valid_roc_auc"  # the version tag the election compares
# Valid ROC-AUC under the worst degradation of the suite: where every candidate has it, the
# election compares the mean of it and VALID_SCORE (robust_score).
VALID_WORST = "valid_worst_degraded_roc_auc"


DEGRADED_TAGS = tuple(
    f"{k}{end}" for k in ("mean_degraded_roc_auc", "worst_degraded_roc_auc") for end in ("", "_ci_low", "_ci_high")
)


def registered_name(architecture: str) -> str:
    return f"deepfake-{architecture}"


def name_in_uri(model_uri: str) -> str:
    """The registered model a ``models:/<name>@<alias>`` or ``models:/<name>/<stage or version>`` URI names."""
    return model_uri.removeprefix("models:/").split("@", 1)[0].split("/", 1)[0]


@dataclass(frozen=True)
class Election:
    """The registry state the election asks for: a champion and, if any, a challenger.
    ``held_back``: the version the election made champion but the user may not release
    (:func:`within_reach`)."""

    champion: str | None
    challenger: str | None
    held_back: str | None = None


def elect(
    versions: list, current_champion: str | None, *, dataset_digest: str, hand_picked: str = "", among: int = 0
) -> Election:
    """The election rule (docs/training.md), as a function of the versions alone (``ModelVersion`` objects).

    - Candidates: the versions on the current champion's dataset digest (on ``dataset_digest``
      when there is no champion yet) that carry a valid ROC-AUC and are not degenerate (no
      better than chance on valid); after a promotion by hand, only the version picked and
      the versions newer than the newest one at that time.
    - Champion: the candidate with the best **valid** score, the earliest on a tie: where every
      candidate was also scored under the degradation suite, the mean of its clean and its
      worst-case valid ROC-AUC (:func:`robust_score`); otherwise (a version from before the
      suite) the clean valid ROC-AUC of each, so that all are compared on the same footing.
      The current champion always takes part, even unscored (a person may have promoted it by
      hand). No candidate, no champion.
    - Challenger: the newest version after the champion (the newest of all when there is no
      champion), if any; no version holds the alias otherwise.
    """
    by_number = {str(v.version): v for v in versions}
    champion = by_number.get(current_champion or "")
    digest = champion.tags.get("dataset_digest") if champion is not None else dataset_digest
    candidates = [
        v
        for v in versions
        if v.tags.get("dataset_digest") == digest
        and VALID_SCORE in v.tags
        and v.tags.get("degenerate") != "true"
        and (str(v.version) == hand_picked or int(v.version) > among)
    ]
    if champion is not None:
        candidates.append(champion)
    if not candidates:
        newest = max((int(v.version) for v in versions), default=None)
        return Election(champion=None, challenger=None if newest is None else str(newest))
    robust = all(VALID_WORST in v.tags for v in candidates)
    best = max(candidates, key=lambda v: (robust_score(v.tags, robust), -int(v.version)))
    newer = [int(v.version) for v in versions if int(v.version) > int(best.version)]
    return Election(champion=str(best.version), challenger=str(max(newer)) if newer else None)


def robust_score(scores: dict, robust: bool = True) -> float:
    """What the election compares, from a version's tags (or any dict with the same keys): the
    mean of the clean valid ROC-AUC and the worst valid ROC-AUC over the degradation suite when
    ``robust`` and it is there, else the clean valid ROC-AUC. The mean of the two, neither alone:
    the worst case alone would prefer a detector that is mediocre everywhere (one that ignores
    the generator's fine trace loses little to blur) to one that is excellent clean and
    somewhat weaker degraded; the clean score alone ignores that an 80 % crop took a 0.997
    detector to 0.726 (BENCHMARKS §4)."""
    clean = float(scores.get(VALID_SCORE, "-inf"))
    if robust and VALID_WORST in scores:
        return (clean + float(scores[VALID_WORST])) / 2
    return clean


def within_reach(election: Election, current_champion: str | None, versions: list) -> Election:
    """The election as far as a user who may not move the champion can take it: the champion
    stays, the newest version after it is challenger, the elected one is ``held_back``."""
    if election.champion == current_champion:
        return election
    newer = [int(v.version) for v in versions if current_champion is None or int(v.version) > int(current_champion)]
    return Election(current_champion, str(max(newer)) if newer else None, held_back=election.champion)


def register(
    model_uri: str,
    architecture: str,
    *,
    dataset_digest: str,
    run_id: str,
    valid: dict,
    test: dict,
    degenerate: bool = False,
    image_size: int | None = None,
    may_release: bool = True,
) -> tuple[str, str]:
    """Register ``model_uri`` as ``deepfake-<arch>`` and hold the election; undo the version on failure.

    ``valid`` / ``test``: the version's metrics (``roc_auc`` from each, and the test interval's
    ``roc_auc_ci_low`` / ``roc_auc_ci_high`` when present, are kept as tags). A ``degenerate``
    version (no better than chance on valid) is registered but never elected champion.
    Returns ``(version, role)``, role ``champion`` or ``challenger``. The caller decides whether
    this user ``may_release`` (move the champion; :func:`deepfake_detection.access.client.may_release`):
    one who may register but not release (a trainer on a server with authentication) leaves a
    version the election would make champion as challenger, tagged ``awaiting_release``, and is
    told so.
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    name = registered_name(architecture)
    tags = {
        "architecture": architecture,
        "dataset_digest": dataset_digest,
        "positive_class": "fake",
        VALID_SCORE: f"{valid['roc_auc']:.6f}",
        "test_roc_auc": f"{test['roc_auc']:.6f}",
        **{f"test_{k}": f"{test[k]:.6f}" for k in ("roc_auc_ci_low", "roc_auc_ci_high") if k in test},
        **{f"valid_{k}": f"{valid[k]:.6f}" for k in ("worst_degraded_roc_auc", "mean_degraded_roc_auc") if k in valid},
        **{f"test_{k}": f"{test[k]:.6f}" for k in DEGRADED_TAGS if k in test},
        "degenerate": str(bool(degenerate)).lower(),
        "run_id": run_id,
    }
    version = str(mlflow.register_model(model_uri, name, tags=tags).version)
    try:
        describe(client, name, architecture, version, image_size, dataset_digest, run_id, valid, test)
        settled = settle(client, architecture, dataset_digest, may_release=may_release)
    except BaseException as error:
        try:
            client.delete_model_version(name, version)
        except Exception as undo:  # e.g. a trainer may not delete versions (MANAGE)
            raise TrackingError(
                f"{name} version {version} was registered, then {type(error).__name__}: {error}; removing it "
                f"failed too ({undo}); it is left for someone with MANAGE on {name} to delete"
            ) from error
        raise
    if settled.held_back == version:
        client.set_model_version_tag(name, version, "awaiting_release", "true")
        print(
            f"{name} version {version} has the best valid score ({robust_score(tags):.3f}) and would be {CHAMPION}, "
            f"but this user may not move @{CHAMPION} / {STAGES[CHAMPION]} (MANAGE on {name}, the release-manager "
            f"role): it stays {CHALLENGER} ({STAGES[CHALLENGER]}). A release manager promotes it with "
            f"`deepfake-detection promote --arch {architecture} --version {version}`."
        )
    return version, CHAMPION if settled.champion == version else CHALLENGER


def _interval(metrics: dict, key: str) -> str:
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    return f"{metrics[key]:.3f}" + (f" [95 % CI {low:.3f}, {high:.3f}]" if low is not None else "")


def describe(client, name, architecture, version, image_size, dataset_digest, run_id, valid, test) -> None:
    """Descriptions and tags that answer "what is this and how good" in the registry pages: the
    model's (architecture, input, positive class, how to load it) and the version's (test
    metrics with their intervals, valid ROC-AUC, dataset digest, run)."""
    size = f"{image_size}x{image_size} RGB" if image_size else "RGB"
    client.update_registered_model(
        name,
        description=(
            f"Deepfake image detector, architecture {architecture}, input {size} (any image is resized). "
            "Output p_fake: probability of the positive class fake (1); real is 0. "
            f"Load the best version with mlflow.pyfunc.load_model('models:/{name}@{CHAMPION}') "
            f"(or models:/{name}/{STAGES[CHAMPION]}), or `deepfake-detection predict --model {architecture}`. "
            f"The {CHAMPION} is the version with the best valid score on its dataset (the mean of its clean and "
            "worst-degraded valid ROC-AUC); test metrics are "
            "reported, never used to choose."
        ),
    )
    tags = {"architecture": architecture, "positive_class": "fake", "task": "real-vs-fake images"}
    for key, value in (tags | ({"image_size": str(image_size)} if image_size else {})).items():
        _set_model_tag(client, name, key, value)
    lines = [f"test ROC-AUC {_interval(test, 'roc_auc')}"]
    lines += [f"test {k} {_interval(test, k)}" for k in ("accuracy", "f1") if k in test]
    if "worst_degraded_roc_auc" in test:
        lines += [
            f"test ROC-AUC under the degradation suite: mean {_interval(test, 'mean_degraded_roc_auc')}, "
            f"worst {_interval(test, 'worst_degraded_roc_auc')}"
        ]
    if "worst_degraded_roc_auc" in valid:
        clean, worst = valid["roc_auc"], valid["worst_degraded_roc_auc"]
        lines += [
            f"valid ROC-AUC {clean:.3f}, worst degraded {worst:.3f}: the election compares their mean, "
            f"{robust_score({VALID_SCORE: clean, VALID_WORST: worst}):.3f}"
        ]
    else:
        lines += [f"valid ROC-AUC {valid['roc_auc']:.3f} (what the election compares)"]
    lines += [f"dataset digest {dataset_digest}", f"run {run_id}", "positive class: fake (1)"]
    client.update_model_version(name, version, description="; ".join(lines))


def _set_model_tag(client, name: str, key: str, value: str) -> None:
    """Set a registered-model tag; two processes registering at once may both insert it (a
    unique-key error on PostgreSQL): then it is there already, with the value both wanted."""
    from mlflow.exceptions import MlflowException

    try:
        client.set_registered_model_tag(name, key, value)
    except MlflowException:
        if client.get_registered_model(name).tags.get(key) != value:
            raise


def settle(client, architecture: str, dataset_digest: str, rounds: int = 20, may_release: bool = True) -> Election:
    """Bring the registry to the :func:`elect` state (:func:`within_reach` when the user may not
    release: ``may_release`` is the caller's decision) and return it.

    Each process ends with a read confirming that state for every version it sees; a version
    created after that read belongs to a process that reads (and corrects) later, and both
    compute the same state from the same versions. So concurrent registrations converge,
    without a lock the registry does not offer.
    """
    from mlflow.exceptions import MlflowException

    name = registered_name(architecture)
    last_error: Exception | str = "the registry kept changing"
    for _ in range(rounds):
        model = client.get_registered_model(name)  # its aliases and tags, then every version
        aliases = {alias: str(version) for alias, version in model.aliases.items()}
        versions = client.search_model_versions(f"name='{name}'", max_results=10000)
        election = elect(
            versions,
            aliases.get(CHAMPION),
            dataset_digest=dataset_digest,
            hand_picked=model.tags.get(HAND_PICKED, ""),
            among=int(model.tags.get(HAND_PICKED_AMONG, 0)),
        )
        if not may_release:
            election = within_reach(election, aliases.get(CHAMPION), versions)
        stages = {str(v.version): v.current_stage for v in versions}
        wrong = [
            (role, version)
            for role, version in ((CHAMPION, election.champion), (CHALLENGER, election.challenger))
            if (version is None and role in aliases)
            or (version is not None and (aliases.get(role) != version or stages[version] != STAGES[role]))
        ]
        if not wrong:
            return election
        try:
            for role, version in wrong:
                if version is None:
                    retire(client, name, role, aliases[role])
                else:
                    promote(architecture, version, role)
        except MlflowException as error:  # e.g. two processes setting one alias at once: read again
            last_error = error
        time.sleep(random.uniform(0.02, 0.2))
    raise TrackingError(f"could not settle the champion of {name} in {rounds} rounds: {last_error}")


def promote(architecture: str, version: str | int, role: str, by_hand: bool = False) -> None:
    """Give a version the alias ``role`` and its stage (champion → Production, challenger → Staging).
    ``by_hand``: a person chose it; older versions no longer take part in elections."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if role not in STAGES:
        raise TrackingError(f"role must be {CHAMPION!r} or {CHALLENGER!r}, got {role!r}")
    client = MlflowClient()
    name = registered_name(architecture)
    other = CHALLENGER if role == CHAMPION else CHAMPION
    try:
        if str(client.get_model_version_by_alias(name, other).version) == str(version):
            client.delete_registered_model_alias(name, other)  # one role per version
    except MlflowException:
        pass  # no version holds the other alias
    with warnings.catch_warnings():  # stages are deprecated in MLflow 3 but still supported
        warnings.simplefilter("ignore", FutureWarning)
        client.set_registered_model_alias(name, role, str(version))
        # One version per stage: the one there before is archived.
        client.transition_model_version_stage(name, str(version), STAGES[role], archive_existing_versions=True)
    if by_hand and role == CHAMPION:
        newest = max(int(v.version) for v in client.search_model_versions(f"name='{name}'", max_results=10000))
        client.set_registered_model_tag(name, HAND_PICKED, str(version))
        client.set_registered_model_tag(name, HAND_PICKED_AMONG, str(newest))


def retire(client, name: str, role: str, version: str) -> None:
    """Take ``role``'s alias away from ``version`` and archive it (the election left the role empty)."""
    client.delete_registered_model_alias(name, role)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if client.get_model_version(name, version).current_stage == STAGES[role]:
            client.transition_model_version_stage(name, version, "Archived")
