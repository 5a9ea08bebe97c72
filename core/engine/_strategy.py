"""The Learn&Drop strategy: score units, drop settled ones, really skip their work.

Plug-and-play in any training loop::

    ld = LearnDrop(model, optimizer, threshold=0.2, patience=2, mode="freeze")
    for epoch in range(epochs):
        for x, y in loader:
            loss = criterion(ld.model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            ld.step()
        ld.end_epoch()

``ld.model`` is the network as it trains (dropped units skipped per ``mode``); ``model`` itself
stays the complete network with its original ``state_dict`` keys, used for evaluation and
saving. A dropped unit's modules get a replacement forward when it drops (removed when it
trains again) that acts only inside ``ld.model``, in the thread that runs it: ``model(x)``
anywhere else, a copy or a pickle of ``model`` compute the complete network (see
:mod:`._forward`). ``ld.model.state_dict()`` has ``model``'s keys; the two load into each
other.

Wrapped models: ``LearnDrop(torch.compile(model))`` finds the units of ``model`` (names without
``_orig_mod.``) and ``ld.model`` runs the compiled module, which recompiles once per drop
event; ``torch.compile(ld.model)`` does the same. ``LearnDrop(DistributedDataParallel(model))``
finds the units of ``model``, and after each change of drop state ``ld.model`` rebuilds the
DDP wrapper around it (same device ids, output device, process group, bucket size,
``find_unused_parameters``, ``gradient_as_bucket_view`` and ``static_graph``; other settings,
communication hooks among them, are not carried over: pass ``wrap=`` to build it yourself),
so the reducer only waits for parameters that still train. Every rank must see the same
drops at the same step: policy drops do (every rank has the same parameters), drops, pins
and restores by hand must be made on every rank. ``DistributedDataParallel(ld.model)``
cannot be rebuilt by the engine and fails at the first step after a drop.

``LearnDrop(model, optimizer, ddp=True)`` (the plain model) does all of that itself and more:
rank 0 decides every drop and its ``ld.request`` calls apply on every rank at the same step,
an evaluation runs without the wrapper, and ``savings()`` counts the gradient bytes
all-reduced per step before and after each drop (see :mod:`._ddp`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelError
from ..events import Callback, DropEvent, SavingsReport, ScoreCheck, UnitInfo, call_hook
from ._cache import ActivationCache, remove_stale_spill_files
from ._cache_mode import CacheCall, CacheMode, EvalCache
from ._checking import score_check
from ._ddp import DataParallel, ddp_options
from ._dropping import apply_drop, restore_unit
from ._forward import DropAwareModule, Redirect
from ._measuring import build_savings_report, measure, record_times, savings_dict, step_cost
from ._notices import notify
from ._optim import OptimizerSlots
from ._policy import DropPolicy
from ._savings import SavingsMeter, StepCost
from ._scores import GradientNorms, ParameterSnapshots, UnitScore
from ._state import load_strategy_state, strategy_state
from ._timing import make_step_clock
from ._units import Unit, discover_units
from ._wrapping import Wrap, rewrapper, unwrap

__all__ = ["LearnDrop"]


@dataclass
class _UnitState:
    dropped: bool = False
    pinned: bool = False
    drop_step: int | None = None
    drop_epoch: float | None = None
    reason: str = ""
    trainable: tuple[bool, ...] = ()  # each parameter's requires_grad before the drop


class LearnDrop:
    """Scores each unit's learning and drops the settled ones during training.

    The drop settings come from ``policy`` (a :class:`DropPolicy`, by default its
    defaults); any of them given as a keyword argument (``threshold=0.2``) replaces the
    policy's value. Either way they are checked against the policy's one declaration, and
    an invalid one raises a :class:`ConfigError` naming ``drop.<setting>``.
    ``example_input`` (one batch, or one sample with a batch dimension) measures FLOPs now;
    without it they are measured on the first call of ``ld.model``. ``num_samples`` sizes
    the activation cache (``mode="cache"``, where ``ld.model(x, sample_ids=idx)`` must get
    each sample's index); in evaluation (``ld.model.eval()`` under ``torch.no_grad()``)
    ``ld.model(x, sample_ids=pos)``, ``pos`` each sample's position in the evaluation set,
    reuses the dropped prefix's output on that set too (kept exactly; ``eval_samples`` is
    the set's size). ``sync_every``: how many steps apart the training loop reads a
    value back from the device; on a device timed by the host's clock (neither the CPU nor
    CUDA, see :mod:`._timing`) step times are averaged over that many steps.
    ``wrap`` builds the module ``ld.model`` runs from the plain model
    (``lambda m: DistributedDataParallel(m, device_ids=[rank])``, say); it is called again
    after every change of drop state.

    ``ddp=True`` (or a dict of DistributedDataParallel keyword arguments), in every process
    of an initialised process group: ``ld.model`` trains data-parallel (DDP rebuilt after
    each change of drop state), and every rank drops the same units at the same step (rank
    0 decides; see :mod:`._ddp`). It takes the plain model, without ``wrap``.

    Dropping a unit freezes its parameters and takes them out of the optimizer; restoring
    it (or pinning a dropped one) puts each back into its own group at its original position
    (recorded by name when LearnDrop is made, and saved in :meth:`state_dict`), with the
    ``requires_grad`` it had before the drop. A parameter the user froze stays frozen and
    one that was never in the optimizer is never added.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        policy: DropPolicy | None = None,
        score: str | None = None,
        threshold: float | None = None,
        patience: int | None = None,
        warmup_epochs: int | None = None,
        check_every: int | None = None,
        order: str | None = None,
        keep_last: int | None = None,
        mode: str | None = None,
        lr_normalize: bool | None = None,
        ema: float | None = None,
        window: int | None = None,
        trend_tolerance: float | None = None,
        units: Iterable[str] | None = None,
        pinned: Iterable[str] | None = None,
        enabled: bool | None = None,
        cache_budget_mb: int | None = None,
        example_input: torch.Tensor | None = None,
        num_samples: int | None = None,
        eval_samples: int | None = None,
        cache_dir: str | None = None,
        steps_per_epoch: int | None = None,
        total_steps: int | None = None,
        sync_every: int | None = None,
        callbacks: Iterable[Callback] = (),
        wrap: Wrap | None = None,
        ddp: bool | dict[str, Any] | None = None,
    ) -> None:
        given = locals()  # the policy's settings among the arguments: those not left at None
        self.policy = (policy or DropPolicy()).with_values(
            **{name: given[name] for name in DropPolicy.names() if given[name] is not None})
        self.base_model = unwrap(model)
        options = ddp_options(ddp)
        if options is not None and (wrap is not None or self.base_model is not model):
            raise ConfigError("ddp= wraps the plain model itself: give it neither wrap= nor a "
                              "wrapped (compiled or DistributedDataParallel) model")
        self._ddp = DataParallel(self.base_model, options) if options is not None else None
        if self._ddp is not None:
            wrap = self._ddp.wrap
            self._ddp.on_release = self._release_runner
        self._rewrap = rewrapper(model, wrap)
        self._runner: nn.Module = wrap(self.base_model) if wrap is not None else model
        self._drop_version = 0
        self._runner_version = 0
        self.optimizer = optimizer
        self.num_samples = num_samples
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.callbacks: list[Callback] = list(callbacks)

        self.units: list[Unit] = discover_units(self.base_model,
                                                list(self.policy.units) or None)
        self._by_name = {u.name: u for u in self.units}
        self._state = {u.index: _UnitState() for u in self.units}
        self._scores = {u.index: UnitScore(window=self.policy.window,
                                                ema=self.policy.ema)
                        for u in self.units}
        self._named = dict(self.base_model.named_parameters())
        self._name_of = {id(p): n for n, p in self._named.items()}
        self._slots = OptimizerSlots.record(optimizer, self._named.items())
        self._redirects: dict[nn.Module, Redirect] = {}
        self._snaps = ParameterSnapshots()
        self._grads: GradientNorms | None = None
        if self.policy.score == "gradient":
            self._grads = GradientNorms()
            self._grads.track([(u.index, u.parameters()) for u in self._scored_units()])
        else:
            for u in self._scored_units():
                self._snaps.take(u.index, u.parameters())
        self.dropped: list[str] = []
        self.scores: dict[str, float] = {}
        self.model = DropAwareModule(self, self.base_model)
        self.step_count = 0
        self.epoch = 0
        self._epoch_start_step = 0
        self._lr_sum = 0.0
        self._lr_n = 0
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self._clock = make_step_clock(device)
        self._timing_block = 1 if self._clock.per_step else max(int(sync_every or 20), 1)
        self._prefix_len = 0
        self._cached = range(0)  # the dropped units the cache replaces (cache mode)
        self.total_forward_flops = 0
        self.other_flops = 0
        self.meter: SavingsMeter | None = None
        self._pending_meter: dict[str, Any] | None = None  # a resumed meter, before FLOPs
        self._last_cost: StepCost | None = None
        self._pending: deque[tuple[str, str]] = deque()
        self.check_count = 0
        self.score_time_s = 0.0
        self.train_time_s = 0.0
        self._cache = ActivationCache(self.policy.cache_budget_mb * 2**20, device,
                                      cache_dir)
        if self.policy.mode == "cache":  # what killed runs of older versions left behind
            remove_stale_spill_files(cache_dir)
        self._cache_mode = CacheMode(self._cache, num_samples,
                                     lambda message: notify(self.callbacks, message))
        self._eval_cache = EvalCache(ActivationCache(self.policy.cache_budget_mb * 2**20,
                                                     device, exact=True), eval_samples)
        for name in self.policy.pinned:
            self.pin(name)
        if example_input is not None:
            self._measure(example_input)

    # ---- public API ---------------------------------------------------------------------------
    def unit(self, name: str) -> Unit:
        try:
            return self._by_name[name]
        except KeyError:
            raise ModelError(f"no unit named '{name}' (units: "
                             f"{', '.join(u.name for u in self.units)})") from None

    def unit_infos(self) -> tuple[UnitInfo, ...]:
        total = max(self.total_forward_flops, 1)
        return tuple(UnitInfo(index=u.index, name=u.name, modules=u.module_names,
                              params=u.params, forward_flops=u.forward_flops,
                              flops_share=u.forward_flops / total, is_head=u.is_head,
                              skippable=u.skippable) for u in self.units)

    def add_callback(self, callback: Callback) -> None:
        self.callbacks.append(callback)

    def is_dropped(self, name: str) -> bool:
        return self._state[self.unit(name).index].dropped

    def is_pinned(self, name: str) -> bool:
        return self._state[self.unit(name).index].pinned

    @property
    def distributed(self) -> DataParallel | None:
        """The data-parallel side (``ddp=``): rank, world size, all-reduce volume."""
        return self._ddp

    @property
    def dropped_prefix(self) -> int:
        """How many leading units are dropped."""
        return self._prefix_len

    @property
    def cache_disabled_reason(self) -> str:
        """Why cache mode fell back to freeze for the rest of the run ('' while it has not)."""
        return self._cache_mode.disabled_reason

    def pin(self, name: str) -> None:
        """Never drop this unit (a dropped one is restored first)."""
        u = self.unit(name)
        if self._state[u.index].dropped:
            self.restore(name)
        self._state[u.index].pinned = True

    def unpin(self, name: str) -> None:
        self._state[self.unit(name).index].pinned = False

    def request(self, action: str, name: str) -> None:
        """Queue ``drop``/``pin``/``unpin`` from any thread; applied at the next ``step()``."""
        if action not in ("drop", "pin", "unpin"):
            raise ValueError(f"unknown action {action!r}")
        self._pending.append((action, name))

    def drop(self, name: str, *, reason: str = "manual") -> None:
        """Drop a unit now: freeze it, free its optimizer state, skip its work per the mode."""
        u = self.unit(name)
        if u.is_head:
            raise ConfigError(f"'{name}' is the head, which always trains")
        if not self.policy.enabled:
            raise ConfigError("dropping is off for this run (full baseline)")
        st = self._state[u.index]
        if st.dropped:
            return
        if st.pinned:
            raise ConfigError(f"'{name}' is pinned: unpin it before dropping it")
        self._apply_drop(u, reason)
        score = self._scores[u.index].score
        call_hook(self.callbacks, "on_drop",
                  DropEvent(step=self.step_count, epoch=self._epoch_float(), unit=u.name,
                            index=u.index, reason=reason, score=score, mode=self.policy.mode))

    def restore(self, name: str) -> None:
        """Undo a drop: the unit trains again (its optimizer state starts fresh). Each
        parameter gets back its ``requires_grad`` and its place in the optimizer."""
        u = self.unit(name)
        if self._state[u.index].dropped:
            restore_unit(self, u)

    def step(self) -> None:
        """Call after each optimizer step."""
        self.step_count += 1
        if self.optimizer is not None:
            self._lr_sum += float(self.optimizer.param_groups[0]["lr"])
            self._lr_n += 1
        if self.meter is not None:
            cost = self._last_cost or self.meter.current  # no drop: the full cost
            self.meter.count_step(cost)
            self._record_times(self._clock.end(cost))
        else:
            self._clock.pause()
        if self._grads is not None:  # scoring work, counted as such
            t0 = time.perf_counter()
            self._grads.add()
            self.score_time_s += time.perf_counter() - t0
        for action, name in self._take_requests():
            try:
                getattr(self, action)(name)
            except (ConfigError, ModelError) as exc:
                call_hook(self.callbacks, "on_warning", f"{action} {name}: {exc}")
        if self.policy.check_every and self.step_count % self.policy.check_every == 0:
            self.check()
        self._clock.begin()

    def pause_timing(self) -> None:
        """The time until the next step is not step time (a pause, validation)."""
        if self.meter is not None:
            self._record_times(self._clock.flush())
            self.meter.break_timing()
        self._clock.pause()

    def _record_times(self, times: list[tuple[Any, float]]) -> None:
        record_times(self, times)

    def end_epoch(self) -> None:
        """Call after each epoch (before validation)."""
        self.epoch += 1
        if self.steps_per_epoch is None:
            self.steps_per_epoch = max(self.step_count - self._epoch_start_step, 1)
        self._epoch_start_step = self.step_count
        if not self.policy.check_every:
            self.check()
        self.pause_timing()  # validation and epoch-end work are not step time

    def check(self) -> ScoreCheck:
        """Score every training unit now, then apply the drop rule."""
        return score_check(self)

    def savings(self) -> dict[str, Any]:
        """Savings so far; FLOP figures are fractions of the full network's (0.3 = 30%)."""
        return savings_dict(self)

    @property
    def score_overhead(self) -> float:
        """Time spent on score checks as a share of the measured step time."""
        return self.score_time_s / self.train_time_s if self.train_time_s > 0 else 0.0

    def savings_report(self) -> SavingsReport:
        return build_savings_report(self)

    def unit_state(self, name: str) -> str:
        """learning, settling, dropped or pinned."""
        u = self.unit(name)
        st = self._state[u.index]
        if st.dropped:
            return "dropped"
        if st.pinned:
            return "pinned"
        return "settling" if self._scores[u.index].streak > 0 else "learning"

    def drop_log(self) -> list[dict[str, Any]]:
        """Drops in order: unit, step, epoch, reason."""
        out = []
        for name in self.dropped:
            st = self._state[self._by_name[name].index]
            out.append({"unit": name, "step": st.drop_step, "epoch": st.drop_epoch,
                        "reason": st.reason})
        return out

    # ---- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to repeat the same drop state on resume (plain types and tensors,
        loadable with ``torch.load(weights_only=True)``)."""
        return strategy_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved drop state. Call before ``optimizer.load_state_dict`` so the
        optimizer's parameter groups already match the saved ones."""
        load_strategy_state(self, state)

    # ---- internals ----------------------------------------------------------------------------
    def _take_requests(self) -> list[tuple[str, str]]:
        """The requests to apply at this step (rank 0's, on every rank, when data-parallel)."""
        taken: list[tuple[str, str]] = []
        while self._pending:
            taken.append(self._pending.popleft())
        if self._ddp is None:
            return taken
        self._ddp.add_step()
        agreed, ignored = self._ddp.agree_requests(taken)
        if ignored:
            call_hook(self.callbacks, "on_warning", f"{ignored} request(s) made on rank "
                      f"{self._ddp.rank} ignored: only rank 0's requests apply to every rank")
        return agreed

    def _training_module(self) -> nn.Module:
        """What ``ld.model`` runs now: the runner, except that a data-parallel model that
        does not train runs without its DDP wrapper (an evaluation needs no gradient sync,
        and each rank evaluates its own share alone)."""
        if self._ddp is not None and not self._ddp_trains():
            return self.base_model
        return self._runner

    def _ddp_trains(self) -> bool:
        return self.base_model.training and torch.is_grad_enabled()

    def _release_runner(self) -> None:
        """Let go of the DDP wrapper; the next training call of ``ld.model`` builds it."""
        self._runner = self.base_model
        self._runner_version = -1

    def _epoch_float(self) -> float:
        if self.steps_per_epoch:
            return self.epoch + (self.step_count - self._epoch_start_step) / self.steps_per_epoch
        return float(self.epoch)

    def _scored_units(self) -> list[Unit]:
        return [u for u in self.units if not u.is_head and not self._state[u.index].dropped
                and u.params > 0]

    def _apply_drop(self, u: Unit, reason: str) -> None:
        apply_drop(self, u, reason)

    def _cache_call(self, sample_ids: torch.Tensor | None, training: bool
                    ) -> tuple[CacheMode | EvalCache | None, CacheCall | None]:
        """The cache this forward uses and what it does with it (None: no cache). A
        training forward uses the training cache; an evaluation with ``sample_ids`` (each
        sample's position in the evaluation set) uses the evaluation cache."""
        if self.policy.mode != "cache" or not self._cached:
            return None, None
        if training:
            return self._cache_mode, self._cache_mode.begin(
                sample_ids, step=self.step_count, epoch_start=self._epoch_start_step,
                steps_per_epoch=self.steps_per_epoch)
        if self._cache_mode.disabled_reason or torch.is_grad_enabled():
            return None, None
        return self._eval_cache, self._eval_cache.begin(sample_ids)

    def _sync_runner(self) -> None:
        """Rebuild the wrapper ``ld.model`` runs (DDP) after a change of drop state."""
        if self._rewrap is None or self._runner_version == self._drop_version:
            return
        if self._ddp is not None and not self._ddp_trains():
            return  # built by the next training call, on every rank at the same step
        self._runner = self._rewrap(self.base_model)
        self._runner.train(self.model.training)
        self._runner_version = self._drop_version

    def _enforce_eval(self) -> None:
        for name in self.dropped:
            for m in self._by_name[name].modules:
                if m.training:
                    m.eval()

    def _measure(self, example: torch.Tensor) -> None:
        measure(self, example)

    def _cost(self, cache_hit: bool) -> StepCost:
        return step_cost(self, cache_hit)
