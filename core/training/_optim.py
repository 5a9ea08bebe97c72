"""Optimizers and learning-rate schedules, stepped every batch.

Schedules are functions of training *progress* in [0, 1]: normally steps done over total
steps, and for a time-budgeted baseline the wall-clock time used over the budget, so the same
cosine or step schedule fits whatever budget the run is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..config import OptimConfig

__all__ = ["build_optimizer", "ProgressSchedule"]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Weight decay applies to weights of conv/linear layers, not to biases or norm layers."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.momentum > 0)
    betas = (cfg.momentum if cfg.momentum > 0 else 0.9, 0.999)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=betas)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas)


class ProgressSchedule:
    """Sets every group's learning rate from a progress fraction each batch."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int) -> None:
        self.optimizer = optimizer
        self.peak = cfg.lr
        self.kind = cfg.schedule
        self.warmup = min(cfg.warmup_epochs / max(epochs, 1), 0.5)
        if cfg.schedule == "step":
            every = cfg.step_every / epochs if cfg.step_every else 0.0
            self.milestones = ([every * k for k in range(1, int(1 / every) + 1)] if every
                               else [0.5, 0.75])
        else:
            self.milestones = []
        self.gamma = cfg.gamma
        self._fn: Callable[[float], float] = getattr(self, f"_{cfg.schedule}")
        self.set_progress(0.0)

    def factor(self, progress: float) -> float:
        p = min(max(progress, 0.0), 1.0)
        if self.warmup > 0 and p < self.warmup and self.kind != "onecycle":
            return (p + 1e-3) / self.warmup
        return self._fn(p)

    def set_progress(self, progress: float) -> float:
        lr = self.peak * self.factor(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _cosine(self, p: float) -> float:
        q = (p - self.warmup) / max(1.0 - self.warmup, 1e-9)
        return 0.5 * (1.0 + math.cos(math.pi * min(max(q, 0.0), 1.0)))

    def _step(self, p: float) -> float:
        return self.gamma ** sum(p >= m for m in self.milestones)

    def _onecycle(self, p: float) -> float:
        rise = 0.3
        if p < rise:
            return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * p / rise))
        q = (p - rise) / (1 - rise)
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * q))

    def _constant(self, p: float) -> float:
        return 1.0
