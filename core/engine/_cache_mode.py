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
from typing import Any

import torch

from ._cache import ActivationCache, CacheSpillError, remove_stale_spill_files
from ._policy import DropPolicy

__all__ = ["CacheCall", "CacheMode", "EvalCache", "Caches"]

#: float16 rounding is at most 2**-11 of a value; the comparison allows twice that
RTOL = 1e-3
ATOL = 1e-3
_HALF_MAX = torch.finfo(torch.float16).max
#: a change of the output by float16 rounding of the cached boundary, relative to the output's
#: scale, above which cache mode says so (once)
ROUNDING_SAID = 1e-2


def _host_ids(sample_ids: Any, num_samples: int | None) -> torch.Tensor:
    """A batch's sample ids as a flat long tensor on the host (the cache's index). A tensor,
    a list or a numpy array of whole numbers is taken; anything else, or an id outside
    0 .. ``num_samples`` - 1, is a ``ValueError`` naming ``sample_ids``."""
    try:
        ids = torch.as_tensor(sample_ids).detach().reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"sample_ids must be each sample's index in the data set (a tensor, "
                         f"list or array of whole numbers), got {type(sample_ids).__name__}"
                         ) from None
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"sample_ids must be whole numbers (each sample's index in the data "
                         f"set), got {ids.dtype}")
    ids = (ids if ids.device.type == "cpu" else ids.cpu()).long()
    if ids.numel():
        low, high = int(ids.min()), int(ids.max())
        limit = num_samples if num_samples else None
        if low < 0 or (limit is not None and high >= limit):
            bad = low if low < 0 else high
            shown = f"0 to {limit - 1}" if limit is not None else "0 or more"
            raise ValueError(f"sample_ids must be each sample's index in the data set, "
                             f"{shown}; got {bad}")
    return ids


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
    check: bool = False  # the prefix runs, the cache is read, nothing is stored (see _forward)
    unrounded: bool = False  # with check: the prefix's own output, not the cache, is used


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
        self.check_time_s = 0.0  # spent checking the whole output served from the cache
        self.rounding_gap = 0.0  # the largest change of the output by float16 rounding seen
        self.pending_rounding: float | None = None  # measured before the batch being verified

    @property
    def rounds(self) -> bool:
        """Whether the cached values are rounded (float16), not kept exactly."""
        return not self.cache.exact

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

    def refuse(self, reason: str) -> None:
        """The model cannot be served from the cache at all (see :mod:`._forward`)."""
        self.disable(reason)

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
        ids = _host_ids(sample_ids, self.num_samples)
        hit = self.cache.covers(ids)
        verify = hit and step >= self.next_verify
        span = steps_per_epoch or max(math.ceil((self.num_samples or 0) / max(ids.numel(), 1)),
                                      1)
        window = epoch_start + max(step - epoch_start, 0) // span * span  # this epoch's start
        return CacheCall(ids, hit=hit and not verify, fill=not hit, verify=verify,
                         next_verify=window + span + self._rng.randrange(span))

    def read(self, call: CacheCall) -> torch.Tensor:
        return self.cache.get(call.ids, self._dtype)

    def peek(self, call: CacheCall) -> torch.Tensor:
        """The cached values, as :meth:`read`, for the whole-output check."""
        return self.read(call)

    def store(self, call: CacheCall, out: torch.Tensor) -> torch.Tensor:
        """The prefix's computed output for a fill or verify call; returns what the rest of
        the network gets (the cached value, rounded to float16, unless the cache failed)."""
        if call.verify:
            return self._verify(call, out)
        if (self.rounds and out.is_floating_point()
                and bool(out.detach().abs().amax() > _HALF_MAX)):
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

    def _note_rounding(self) -> None:
        """The cache is up to date: how far float16 rounding of it moved the whole output
        (measured by the whole-output check) counts, and is said once when large."""
        gap, self.pending_rounding = self.pending_rounding, None
        if gap is None:
            return
        self.rounding_gap = max(self.rounding_gap, gap)
        if gap > ROUNDING_SAID:
            self.warn_once("rounding", _rounding_message(gap))

    def _verify(self, call: CacheCall, out: torch.Tensor) -> torch.Tensor:
        cached = self.cache.get(call.ids, self._dtype)
        self.verifications += 1
        if _matches(cached, out):
            self.next_verify = call.next_verify
            self._note_rounding()
            return cached
        self.disable("the dropped prefix's cached output differs from a recomputed one (the "
                     "training data changes between epochs, e.g. random augmentation, or the "
                     "model's forward does not run its units in sequence); cache mode "
                     "switched to freeze for the rest of the run")
        return out


