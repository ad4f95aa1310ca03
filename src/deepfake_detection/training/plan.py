"""How long each step trains: epochs per architecture within a budget (or pinned), and how each
split is fed."""

from __future__ import annotations

import math

from deepfake_detection.config import TrainSettings
from deepfake_detection.data.pipeline import plan_input
from deepfake_detection.errors import SettingsError

# Where one whole epoch of every architecture does not fit a budget, each epoch trains on this
# share of the training set at least (in steps of SHARE_STEP); below it the budget is refused.
MIN_SHARE = 0.1
SHARE_STEP = 0.05


def steps_per_epoch(images: int, batch_size: int) -> int:
    return max(1, -(-images // batch_size))


def plan_epochs(
    first: dict[str, float],
    more: dict[str, float],
    budget_seconds: float,
    max_epochs: int,
    weights: dict[str, float] | None = None,
) -> dict:
    """Epochs per architecture within ``budget_seconds``, from what each costs on this machine:
    ``first[name]`` seconds for its first epoch (start-up included) and ``more[name]`` for each
    further one (both summed over its trials and final fit). Every architecture gets one epoch,
    then one more epoch at a time goes to the architecture with the fewest so far for its
    ``weights[name]`` (1 where not given; the cheapest first on a tie) that still fits in what is
    left and is below ``max_epochs``, until none fits: all get epochs in proportion to their
    weights (equal by default) as far as the budget allows, and what the slowest cannot use goes
    to the faster ones. A budget that cannot buy one epoch of each is refused
    (:class:`~deepfake_detection.errors.SettingsError`), naming what would fit. A pure function:
    the same costs give the same plan."""
    names = list(first)
    needed = sum(first.values())
    if needed > budget_seconds:
        raise SettingsError(_refusal(first, budget_seconds))
    weight = {n: (weights or {}).get(n, 1.0) for n in names}
    plan = dict.fromkeys(names, 1)
    left = budget_seconds - needed
    while fits := [n for n in names if plan[n] < max_epochs and more[n] <= left]:
        name = min(fits, key=lambda n: (plan[n] / weight[n], more[n], n))
        plan[name] += 1
        left -= more[name]
    return plan


def plan_share(
    first: dict[str, float], train: dict[str, float], budget_seconds: float, spent: float = 0.0, spent_on: str = ""
) -> float:
    """The share of the training set each epoch trains on: 1 where one whole epoch of every
    architecture (``first``, as for :func:`plan_epochs`) fits in ``budget_seconds``; otherwise the
    largest multiple of ``SHARE_STEP`` for which it does, ``train[name]`` being the part of
    ``first[name]`` that scales with the training images (the training steps; start-up,
    validation and saving do not). Fewer steps per epoch rather than a refusal: a user who asks
    for 4 minutes on a slow machine gets a (weaker) model in 4 minutes, as an AutoML time budget
    would give. Below ``MIN_SHARE`` it is refused, naming what would fit (``spent``: seconds of
    the budget that are not training's, ``spent_on`` what: measuring by default, added to the
    budget it names)."""
    needed = sum(first.values())
    if needed <= budget_seconds:
        return 1.0
    scaling = sum(train.values())
    share = math.floor((budget_seconds - (needed - scaling)) / scaling / SHARE_STEP + 1e-9) * SHARE_STEP
    if share < MIN_SHARE:
        raise SettingsError(
            _refusal(
                scaled(first, train, MIN_SHARE),
                budget_seconds,
                f"on {MIN_SHARE:.0%} of the training set",
                needed + spent,
                spent,
                spent_on,
            )
        )
    return round(share, 2)


def scaled(costs: dict[str, float], train: dict[str, float], share: float) -> dict[str, float]:
    """``costs`` with their training steps' part ``train`` cut to ``share``."""
    return {n: costs[n] - (1 - share) * train[n] for n in costs}


def planned_seconds(plan: dict, first: dict[str, float], more: dict[str, float]) -> dict[str, float]:
    return {n: first[n] + (plan[n] - 1) * more[n] for n in plan}


def _refusal(
    first: dict[str, float],
    budget_seconds: float,
    what: str = "",
    whole: float = 0.0,
    spent: float = 0.0,
    spent_on: str = "",
) -> str:
    costs = ", ".join(f"{n} {s:.0f} s" for n, s in first.items())
    fitting, total = [], 0.0
    for name in sorted(first, key=first.get):  # the cheapest first, as many as fit together
        if total + first[name] <= budget_seconds:
            fitting.append(name)
            total += first[name]
    would_fit = ", ".join(fitting) if fitting else "none of them"
    minutes = (sum(first.values()) + spent) / 60
    where = f" {what}" if what else ""
    left = f" (what is left after {spent_on or f'measuring {spent:.0f} s'})" if spent else ""
    whole_epochs = f" ({whole / 60:.2f} for whole epochs)" if whole else ""
    return (
        f"a budget of {budget_seconds:.0f} s{left} cannot train one epoch of every architecture on this "
        f"machine{where}: "
        f"one epoch each costs {sum(first.values()):.0f} s ({costs}). Within the budget, one epoch of each "
        f"fits for: {would_fit}. Raise --budget-minutes to at least {minutes:.2f}{whole_epochs}, train fewer "
        "architectures (--arch), or pin the epochs with --plan"
    )


def parse_plan(text: str, names: list[str]) -> tuple[dict[str, int], dict[str, float]]:
    """``--plan`` (``name=epochs,...``, each optionally ``name=epochs@share`` to train each epoch
    on that share of the training set) as (epochs, share) per architecture; it must name each of
    ``names`` (the architectures trained), and nothing else, with a whole number of epochs >= 1
    and a share in (0, 1]."""
    epochs: dict[str, int] = {}
    shares: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, value = item.partition("=")
        name = name.strip()
        count, _, share = value.strip().partition("@")
        if not sep or not count.isdigit() or int(count) < 1 or not _is_share(share or "1"):
            raise SettingsError(
                f"--plan: {item!r} is not NAME=EPOCHS or NAME=EPOCHS@SHARE with EPOCHS a whole number >= 1 "
                "and SHARE in (0, 1]"
            )
        if name in epochs:
            raise SettingsError(f"--plan names {name} twice")
        epochs[name], shares[name] = int(count), float(share or 1)
    extra = [n for n in epochs if n not in names]
    if extra:
        raise SettingsError(f"--plan names {', '.join(extra)}, which this run does not train ({', '.join(names)})")
    missing = [n for n in names if n not in epochs]
    if missing:
        raise SettingsError(f"--plan gives no epochs for {', '.join(missing)}: name every architecture trained")
    return {n: epochs[n] for n in names}, {n: shares[n] for n in names}


def format_plan(epochs: dict[str, int], shares: dict[str, float]) -> str:
    """The ``--plan`` text that pins ``epochs`` and ``shares``."""
    return ",".join(f"{n}={e}" + (f"@{shares[n]:g}" if shares.get(n, 1) < 1 else "") for n, e in epochs.items())


def _is_share(text: str) -> bool:
    try:
        return 0 < float(text) <= 1
    except ValueError:
        return False


def print_input_plans(settings: TrainSettings, parts: dict) -> None:
    """How each split will be fed (cached in memory or streamed), for the budget in ``settings``."""
    for split, rows in parts.items():
        plan = plan_input(
            len(rows), settings.image_size, shuffle=split == "train", cache_budget_mb=settings.cache_budget_mb
        )
        print(f"input {split}: {plan.describe()} (cache budget {settings.cache_budget_mb:g} MiB)")
