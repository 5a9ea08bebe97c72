"""Dataset classes shared by the loaders: in-memory tensors and indexed views."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["CropFlip", "IndexedView", "TensorImages", "resize_batch"]


class CropFlip:
    """Random crop after zero padding (``padding`` px) and an optional horizontal flip."""

    def __init__(self, padding: int, flip: bool) -> None:
        self.padding = int(padding)
        self.flip = bool(flip)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Augment one image tensor (C, H, W)."""
        p = self.padding
        if p > 0:
            h, w = x.shape[-2:]
            padded = F.pad(x, (p, p, p, p))
            top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
            x = padded[..., top:top + h, left:left + w]
        if self.flip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        return x.contiguous()

    def __repr__(self) -> str:
        return f"CropFlip(padding={self.padding}, flip={self.flip})"


def resize_batch(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize (N, C, H, W) images to ``size`` x ``size`` (bilinear, antialiased), same dtype."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.empty((*images.shape[:2], size, size), dtype=images.dtype)
    for start in range(0, images.shape[0], chunk):
        part = images[start:start + chunk].float()
        part = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=size < images.shape[-1])
        if images.dtype == torch.uint8:
            part = part.round_().clamp_(0, 255)
        out[start:start + chunk] = part.to(images.dtype)
    return out


class TensorImages(Dataset):
    """Images held in memory as one (N, C, H, W) tensor (uint8 0-255 or float).

    Items are ``(x, y, index)`` when ``with_index`` else ``(x, y)``. uint8 images are scaled to
    [0, 1]; ``mean``/``std`` (per channel) normalise; ``augment`` runs last.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, with_index: bool,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        if images.ndim != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError("images must be (N, C, H, W) with one label per image")
        self.images = images
        self.labels = labels.long()
        self.with_index = with_index
        self.mean = None if mean is None else torch.tensor(mean).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(-1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Scale uint8 to [0, 1] and normalise: one image (C, H, W) or a batch."""
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return x

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        x = self._prepare(self.images[index])
        if self.augment is not None:
            x = self.augment(x)
        y = int(self.labels[index])
        return (x, y, int(index)) if self.with_index else (x, y)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of ``indices`` at once, as ``__getitem__`` gives each (without
        augmentation)."""
        return self._prepare(self.images[indices]), self.labels[indices]


class IndexedView(Dataset):
    """Items ``order[i]`` of a ``(x, y)`` data set, as ``(x, y, i)`` or ``(x, y)``."""

    def __init__(self, base: Dataset, order: Sequence[int] | None, *, with_index: bool) -> None:
        self.base = base
        self.order = None if order is None else [int(i) for i in order]
        self.with_index = with_index

    def __len__(self) -> int:
        return len(self.order) if self.order is not None else len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        x, y = self.base[self.order[index] if self.order is not None else index]
        return (x, int(y), int(index)) if self.with_index else (x, int(y))
