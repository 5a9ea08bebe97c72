"""Generated images: smooth class templates, randomly moved, mixed with a distractor, noisy.

Each class is a template made of a few oriented low-frequency waves and soft blobs (colour
differs per component). A sample is its class template under a random shift, scale and
rotation, plus a weaker template of another class under its own transform, with a random
per-channel gain, plus Gaussian pixel noise of standard deviation ``noise * NOISE_SCALE`` and
smooth noise of half that. The result is learnable but not trivial.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ._sets import CropFlip, TensorImages
from ._split import apply_limit, stratified_split
from ._types import DataBundle

if TYPE_CHECKING:  # the data catalogue sits below config: type hints only
    from ..config import DataConfig

__all__ = ["NOISE_SCALE", "build_synthetic", "make_synthetic"]

# Tuned so that at noise 1.0 a small CNN or ResNet-20 trained 10 epochs on 4,000 samples
# reaches roughly 85% validation accuracy, still improving over the second half.
NOISE_SCALE = 1.0
_GAIN = (0.6, 1.2)  # range of the class template's amplitude
_DGAIN = (0.3, 0.8)  # range of the distractor's amplitude
_COLOUR = 0.8  # per-sample, per-channel gain varies within 1 +- _COLOUR / 2
_SMOOTH = 0.5  # smooth (4x4 upsampled) noise, relative to the pixel noise
_WAVES = 3
_BLOBS = 3
_CHUNK_ELEMENTS = 1 << 24


def _templates(classes: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random parameters of every class template."""
    angle = torch.rand(classes, _WAVES, generator=g) * math.pi
    freq = 1.0 + torch.rand(classes, _WAVES, generator=g) * 2.5  # cycles per image side
    return {
        "wave_k": torch.stack([freq * torch.cos(angle), freq * torch.sin(angle)], -1),
        "wave_phase": torch.rand(classes, _WAVES, generator=g) * 2 * math.pi,
        "wave_amp": torch.randn(classes, _WAVES, 3, generator=g) * 0.6,
        "blob_xy": torch.rand(classes, _BLOBS, 2, generator=g) - 0.5,
        "blob_sigma": 0.08 + torch.rand(classes, _BLOBS, generator=g) * 0.15,
        "blob_amp": torch.randn(classes, _BLOBS, 3, generator=g),
    }


def _render(t: dict[str, torch.Tensor], cls: torch.Tensor, size: int,
            g: torch.Generator) -> torch.Tensor:
    """Templates of classes ``cls`` under random shift/scale/rotation: (N, 3, size, size)."""
    n = cls.numel()
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xx.flatten(), yy.flatten()], -1)  # (P, 2)
    theta = (torch.rand(n, generator=g) - 0.5) * (math.pi / 3)
    scale = 0.8 + torch.rand(n, generator=g) * 0.45
    shift = (torch.rand(n, 2, generator=g) - 0.5) * 0.4
    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    # q = (rot / scale) @ p + shift for every pixel p: (N, P, 2)
    q = torch.baddbmm(shift.view(n, 1, 2), grid.expand(n, -1, -1),
                      (rot / scale.view(n, 1, 1)).transpose(1, 2))
    waves = torch.baddbmm(t["wave_phase"][cls].unsqueeze(1), q,
                          (2 * math.pi * t["wave_k"][cls]).transpose(1, 2)).sin_()
    img = torch.bmm(waves, t["wave_amp"][cls])  # (N, P, 3)
    centres = t["blob_xy"][cls]  # (N, B, 2)
    d2 = torch.bmm(q, centres.transpose(1, 2)).mul_(-2)  # squared distances, (N, P, B)
    d2.add_(q.pow(2).sum(-1, keepdim=True)).add_(centres.pow(2).sum(-1).unsqueeze(1))
    blobs = d2.mul_((-0.5 / t["blob_sigma"][cls].pow(2)).unsqueeze(1)).exp_()
    img.baddbmm_(blobs, t["blob_amp"][cls])
    return img.transpose(1, 2).reshape(n, 3, size, size)


def make_synthetic(samples: int, classes: int, size: int, noise: float,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, size, size) float32, labels (N,)), balanced classes, deterministic."""
    g = torch.Generator().manual_seed(int(seed))
    t = _templates(classes, g)
    labels = (torch.arange(samples) % classes)[torch.randperm(samples, generator=g)]
    other = (labels + torch.randint(1, classes, (samples,), generator=g)) % classes
    gain = _GAIN[0] + torch.rand(samples, 1, 1, 1, generator=g) * (_GAIN[1] - _GAIN[0])
    distractor_gain = _DGAIN[0] + torch.rand(samples, 1, 1, 1, generator=g) * (
        _DGAIN[1] - _DGAIN[0])
    colour = 1.0 + (torch.rand(samples, 3, 1, 1, generator=g) - 0.5) * _COLOUR
    images = torch.empty(samples, 3, size, size)
    chunk = max(1, _CHUNK_ELEMENTS // (size * size * max(_WAVES, _BLOBS)))
    for start in range(0, samples, chunk):
        part = slice(start, start + chunk)
        main = _render(t, labels[part], size, g)
        distractor = _render(t, other[part], size, g)
        images[part] = colour[part] * (gain[part] * main + distractor_gain[part] * distractor)
    sigma = noise * NOISE_SCALE
    images += torch.randn(images.shape, generator=g) * sigma
    if _SMOOTH > 0:
        coarse = torch.randn(samples, 3, 4, 4, generator=g) * (sigma * _SMOOTH)
        images += F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return images, labels


def build_synthetic(cfg: DataConfig, *, seed: int, image_size: int) -> DataBundle:
    """The generated data set of ``cfg.synthetic_*``, split by class, normalised per channel."""
    from ._sets import resize_batch

    images, labels = make_synthetic(cfg.synthetic_samples, cfg.synthetic_classes,
                                    cfg.synthetic_size, cfg.synthetic_noise, seed)
    images = resize_batch(images, image_size)
    train_idx, val_idx = stratified_split(labels, cfg.val_fraction, seed)
    train_idx = apply_limit(train_idx, cfg.limit)
    ref = images[train_idx]
    mean = ref.mean(dim=(0, 2, 3), keepdim=True)
    std = ref.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    images = (images - mean) / std
    augment = CropFlip(image_size // 8, flip=True) if cfg.augment else None
    train = TensorImages(images[train_idx], labels[train_idx], with_index=True, augment=augment)
    val = TensorImages(images[val_idx], labels[val_idx], with_index=False)
    names = tuple(f"class{c}" for c in range(cfg.synthetic_classes))
    return DataBundle(name="synthetic", train=train, val=val,
                      num_classes=cfg.synthetic_classes, in_channels=3, image_size=image_size,
                      class_names=names, deterministic_train=not cfg.augment)
