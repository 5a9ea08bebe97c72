"""Training batches of in-memory images, indexed in one go instead of image by image."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ._sets import TensorImages

__all__ = ["TensorBatches", "fast_batches"]


class TensorBatches:
    """Shuffled ``(x, y, index)`` batches of a :class:`TensorImages` without augmentation.

    Each batch is gathered, scaled and normalised with a few tensor operations, where a
    ``DataLoader`` calls ``__getitem__`` once per image and then stacks the images. The
    batches are the same, in the same order, as those of
    ``DataLoader(data, batch_size, shuffle=True, drop_last=drop_last, generator=generator)``
    (which draws a base seed from the generator before it shuffles).
    """

    def __init__(self, data: TensorImages, batch_size: int, *, drop_last: bool,
                 generator: torch.Generator, pin_memory: bool = False) -> None:
        if data.augment is not None:
            raise ValueError("TensorBatches cannot augment: use a DataLoader")
        self.data = data
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self.generator = generator
        self.pin_memory = pin_memory

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n = len(self.data)
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # as DataLoader
        order = torch.randperm(n, generator=self.generator)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and idx.numel() < self.batch_size:
                break
            x, y = self.data.batch(idx)
            if self.pin_memory:
                x, y, idx = x.pin_memory(), y.pin_memory(), idx.pin_memory()
            yield x, y, idx


def fast_batches(data: object, batch_size: int, *, drop_last: bool, generator: torch.Generator,
                 pin_memory: bool = False) -> TensorBatches | None:
    """:class:`TensorBatches` over ``data`` when it can have them (in-memory images without
    augmentation), else ``None``."""
    if isinstance(data, TensorImages) and data.augment is None and data.with_index:
        return TensorBatches(data, batch_size, drop_last=drop_last, generator=generator,
                             pin_memory=pin_memory)
    return None
