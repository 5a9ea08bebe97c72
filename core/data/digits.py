"""scikit-learn's 8x8 handwritten digits, upscaled; the offline default."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ._sets import CropFlip, TensorImages, resize_batch
from ._split import apply_limit, stratified_split
from ._types import DataBundle

if TYPE_CHECKING:  # the data catalogue sits below config: type hints only
    from ..config import DataConfig

__all__ = ["build_digits"]


def build_digits(cfg: DataConfig, *, seed: int, image_size: int) -> DataBundle:
    """1,797 real digit images, bilinear-upscaled to ``image_size``, normalised, split by class."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = torch.from_numpy(np.asarray(raw.images, dtype=np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(raw.target, dtype=np.int64))
    images = resize_batch(images, image_size)
    train_idx, val_idx = stratified_split(labels, cfg.val_fraction, seed)
    train_idx = apply_limit(train_idx, cfg.limit)
    mean, std = images[train_idx].mean(), images[train_idx].std().clamp_min(1e-6)
    images = (images - mean) / std
    augment = CropFlip(image_size // 8, flip=False) if cfg.augment else None
    train = TensorImages(images[train_idx], labels[train_idx], with_index=True, augment=augment)
    val = TensorImages(images[val_idx], labels[val_idx], with_index=False)
    return DataBundle(name="digits", train=train, val=val, num_classes=10, in_channels=1,
                      image_size=image_size, class_names=tuple(str(d) for d in range(10)),
                      deterministic_train=not cfg.augment)
