"""Training batches gathered in one go are the DataLoader's batches."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from learndrop.core.data import TensorBatches, fast_batches
from learndrop.core.data._sets import CropFlip, TensorImages


def images(n: int = 50) -> TensorImages:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    return TensorImages(x, y, with_index=True, mean=(0.3,), std=(0.2,))


@pytest.mark.parametrize("drop_last", [True, False])
def test_same_batches_as_a_data_loader(drop_last: bool) -> None:
    data = images()
    fast = TensorBatches(data, 16, drop_last=drop_last,
                         generator=torch.Generator().manual_seed(7))
    slow = DataLoader(data, batch_size=16, shuffle=True, drop_last=drop_last,
                      generator=torch.Generator().manual_seed(7))
    got, want = list(fast), list(slow)
    assert len(got) == len(want) == len(fast) == len(slow)
    for (x, y, i), (x2, y2, i2) in zip(got, want):
        assert torch.equal(i, i2) and torch.equal(y, y2) and torch.equal(x, x2)
        assert x.dtype == x2.dtype and y.dtype == y2.dtype and i.dtype == i2.dtype


def test_only_for_plain_in_memory_training_images() -> None:
    g = torch.Generator()
    assert isinstance(fast_batches(images(), 8, drop_last=True, generator=g), TensorBatches)
    augmented = images()
    augmented.augment = CropFlip(1, flip=True)
    assert fast_batches(augmented, 8, drop_last=True, generator=g) is None
    val = TensorImages(torch.zeros(4, 1, 2, 2), torch.zeros(4), with_index=False)
    assert fast_batches(val, 8, drop_last=True, generator=g) is None
    assert fast_batches([1, 2, 3], 8, drop_last=True, generator=g) is None
    with pytest.raises(ValueError):
        TensorBatches(augmented, 8, drop_last=True, generator=g)
