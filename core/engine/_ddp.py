"""Data-parallel Learn&Drop: DistributedDataParallel, the same drops on every rank, and the
gradient all-reduce that drops save.

``LearnDrop(model, optimizer, ddp=True)`` (or ``ddp={...}`` with DistributedDataParallel's
keyword arguments) in every process of an initialised process group
(``torch.distributed.init_process_group``; ``torchrun`` sets up the environment for it):

* ``ld.model`` runs ``DistributedDataParallel(model, **ddp)``. DDP registers the parameters
  that need gradients when it is built and waits for a gradient of each in every step, so
  after each change of drop state (a drop, a restore, a pin of a dropped unit) the wrapper is
  built anew around the same model, at the next call of ``ld.model`` on every rank. Dropped
  parameters are then in none of the reducer's buckets, and no ``find_unused_parameters``
  traversal is needed. A model with no parameter left to train runs unwrapped.
* Rank 0 decides. At a score check every rank scores its own copy of the parameters (DDP
  keeps them equal), and the units rank 0 would drop are broadcast and dropped on every
  rank. At every ``ld.step()`` rank 0's queue of requests (``ld.request``: drop, pin,
  unpin, from any thread) is broadcast and applied on every rank at that step: one
  one-number broadcast per step, plus the requests themselves when there are any. Requests
  made on another rank are ignored (with a warning). ``ld.drop``, ``ld.pin`` and
  ``ld.restore`` called directly act on the calling rank only: call them on every rank at the
  same step, or use ``ld.request`` on rank 0.
* Every rank must call ``ld.step()`` after each optimizer step and ``ld.end_epoch()`` at the
  same steps (equal-length shards, as ``DistributedSampler`` makes them).
* Communication: each step all-reduces the gradients of the parameters in the reducer's
  buckets; their bytes per step are counted before and after each drop and over the run
  (:meth:`DataParallel.bytes_per_step`, ``savings()``). DDP also broadcasts the buffers
  (BatchNorm statistics) from rank 0 before each forward (``broadcast_buffers``); drops do
  not change that, and it is not counted.
* The activation cache (``mode="cache"``) is per rank and holds that rank's samples.
* ``state_dict()`` is the same on every rank; load the same one on every rank to resume.

``ddp="outside"``: the model trains inside a data-parallel wrapper that someone else builds
(PyTorch Lightning's DDP strategy wraps the whole LightningModule). Rank 0 still decides and
the all-reduce volume is still counted, but ``ld.model`` runs the plain model, and whoever
holds the wrapper builds it anew after each change of drop state, on every rank at the same
step (the Lightning callback does).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError
from ..events import Callback, call_hook

__all__ = ["DataParallel", "ddp_options", "take_requests", "comm_savings", "comm_fields", "OUTSIDE"]

#: DistributedDataParallel keyword arguments that LearnDrop sets itself
_NOT_ALLOWED = ("module",)
#: ``ddp=OUTSIDE``: the caller holds the data-parallel wrapper (see the module's notes)
OUTSIDE = "outside"


def ddp_options(ddp: bool | str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The DDP keyword arguments ``ddp`` stands for (``None``: not data-parallel)."""
    if ddp is None or ddp is False:
        return None
    if ddp is True or ddp == OUTSIDE:
        return {}
    if not isinstance(ddp, Mapping):
        raise ConfigError(f"ddp must be True, False, {OUTSIDE!r} or a dict of "
                          f"DistributedDataParallel keyword arguments, not {ddp!r}")
    bad = [k for k in ddp if k in _NOT_ALLOWED]
    if bad:
        raise ConfigError(f"ddp={{...}} cannot set {', '.join(bad)}: LearnDrop wraps the model")
    return dict(ddp)


