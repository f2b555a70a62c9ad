"""Learning-rate schedules, run by :class:`torch.optim.lr_scheduler.LambdaLR`.

``constant`` (the seed's) keeps ``--lr``; ``cosine`` decays it to 0 over the run:
``lr * 0.5 * (1 + cos(pi * step / total_steps))`` at optimisation step ``step`` (from 0).

Why ``LambdaLR`` with the closed form rather than ``CosineAnnealingLR``: the latter updates the
rate by a chained ratio of cosines, which drifts from the closed form by a few ulps (on 6 of 8
steps for an 8-step run, 3,979 of 4,100 for a 4,100-step one), and Adam carries such a
difference into the weights; the closed form gives the same rates to the bit as the schedule of
earlier versions, and the rate of a step depends on its number only, so a resumed run
positions its scheduler at the step it stopped at.
"""

from __future__ import annotations

import math
import warnings
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR

#: The ``--lr-schedule`` choices.
LR_SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """The multiplier of ``--lr`` at optimisation step ``step`` (from 0) of ``total_steps``.

    >>> lr_factor("constant", 500, 1000)
    1.0
    >>> lr_factor("cosine", 500, 1000)
    0.5
    >>> lr_factor("cosine", 1000, 1000)
    0.0
    """
    if schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    base_lr: float,
    schedule: str,
    total_steps: int,
    done_steps: int = 0,
) -> LambdaLR:
    """The scheduler of ``optimizer``, set to the rate of step ``done_steps`` (> 0: resumed).

    Call :func:`advance` after every optimisation step.
    """
    for group in optimizer.param_groups:  # what LambdaLR scales (a checkpoint may lack it)
        group["initial_lr"] = base_lr
    factor = partial(lr_factor, schedule, total_steps=total_steps)
    return LambdaLR(optimizer, factor, last_epoch=done_steps - 1)


def advance(scheduler: LambdaLR) -> None:
    """Set the rate of the next step (after ``optimizer.step()``, or a step GradScaler skipped).

    GradScaler skips the optimiser's step when fp16 gradients overflow, as they may on the first
    steps; the rate still follows the step number, so torch's warning about a scheduler that
    steps before its optimiser is silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Detected call of `lr_scheduler\.step\(\)`", category=UserWarning
        )
        scheduler.step()
