"""How long each step trains: epochs per architecture within a budget (or pinned), and how each
split is fed."""

from __future__ import annotations

from deepfake_detection.config import TrainSettings
from deepfake_detection.data.pipeline import plan_input
from deepfake_detection.errors import SettingsError


def steps_per_epoch(images: int, batch_size: int) -> int:
    return max(1, -(-images // batch_size))


def plan_epochs(first: dict[str, float], more: dict[str, float], budget_seconds: float, max_epochs: int) -> dict:
    """Epochs per architecture within ``budget_seconds``, from what each costs on this machine:
    ``first[name]`` seconds for its first epoch (start-up included) and ``more[name]`` for each
    further one (both summed over its trials and final fit). Every architecture gets one epoch,
    then one more epoch at a time goes to the architecture with the fewest so far (the cheapest
    first on a tie) that still fits in what is left and is below ``max_epochs``, until none fits:
    all get the same number as far as the budget allows, and what the slowest cannot use goes to
    the faster ones. A budget that cannot buy one epoch of each is refused
    (:class:`~deepfake_detection.errors.SettingsError`), naming what would fit. A pure function:
    the same costs give the same plan."""
    names = list(first)
    needed = sum(first.values())
    if needed > budget_seconds:
        raise SettingsError(_refusal(first, budget_seconds))
    plan = dict.fromkeys(names, 1)
    left = budget_seconds - needed
    while fits := [n for n in names if plan[n] < max_epochs and more[n] <= left]:
        name = min(fits, key=lambda n: (plan[n], more[n], n))
        plan[name] += 1
        left -= more[name]
    return plan


def planned_seconds(plan: dict, first: dict[str, float], more: dict[str, float]) -> dict[str, float]:
    return {n: first[n] + (plan[n] - 1) * more[n] for n in plan}


def _refusal(first: dict[str, float], budget_seconds: float) -> str:
    costs = ", ".join(f"{n} {s:.0f} s" for n, s in first.items())
    fitting, total = [], 0.0
    for name in sorted(first, key=first.get):  # the cheapest first, as many as fit together
        if total + first[name] <= budget_seconds:
            fitting.append(name)
            total += first[name]
    would_fit = ", ".join(fitting) if fitting else "none of them"
    minutes = sum(first.values()) / 60
    return (
        f"a budget of {budget_seconds:.0f} s cannot train one epoch of every architecture on this machine: "
        f"one epoch each costs {sum(first.values()):.0f} s ({costs}). Within the budget, one epoch of each "
        f"fits for: {would_fit}. Raise --budget-minutes to at least {minutes:.2f}, train fewer architectures "
        "(--arch), or pin the epochs with --plan"
    )


def parse_plan(text: str, names: list[str]) -> dict[str, int]:
    """``--plan`` (``name=epochs,...``) as epochs per architecture; it must name each of ``names``
    (the architectures trained), and nothing else, with a whole number of epochs >= 1."""
    plan: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not value.strip().isdigit() or int(value) < 1:
            raise SettingsError(f"--plan: {item!r} is not NAME=EPOCHS with EPOCHS a whole number >= 1")
        if name in plan:
            raise SettingsError(f"--plan names {name} twice")
        plan[name] = int(value)
    extra = [n for n in plan if n not in names]
    if extra:
        raise SettingsError(f"--plan names {', '.join(extra)}, which this run does not train ({', '.join(names)})")
    missing = [n for n in names if n not in plan]
    if missing:
        raise SettingsError(f"--plan gives no epochs for {', '.join(missing)}: name every architecture trained")
    return {n: plan[n] for n in names}


def print_input_plans(settings: TrainSettings, parts: dict) -> None:
    """How each split will be fed (cached in memory or streamed), for the budget in ``settings``."""
    for split, rows in parts.items():
        plan = plan_input(
            len(rows), settings.image_size, shuffle=split == "train", cache_budget_mb=settings.cache_budget_mb
        )
        print(f"input {split}: {plan.describe()} (cache budget {settings.cache_budget_mb:g} MiB)")