class DataParallel:
    """The distributed side of one :class:`LearnDrop`: its DDP wrapper, rank agreement and
    the all-reduce volume. ``wraps``: it builds the wrapper itself (not ``ddp="outside"``)."""

    def __init__(self, model: nn.Module, options: Mapping[str, Any], wraps: bool = True
                 ) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise ConfigError("ddp=True needs an initialised process group: call "
                              "torch.distributed.init_process_group() in every process first "
                              "(torchrun sets up its environment)")
        self.model = model
        self.options = dict(options)
        self.wraps = wraps
        self.group = self.options.get("process_group")
        self.rank = dist.get_rank(self.group)
        self.world_size = dist.get_world_size(self.group)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        if device.type == "cuda" and "device_ids" not in self.options:
            self.options["device_ids"] = [device.index]
        backend = str(dist.get_backend(self.group))
        self._device = device if backend == "nccl" else torch.device("cpu")
        self._src = dist.get_global_rank(self.group, 0) if self.group is not None else 0
        self._module: nn.Module | None = None
        #: called by :meth:`release` (LearnDrop lets go of its wrapper)
        self.on_release: Callable[[], None] | None = None
        self.full_bytes = self.bytes_per_step()
        self.current_bytes = self.full_bytes
        self.steps = 0
        self.bytes_spent = 0
        #: (step, bytes all-reduced per step from that step on), one entry per change
        self.timeline: list[tuple[int, int]] = [(0, self.full_bytes)]
        self.ignored_requests = 0

    # ---- the wrapper --------------------------------------------------------------------------
    def wrap(self, model: nn.Module) -> nn.Module:
        """A DDP wrapper around ``model`` for its current drop state (the plain model when no
        parameter needs a gradient); LearnDrop calls it after each change of drop state, on
        every rank at the same step."""
        self._module = None  # the old reducer and its gradient hooks go first
        if self.bytes_per_step() > 0:
            self._module = DistributedDataParallel(model, **self.options)
        return self._module if self._module is not None else model

    @property
    def module(self) -> nn.Module | None:
        """The DDP wrapper built last (None before the first or after :meth:`release`)."""
        return self._module

    def release(self) -> None:
        """Let go of the DDP wrapper (before the process group is destroyed); the next
        training call of ``ld.model`` builds it again."""
        self._module = None
        if self.on_release is not None:
            self.on_release()

    def changed(self, step: int) -> None:
        """The drop state changed at ``step``: count the new all-reduce volume."""
        now = self.bytes_per_step()
        if now != self.current_bytes:
            self.current_bytes = now
            if self.timeline and self.timeline[-1][0] == step:
                self.timeline[-1] = (step, now)  # several drops at one check
            else:
                self.timeline.append((step, now))

    # ---- communication volume -----------------------------------------------------------------
    def bytes_per_step(self) -> int:
        """Bytes of gradients all-reduced per step: every parameter the reducer registers
        (those that need a gradient, each once, less the ones DDP is told to ignore)."""
        ignored = set(getattr(self.model, "_ddp_params_and_buffers_to_ignore", ()) or ())
        seen: set[int] = set()
        total = 0
        for name, p in self.model.named_parameters():
            if id(p) in seen or not p.requires_grad or name in ignored:
                continue
            seen.add(id(p))
            total += p.numel() * p.element_size()
        return total

    def add_step(self) -> None:
        self.steps += 1
        self.bytes_spent += self.current_bytes

    def cumulative_saved(self) -> float:
        """Share of the all-reduce volume saved over every step so far."""
        full = self.steps * self.full_bytes
        return 1.0 - self.bytes_spent / full if full > 0 else 0.0

    # ---- agreement between ranks --------------------------------------------------------------
    def agree_requests(self, pending: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
        """Rank 0's requests, on every rank; also how many of this rank's own were ignored
        (requests are taken from rank 0 only)."""
        count = torch.tensor([len(pending) if self.rank == 0 else 0], dtype=torch.long,
                             device=self._device)
        dist.broadcast(count, self._src, group=self.group)
        ignored = 0 if self.rank == 0 else len(pending)
        if int(count.item()) == 0:
            return [], ignored
        box: list[Any] = [list(pending) if self.rank == 0 else None]
        dist.broadcast_object_list(box, self._src, group=self.group, device=self._device)
        return [(str(a), str(n)) for a, n in box[0]], ignored

    def agree_names(self, names: Iterable[str]) -> list[str]:
        """Rank 0's ``names`` (the units it drops at this check), on every rank."""
        box: list[Any] = [list(names)]
        dist.broadcast_object_list(box, self._src, group=self.group, device=self._device)
        return [str(n) for n in box[0]]

    # ---- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "full_bytes": self.full_bytes,
                "steps": self.steps, "bytes_spent": self.bytes_spent,
                "timeline": [list(t) for t in self.timeline]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.full_bytes = int(state["full_bytes"])
        self.steps = int(state["steps"])
        self.bytes_spent = int(state["bytes_spent"])
        self.timeline = [(int(s), int(b)) for s, b in state["timeline"]]
        self.current_bytes = self.bytes_per_step()


def take_requests(pending: deque[tuple[str, str]], ddp: DataParallel | None,
                  callbacks: Sequence[Callback]) -> list[tuple[str, str]]:
    """The users' requests to apply at this step, taken from ``pending``: rank 0's on every
    rank when data-parallel (the others' are ignored, with a warning)."""
    taken: list[tuple[str, str]] = []
    while pending:
        taken.append(pending.popleft())
    if ddp is None:
        return taken
    ddp.add_step()
    agreed, ignored = ddp.agree_requests(taken)
    if ignored:
        call_hook(callbacks, "on_warning", f"{ignored} request(s) made on rank "
                  f"{ddp.rank} ignored: only rank 0's requests apply to every rank")
    return agreed


def comm_savings(ddp: DataParallel | None) -> dict[str, Any]:
    """The all-reduce figures of a savings report (zero without data parallelism)."""
    return {"allreduce_bytes_per_step_now": ddp.current_bytes if ddp else 0,
            "full_allreduce_bytes_per_step_now": ddp.full_bytes if ddp else 0,
            "allreduce_bytes_saved_total": ddp.cumulative_saved() if ddp else 0.0}


def comm_fields(ddp: DataParallel | None) -> dict[str, Any]:
    """The data-parallel entries of ``LearnDrop.savings()``: world size and the all-reduce
    timeline."""
    return {"world_size": ddp.world_size if ddp is not None else 1,
            "allreduce_timeline": [list(t) for t in ddp.timeline] if ddp else []}
