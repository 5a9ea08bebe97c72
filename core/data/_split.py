"""Seeded, stratified train/validation splits and the training-sample limit."""

from __future__ import annotations

import torch

__all__ = ["apply_limit", "shuffled", "stratified_split"]


def stratified_split(labels: torch.Tensor, val_fraction: float,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val): about ``val_fraction`` of each class goes to val; train shuffled."""
    g = torch.Generator().manual_seed(int(seed))
    labels = labels.long()
    train_parts: list[torch.Tensor] = []
    val_parts: list[torch.Tensor] = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        n_val = round(idx.numel() * val_fraction)
        if idx.numel() >= 2:
            n_val = min(max(n_val, 1), idx.numel() - 1)
        else:
            n_val = 0
        val_parts.append(idx[:n_val])
        train_parts.append(idx[n_val:])
    train = torch.cat(train_parts)
    val = torch.cat(val_parts)
    train = train[torch.randperm(train.numel(), generator=g)]
    return train, torch.sort(val).values


def shuffled(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation of range(n)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))


def apply_limit(order: torch.Tensor, limit: int) -> torch.Tensor:
    """The first ``limit`` entries of ``order`` (all when ``limit`` is 0)."""
    return order[:limit] if limit > 0 else order
