"""Cache mode on models it was not written for: exact, or frozen with one warning.

For each model (timm, torchvision classification and segmentation, hand-written ones with long
skips, a U-Net, shared blocks and in-place activations) it drops the first units by hand and
trains a few epochs in ``mode="cache"`` on generated images with sample ids. Before each step
the complete model is called directly on the same batch (statistics put back), and the gap
between that output and ``ld.model``'s is recorded. With ``--precision full`` it must be 0;
with float16 it must stay within 1e-2 of the output's scale, or the run must have said that
float16 rounding moves the output more (the engine measures that effect at each verification,
``rounding_gap``, and names ``cache_precision=full``). The data set must be unchanged at the
end. A row says whether the run was served from the cache (and how often the
whole output was checked) or ran frozen, and why.

Usage::

    python scripts/cache_trials.py [--only timm:resnet18,hand:UNet] [--epochs 2]
                                   [--precision float16|full] [--json out.json]

Takes a few minutes on two CPU cores; timm models are skipped when timm is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from learndrop.core import LearnDrop
from learndrop.core.engine import LearnDropWarning

_TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(_TESTS), str(_TESTS / "core" / "engine")]  # the tests' models and loop
from engine_nets import train_with_gaps  # noqa: E402

BATCH = 8


def _timm(name: str, **kwargs: Any) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        from learndrop.integrations.timm import create_model

        return create_model(name, pretrained=False, num_classes=4, **kwargs)
    return make


def _tv(name: str, **kwargs: Any) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import torchvision.models as tvm

        return tvm.get_model(name, weights=None, num_classes=4, **kwargs)
    return make


def _seg(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        from torchvision.models import segmentation

        return getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=2)
    return make


def _hand(name: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import test_cache_exact as nets  # the hand-written models of the tests

        return getattr(nets, name)()
    return make


# name -> (builder, image size, channels)
MODELS: dict[str, tuple[Callable[[], nn.Module], int, int]] = {
    "timm:resnet18": (_timm("resnet18"), 32, 3),
    "timm:efficientnet_b0": (_timm("efficientnet_b0"), 32, 3),
    "timm:mobilenetv3_small_050": (_timm("mobilenetv3_small_050"), 32, 3),
    "timm:convnext_atto": (_timm("convnext_atto"), 32, 3),
    "timm:regnetx_002": (_timm("regnetx_002"), 32, 3),
    "timm:ghostnet_100": (_timm("ghostnet_100"), 32, 3),
    "timm:densenet121": (_timm("densenet121"), 32, 3),
    "timm:cspresnet50": (_timm("cspresnet50"), 32, 3),
    "timm:rexnet_100": (_timm("rexnet_100"), 32, 3),
    "timm:repvgg_a0": (_timm("repvgg_a0"), 32, 3),
    "timm:mobilevit_xxs": (_timm("mobilevit_xxs"), 64, 3),
    "timm:vit_tiny_patch16_224": (_timm("vit_tiny_patch16_224", img_size=32), 32, 3),
    "timm:coatnet_nano_rw_224": (_timm("coatnet_nano_rw_224", img_size=64), 64, 3),
    "tv:resnet18": (_tv("resnet18"), 32, 3),
    "tv:mobilenet_v3_small": (_tv("mobilenet_v3_small"), 32, 3),
    "tv:efficientnet_b0": (_tv("efficientnet_b0"), 32, 3),
    "tv:lraspp_mobilenet_v3_large": (_seg("lraspp_mobilenet_v3_large"), 32, 3),
    "tv:deeplabv3_mobilenet_v3_large": (_seg("deeplabv3_mobilenet_v3_large"), 32, 3),
    "hand:Chain": (_hand("Chain"), 8, 8),
    "hand:InPlace": (_hand("InPlace"), 8, 8),
    "hand:LongSkip": (_hand("LongSkip"), 8, 8),
    "hand:UNet": (_hand("UNet"), 8, 8),
    "hand:Shared": (_hand("Shared"), 8, 8),
}


def _output(out: Any) -> torch.Tensor:
    return out["out"] if isinstance(out, dict) else out


def trial(make: Callable[[], nn.Module], size: int, channels: int, epochs: int,
          precision: str = "float16") -> dict[str, Any]:
    gen = torch.Generator().manual_seed(3)
    data = torch.randn(32, channels, size, size, generator=gen)
    labels = torch.randint(0, 4, (32,), generator=gen)
    kept = data.clone()
    torch.manual_seed(0)
    net = make()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LearnDropWarning)
        ld = LearnDrop(net, opt, mode="cache", warmup_epochs=0, keep_last=0, threshold=0.0,
                       example_input=data[:2], num_samples=len(data),
                       cache_precision=precision)
        body = [u for u in ld.units if not u.is_head]
        dropped = [u.name for u in body[: min(max(2, len(body) // 2), len(body) - 1)]]
        for name in dropped:
            ld.drop(name)
        gap = max(train_with_gaps(ld, net, opt, data, labels, epochs, batch_size=BATCH,
                                  out_of=_output))
    said = [str(w.message) for w in caught if issubclass(w.category, LearnDropWarning)]
    return {"units": len(ld.units), "dropped": len(dropped),
            "served": not ld.cache_disabled_reason,
            "verifications": ld.caches.training.verifications,
            "max_gap": gap, "rounding_gap": ld.caches.training.rounding_gap,
            "data_unchanged": bool(torch.equal(data, kept)),
            "warnings": said, "reason": ld.cache_disabled_reason or ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--precision", choices=("float16", "full"), default="float16")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(MODELS)
    rows: dict[str, dict[str, Any]] = {}
    bad = 0
    print(f"precision {args.precision}; gap: the largest difference to the complete model's "
          f"output, relative to its scale; rounding: what float16 rounding alone moved it")
    print("| model | units, dropped | cache | verifications | gap | rounding | data |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        make, size, channels = MODELS[name]
        try:
            row = trial(make, size, channels, args.epochs, args.precision)
        except ImportError as exc:
            print(f"| {name} | skipped: {exc} | | | | |")
            continue
        rows[name] = row
        # exact: the output is the complete model's up to what the measured rounding explains
        said = any("cache_precision=full" in w for w in row["warnings"])
        exact = row["data_unchanged"] and (
            row["max_gap"] == 0.0 if args.precision == "full" else row["max_gap"] <= 1e-2 or said)
        bad += not exact
        cache = "served" if row["served"] else f"frozen: {row['reason'][:70]}"
        print(f"| {name} | {row['units']}, {row['dropped']} | {cache} | {row['verifications']} "
              f"| {row['max_gap']:.1e} | {row['rounding_gap']:.1e}{' (said)' if said else ''} "
              f"| {'unchanged' if row['data_unchanged'] else 'CHANGED'} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
