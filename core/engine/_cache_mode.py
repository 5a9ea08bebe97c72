"""Cache mode, safe by construction: when the cached output of the dropped prefix is used.

The first batch of samples that are all cached is computed anyway and compared with the cache,
and so is one batch at a random position in every epoch after that (an "epoch" is
``steps_per_epoch`` steps; without it, ``num_samples`` divided by the batch size). A batch whose
recomputed prefix output differs from the cached one (beyond float16 rounding) means the cache
cannot be trusted (the training data changes between epochs, or the model's forward does not run
its units in sequence): cache mode switches to freeze for the rest of the run, with a
:class:`LearnDropWarning` and an ``on_warning`` to the callbacks. So does a spill file that
cannot be written, and an output beyond float16's range. Without ``sample_ids`` nothing is
cached: a warning, once, and the prefix runs frozen.

A verified batch returns exactly what a cache hit returns, so verification never changes
the numbers a run computes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._cache import ActivationCache, CacheSpillError

__all__ = ["CacheCall", "CacheMode", "EvalCache"]

#: float16 rounding is at most 2**-11 of a value; the comparison allows twice that
RTOL = 1e-3
ATOL = 1e-3
_HALF_MAX = torch.finfo(torch.float16).max


def _host_ids(sample_ids: torch.Tensor) -> torch.Tensor:
    """A batch's sample ids as a flat long tensor on the host (the cache's index)."""
    ids = sample_ids.detach().reshape(-1)
    return (ids if ids.device.type == "cpu" else ids.cpu()).long()


def _matches(cached: torch.Tensor, out: torch.Tensor) -> bool:
    """Whether a recomputed prefix output agrees with the cached one (float16's tolerance)."""
    return cached.shape == out.shape and torch.allclose(cached.float(), out.float(),
                                                        rtol=RTOL, atol=ATOL)


@dataclass(frozen=True)
class CacheCall:
    """What one training forward does with the cache."""

    ids: torch.Tensor  # sample indices, long, on the host
    hit: bool  # every sample is cached: the prefix is not run, its output is read
    fill: bool  # some sample is not cached: the prefix runs and its output is stored
    verify: bool  # cached, but the prefix runs and its output is compared with the cache
    next_verify: int  # the step from which the next verification is due, if this one passes


class CacheMode:
    """The cache of one dropped prefix's output, and when it is trusted."""

    def __init__(self, cache: ActivationCache, num_samples: int | None,
                 notify: Callable[[str], None], seed: int = 0) -> None:
        self.cache = cache
        self.num_samples = num_samples
        self.notify = notify
        self.disabled_reason = ""
        self.next_verify = 0  # the first cached batch is always verified
        self.verifications = 0
        self._dtype = torch.float32
        self._rng = random.Random(seed)  # its own: training's random state is untouched
        self._warned: set[str] = set()

    def reset(self) -> None:
        """The prefix changed: forget every cached output."""
        self.cache.clear()
        self.next_verify = 0

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.notify(message)

    def disable(self, reason: str) -> None:
        """Stop caching for the rest of the run (the dropped prefix runs frozen)."""
        if self.disabled_reason:
            return
        self.disabled_reason = reason
        self.cache.clear()
        self.notify(reason)

    def begin(self, sample_ids: torch.Tensor | None, *, step: int, epoch_start: int,
              steps_per_epoch: int | None) -> CacheCall | None:
        """What the next training forward does with the cache (None: nothing)."""
        if self.disabled_reason:
            return None
        if sample_ids is None:
            self.warn_once("ids", "cache mode needs each batch's sample indices "
                           "(ld.model(x, sample_ids=idx)); without them the dropped prefix "
                           "runs frozen, as in freeze mode")
            return None
        ids = _host_ids(sample_ids)
        hit = self.cache.covers(ids)
        verify = hit and step >= self.next_verify
        span = steps_per_epoch or max(math.ceil((self.num_samples or 0) / max(ids.numel(), 1)),
                                      1)
        window = epoch_start + max(step - epoch_start, 0) // span * span  # this epoch's start
        return CacheCall(ids, hit=hit and not verify, fill=not hit, verify=verify,
                         next_verify=window + span + self._rng.randrange(span))

    def read(self, call: CacheCall) -> torch.Tensor:
        return self.cache.get(call.ids, self._dtype)

    def store(self, call: CacheCall, out: torch.Tensor) -> torch.Tensor:
        """The prefix's computed output for a fill or verify call; returns what the rest of
        the network gets (the cached value, rounded to float16, unless the cache failed)."""
        if call.verify:
            return self._verify(call, out)
        if out.is_floating_point() and bool(out.detach().abs().amax() > _HALF_MAX):
            self.disable("the dropped prefix's output exceeds float16's range, so it cannot "
                         "be cached; cache mode switched to freeze for the rest of the run")
            return out
        self._dtype = out.dtype
        try:
            return self.cache.put(call.ids, out, self.num_samples or 0)
        except OSError as exc:  # the spill file cannot be written (a full disk, say)
            self.disable(f"the activation cache does not fit: {exc.strerror or exc}; cache "
                         f"mode switched to freeze for the rest of the run")
            return out

    def _verify(self, call: CacheCall, out: torch.Tensor) -> torch.Tensor:
        cached = self.cache.get(call.ids, self._dtype)
        self.verifications += 1
        if _matches(cached, out):
            self.next_verify = call.next_verify
            return cached
        self.disable("the dropped prefix's cached output differs from a recomputed one (the "
                     "training data changes between epochs, e.g. random augmentation, or the "
                     "model's forward does not run its units in sequence); cache mode "
                     "switched to freeze for the rest of the run")
        return out


class EvalCache:
    """The dropped prefix's output on the evaluation data, in the activation's own dtype.

    A dropped prefix is frozen and, in evaluation, runs in eval mode, so its output for an
    evaluation sample is the same at every evaluation until the prefix changes: the first
    evaluation after a change computes and keeps it, later ones read it, and each evaluation
    recomputes and compares its first batch (sample 0), so evaluation data that changes
    between passes (random transforms) turns the cache off instead of giving wrong figures.
    Kept exactly and in host memory within the budget; a set that does not fit is simply
    evaluated in full, as without the cache.
    """

    def __init__(self, cache: ActivationCache, num_samples: int | None) -> None:
        self.cache = cache
        self.num_samples = num_samples or 0
        self.disabled_reason = ""
        self.batches_read = 0  # evaluation batches answered from the cache

    def reset(self) -> None:
        self.cache.clear()

    def disable(self, reason: str) -> None:
        self.disabled_reason = self.disabled_reason or reason
        self.cache.clear()

    def begin(self, sample_ids: torch.Tensor | None) -> CacheCall | None:
        if self.disabled_reason or sample_ids is None:
            return None
        ids = _host_ids(sample_ids)
        hit = self.cache.covers(ids)
        verify = hit and int(ids.min()) == 0
        return CacheCall(ids, hit=hit and not verify, fill=not hit, verify=verify,
                         next_verify=0)

    def read(self, call: CacheCall) -> torch.Tensor:
        self.batches_read += 1
        return self.cache.get(call.ids, self.cache.dtype)

    def store(self, call: CacheCall, out: torch.Tensor) -> torch.Tensor:
        if call.verify:
            if _matches(self.cache.get(call.ids, out.dtype), out):
                return out
            self.disable("the evaluation data changed between evaluations")
            return out
        try:
            self.cache.put(call.ids, out, self.num_samples)
        except (CacheSpillError, RuntimeError) as exc:  # over the budget, out of memory
            self.disable(f"the evaluation cache does not fit: {exc}")
        return out
