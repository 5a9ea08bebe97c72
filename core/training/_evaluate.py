"""Validation: loss and accuracy of a network on the validation set, without gradients."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..engine import LearnDrop
from ._device import DevicePlan

__all__ = ["evaluate_network", "evaluate_run"]


@torch.no_grad()
def evaluate_network(net: nn.Module, data: Dataset, plan: DevicePlan, *, batch_size: int,
                     num_workers: int, positions: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` (in eval mode, restored after) on ``data``, which
    yields ``(x, y)``; NaN for both when it is empty. ``positions``: ``net`` is ``ld.model``
    and gets each sample's position in ``data`` as ``sample_ids`` (its evaluation cache)."""
    dev = plan.device
    was = net.training
    net.eval()
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    n = 0
    crit = nn.CrossEntropyLoss(reduction="sum")
    with torch.autocast(dev.type, dtype=plan.amp_dtype, enabled=plan.amp):
        for x, y in loader:
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            if plan.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if positions:
                ids = torch.arange(n, n + y.shape[0])
                out = net(x, sample_ids=ids)
            else:
                out = net(x)
            loss_sum += crit(out.float(), y)
            correct += (out.argmax(1) == y).sum()
            n += y.shape[0]
    net.train(was)
    if n == 0:
        return float("nan"), float("nan")
    return float(loss_sum) / n, float(correct) / n


def evaluate_run(model: nn.Module, ld: LearnDrop, data: Dataset, plan: DevicePlan, *,
                 batch_size: int, num_workers: int) -> tuple[float, float, float | None]:
    """Validation loss and accuracy of the complete ``model``; in skip mode with units
    dropped also the accuracy of the scaled-down network (``ld.model``, dropped blocks
    bypassed), else ``None``.

    In cache mode with a dropped prefix the complete model is evaluated through ``ld.model``,
    which computes the same thing (the prefix is frozen and in eval mode either way) but
    reads the prefix's output on the validation set from its evaluation cache after the
    first evaluation: validation gets cheaper as units drop, like training.
    """
    cached = ld.policy.mode == "cache" and ld.dropped_prefix > 0
    loss, acc = evaluate_network(ld.model if cached else model, data, plan,
                                 batch_size=batch_size, num_workers=num_workers,
                                 positions=cached)
    scaled = None
    if ld.policy.mode == "skip" and ld.dropped:
        was = ld.model.training
        ld.model.eval()
        _, scaled = evaluate_network(ld.model, data, plan, batch_size=batch_size,
                                     num_workers=num_workers)
        ld.model.train(was)
    return loss, acc, scaled
