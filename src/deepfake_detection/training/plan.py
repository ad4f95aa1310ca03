"""How long each step trains: epochs per architecture within a budget, and how each split is fed."""

from __future__ import annotations

from deepfake_detection.architectures import Architecture
from deepfake_detection.config import TrainSettings
from deepfake_detection.data.pipeline import plan_input


def steps_per_epoch(images: int, batch_size: int) -> int:
    return max(1, -(-images // batch_size))


def plan_epochs(architectures: list[Architecture], train_images: int, budget_minutes: float, max_epochs: int) -> dict:
    """Final-fit epochs per architecture: ``max_epochs`` each without a budget. With one, every
    architecture gets one epoch, then one more epoch at a time goes to the architecture with the
    fewest so far (the cheapest first on a tie) that still fits in what is left of the budget and
    is below ``max_epochs``, until none fits. So all get the same number of epochs as far as the
    budget allows, and what the slowest cannot use goes to the faster ones. Costs are each
    architecture's measured seconds per epoch (:meth:`Architecture.epoch_seconds`). A pure
    function of its arguments: the same settings give the same plan on any machine (and the same
    models on the same kind of processor: TensorFlow's CPU kernels differ between families)."""
    if budget_minutes <= 0:
        return {a.name: max_epochs for a in architectures}
    cost = {a.name: a.epoch_seconds(train_images) for a in architectures}
    plan = dict.fromkeys(cost, 1)
    left = budget_minutes * 60.0 - sum(cost.values())
    while fits := [n for n in cost if plan[n] < max_epochs and cost[n] <= left]:
        name = min(fits, key=lambda n: (plan[n], cost[n], n))
        plan[name] += 1
        left -= cost[name]
    return {a.name: plan[a.name] for a in architectures}


def print_input_plans(settings: TrainSettings, parts: dict) -> None:
    """How each split will be fed (cached in memory or streamed), for the budget in ``settings``."""
    for split, rows in parts.items():
        plan = plan_input(
            len(rows), settings.image_size, shuffle=split == "train", cache_budget_mb=settings.cache_budget_mb
        )
        print(f"input {split}: {plan.describe()} (cache budget {settings.cache_budget_mb:g} MiB)")
