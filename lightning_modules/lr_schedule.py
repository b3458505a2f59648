"""A diffusers learning-rate schedule whose total step count is read when training has started.

The schedules (``linear``, ``cosine``, ...) need the run's total optimizer steps, which Lightning computes from the
training dataloader (``trainer.estimated_stepping_batches``). Reading it inside ``configure_optimizers`` makes
Lightning build the dataloader before it restores the checkpoint, and then the restored dataloader position is
silently dropped (Lightning issue #20550: an epoch-based run resumed mid-epoch starts its epoch over). Here the
total is read on the first scheduler step instead, after Lightning has built and restored the loader. At step 0
every diffusers schedule gives the same factor whatever the total (0 in warmup, else 1), so nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.optimization import get_scheduler
from torch.optim.lr_scheduler import LambdaLR


def diffusers_lr_factor(name: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The multiplier function of diffusers' schedule ``name`` (built on a throwaway optimizer)."""
    placeholder = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = get_scheduler(name, placeholder, num_warmup_steps=warmup_steps, num_training_steps=max(total_steps, 1))
    return scheduler.lr_lambdas[0]


def deferred_schedule(
    optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: Callable[[], int]
) -> LambdaLR:
    """``LambdaLR`` following diffusers' schedule ``name``; ``total_steps()`` is called on the first step > 0.

    The multiplier is a closure (not an object), so ``LambdaLR.state_dict`` stores only the step count and a
    resumed run rebuilds the same schedule from the same total.
    """
    resolved: list[Callable[[int], float]] = []

    def factor(step: int) -> float:
        if step == 0 and not resolved:
            return diffusers_lr_factor(name, warmup_steps, warmup_steps + 1)(0)
        if not resolved:
            resolved.append(diffusers_lr_factor(name, warmup_steps, total_steps()))
        return resolved[0](step)

    return LambdaLR(optimizer, factor)