def _rounding_message(gap: float) -> str:
    return (f"cache mode: rounding the cached activations to float16 changes the model's "
            f"output by up to {gap:.1%} of its scale on a verified batch (later layers, such as "
            f"BatchNorm over small batches, amplify it); the run goes on from the rounded "
            f"activations: set drop.cache_precision=full for outputs without this rounding, at "
            f"twice the cache's memory")


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

    def __init__(self, cache: ActivationCache, num_samples: int | None,
                 on_refuse: Callable[[str], None] | None = None) -> None:
        self.cache = cache
        self.num_samples = num_samples or 0
        self.disabled_reason = ""
        self.batches_read = 0  # evaluation batches answered from the cache
        self.check_time_s = 0.0
        self.on_refuse = on_refuse  # the training cache's way out, for the same model

    def refuse(self, reason: str) -> None:
        """The model cannot be served from a cache at all: this one and the training
        cache are turned off."""
        self.disable(reason)
        if self.on_refuse is not None:
            self.on_refuse(reason)

    def reset(self) -> None:
        self.cache.clear()

    def disable(self, reason: str) -> None:
        self.disabled_reason = self.disabled_reason or reason
        self.cache.clear()

    def begin(self, sample_ids: torch.Tensor | None) -> CacheCall | None:
        if self.disabled_reason or sample_ids is None:
            return None
        ids = _host_ids(sample_ids, None)  # the set's size only sizes this cache
        hit = self.cache.covers(ids)
        verify = hit and int(ids.min()) == 0
        return CacheCall(ids, hit=hit and not verify, fill=not hit, verify=verify,
                         next_verify=0)

    def read(self, call: CacheCall) -> torch.Tensor:
        self.batches_read += 1
        return self.peek(call)

    def peek(self, call: CacheCall) -> torch.Tensor:
        """The cached values, not counted as a batch read (the whole-output check)."""
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


class Caches:
    """The two caches of one dropped prefix: the training cache (:class:`CacheMode`, in
    ``activations``, float16 or full as ``policy.cache_precision`` says) and the evaluation
    one (exact), within ``policy.cache_budget_mb`` each."""

    def __init__(self, policy: DropPolicy, device: torch.device, *, num_samples: int | None,
                 eval_samples: int | None, spill_dir: str | None,
                 notify: Callable[[str], None]) -> None:
        budget_mb = policy.cache_budget_mb
        self.activations = ActivationCache(budget_mb * 2**20, device, spill_dir,
                                           exact=policy.cache_precision == "full")
        if policy.mode == "cache":  # what killed runs of older versions left behind
            remove_stale_spill_files(spill_dir)
        self.training = CacheMode(self.activations, num_samples, notify)
        self.evaluation = EvalCache(ActivationCache(budget_mb * 2**20, device, exact=True,
                                                    host_only=True),
                                    eval_samples, on_refuse=self.training.disable)

    def reset(self) -> None:
        """The dropped prefix changed: forget every cached output."""
        self.training.reset()
        self.evaluation.reset()

    def check_share(self, train_time_s: float) -> float:
        """Time spent checking whole outputs served from the training cache, as a share of
        ``train_time_s`` (the measured step time)."""
        return self.training.check_time_s / train_time_s if train_time_s > 0 else 0.0

    def savings_fields(self, train_time_s: float) -> dict[str, Any]:
        """The cache's entries of ``ld.savings()``: where it is, the share of step time its
        checks took, and why it fell back to freeze ('' while it has not)."""
        return {"cache_location": self.activations.location,
                "cache_check_overhead": self.check_share(train_time_s),
                "cache_disabled_reason": self.training.disabled_reason}

    def plan(self, sample_ids: torch.Tensor | None, training: bool, *, step: int,
             epoch_start: int, steps_per_epoch: int | None
             ) -> tuple[CacheMode | EvalCache | None, CacheCall | None]:
        """The cache a forward uses and what it does with it (None: no cache). A training
        forward uses the training cache; an evaluation with ``sample_ids`` (each sample's
        position in the evaluation set) uses the evaluation cache."""
        if training:
            return self.training, self.training.begin(
                sample_ids, step=step, epoch_start=epoch_start,
                steps_per_epoch=steps_per_epoch)
        if self.training.disabled_reason or torch.is_grad_enabled():
            return None, None
        return self.evaluation, self.evaluation.begin(sample_ids)
