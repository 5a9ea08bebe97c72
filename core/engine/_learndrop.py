"""LearnDrop: score units, drop settled ones, really skip their work.

The front of the engine. It builds its parts and forwards the public API to them:

- :class:`~._scoring.Scorer`: snapshots or gradient norms, each unit's score state, the
  learning rates since the last check;
- :class:`~._drop_state.DropState`: each unit's drop state, the dropped prefix and the part
  the cache replaces, the optimizer slots, the forward redirects;
- :class:`~._accounting.Accounting`: FLOPs, the step clock, the savings meter;
- the drop rule itself is :mod:`._rule`, pure functions it calls at every check;
- the caches (:mod:`._cache_mode`) and the data-parallel side (:mod:`._ddp`).

Plug-and-play in any training loop::

    ld = LearnDrop(model, optimizer, threshold=0.2, patience=2, mode="freeze")
    for epoch in range(epochs):
        for x, y in loader:
            loss = criterion(ld.model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            ld.step(loss)   # the loss: for drop.reversible (stays on the device)
        ld.end_epoch()

``ld.model`` is the network as it trains (dropped units skipped per ``mode``); ``model`` itself
stays the complete network with its original ``state_dict`` keys, used for evaluation and
saving. A dropped unit's modules get a replacement forward when it drops (removed when it
trains again) that acts only inside ``ld.model``, in the thread that runs it: ``model(x)``
anywhere else, a copy or a pickle of ``model`` compute the complete network (see
:mod:`._forward`). ``ld.model.state_dict()`` has ``model``'s keys; the two load into each
other.

Wrapped models (compiled, DistributedDataParallel, ``wrap=``, ``ddp=True``): see
:mod:`._runner`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelError
from ..events import Callback, DropEvent, SavingsReport, ScoreCheck, UnitInfo, call_hook
from ._accounting import Accounting
from ._cache_mode import Caches
from ._ddp import OUTSIDE, DataParallel, comm_fields, comm_savings, ddp_options, take_requests
from ._drop_state import DropState
from ._forward import CallPlan, DropAwareModule, install_redirects
from ._misuse import (
    NOTHING_MOVED,
    check_optimizer,
    checked_callback,
    claim_model,
    guard_optimizer_loading,
)
from ._notices import notify
from ._policy import DropPolicy
from ._reversal import LossWatch
from ._rule import LossSpan, ScoreState, check_due, drops_now, is_kept, may_drop, restore_hold
from ._runner import Runner
from ._savings import SavingsMeter
from ._scoring import Scorer
from ._state import load_state, save_state
from ._units import Unit, discover_units, idle_message, unit_infos
from ._wrapping import Wrap, unwrap

__all__ = ["LearnDrop"]


class LearnDrop:
    """Scores each unit's learning and drops the settled ones during training.

    The drop settings come from ``policy`` (a :class:`DropPolicy`, by default its
    defaults); any of them given as a keyword argument (``threshold=0.2``) replaces the
    policy's value. Either way they are checked against the policy's one declaration, and
    an invalid or unknown one raises a :class:`ConfigError` naming ``drop.<setting>``.
    ``example_input`` (one batch, or one sample with a batch dimension; a tuple for several
    inputs, ``example_kwargs`` for keyword inputs) measures FLOPs now, else the first call of
    ``ld.model`` does (on all its inputs). ``num_samples`` sizes the activation cache
    (``mode="cache"``, where ``ld.model(x, sample_ids=idx)`` gets each sample's index); in
    evaluation (``ld.model.eval()`` under ``torch.no_grad()``) ``ld.model(x,
    sample_ids=pos)``, ``pos`` each sample's position in the evaluation set (of
    ``eval_samples``), reuses the dropped prefix's output on that set too, exactly.
    ``sync_every``: how many steps apart the loop reads a value back from the device (a
    device timed by the host's clock averages step times over that many steps).
    ``wrap`` builds the module ``ld.model`` runs from the plain model
    (``lambda m: DistributedDataParallel(m, device_ids=[rank])``, say); it is called again
    after every change of drop state.

    ``ddp=True`` (or a dict of DistributedDataParallel keyword arguments), in every process
    of an initialised process group: ``ld.model`` trains data-parallel (DDP rebuilt after
    each change of drop state), and every rank drops the same units at the same step (rank
    0 decides; see :mod:`._ddp`; ``ddp="outside"``: the same, for a wrapper that the caller
    builds and rebuilds, as Lightning's). It takes the plain model, without ``wrap``.
    Dropping and restoring a unit's parameters in the optimizer: see ``DropState``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        policy: DropPolicy | None = None,
        example_input: Any = None, example_kwargs: dict[str, Any] | None = None,
        num_samples: int | None = None,
        eval_samples: int | None = None,
        cache_dir: str | None = None,
        steps_per_epoch: int | None = None,
        total_steps: int | None = None,
        sync_every: int | None = None,
        callbacks: Iterable[Callback] = (),
        wrap: Wrap | None = None,
        ddp: bool | str | dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.policy = (policy or DropPolicy()).with_values(  # auto: cache given num_samples
            **{name: value for name, value in settings.items() if value is not None}
        ).resolved(cacheable=num_samples is not None)
        self.base_model = unwrap(model)
        options = ddp_options(ddp)
        if options is not None and (wrap is not None or self.base_model is not model):
            raise ConfigError("ddp= wraps the plain model itself: give it neither wrap= nor a "
                              "wrapped (compiled or DistributedDataParallel) model")
        wraps = options is not None and ddp != OUTSIDE  # else: not data-parallel, or outside
        self._ddp = DataParallel(self.base_model, options, wraps) if options is not None else None
        wrap = self._ddp.wrap if self._ddp is not None and wraps else wrap
        self.runner = Runner(self.base_model, model, wrap, data_parallel=wraps)
        if self._ddp is not None:
            self._ddp.on_release = self.runner.release
        check_optimizer(optimizer, self.base_model)
        guard_optimizer_loading(optimizer)
        self.optimizer = optimizer
        self.num_samples = num_samples
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.callbacks: list[Callback] = [checked_callback(cb) for cb in callbacks]

        claim_model(self.base_model, self)
        self.units: list[Unit] = discover_units(self.base_model,
                                                list(self.policy.units) or None)
        self._by_name = {u.name: u for u in self.units}
        self.drops = DropState(self.base_model, self.units, optimizer)
        self.scorer = Scorer(self.units, self.policy)
        self.scorer.follow(self.drops.training())
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.accounting = Accounting(device, sync_every)
        self.model = DropAwareModule(self, self.base_model, self._plan_call, self._on_train)
        self.step_count = 0
        self.epoch = 0
        self._epoch_start_step = 0
        self._pending: deque[tuple[str, str]] = deque()
        self._said = False  # that no parameter moved (said once)
        self._moved = False  # a drop or restore since the last on_savings
        self.losses = LossWatch()  # the training loss between checks (drop.reversible)
        self.caches = Caches(self.policy, device, num_samples=num_samples,
                             eval_samples=eval_samples, spill_dir=cache_dir,
                             notify=lambda message: notify(self.callbacks, message))
        for name in self.policy.pinned:
            self.pin(name)
        if example_input is not None or example_kwargs:
            self._measure(() if example_input is None else example_input, example_kwargs)

    # ---- public API ---------------------------------------------------------------------------
    def unit(self, name: str) -> Unit:
        """The unit called ``name`` (a :class:`ModelError` listing the units if none is)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ModelError(f"no unit named '{name}' (units: "
                             f"{', '.join(u.name for u in self.units)})") from None

    def unit_infos(self) -> tuple[UnitInfo, ...]:
        """Every unit as the events describe it: name, modules, parameters, FLOPs and their
        share of the forward pass, head, skippable."""
        return unit_infos(self.units, self.total_forward_flops)

    def add_callback(self, callback: Callback) -> None:
        """Hear the engine's events (drops, score checks, warnings) from now on; a
        ``TypeError`` if ``callback`` lacks a hook (subclass :class:`Callback`)."""
        self.callbacks.append(checked_callback(callback))

    def is_dropped(self, name: str) -> bool:
        """Whether unit ``name`` is dropped now."""
        return self.drops.is_dropped(self.unit(name))

    def is_pinned(self, name: str) -> bool:
        """Whether unit ``name`` is pinned (the policy never drops it)."""
        return self.drops.is_pinned(self.unit(name))

    def is_kept(self, name: str) -> bool:
        """Whether the policy never drops ``name``: the head, ``drop.keep_last`` before it."""
        u = self.unit(name)
        return is_kept(u.index, len(self.units), self.policy.keep_last, u.is_head)

    @property
    def dropped(self) -> list[str]:
        """The dropped units, in the order they dropped."""
        return self.drops.order

    @property
    def scores(self) -> dict[str, float]:
        """Each scored unit's latest learning score."""
        return self.scorer.latest

    @property
    def score_states(self) -> tuple[ScoreState, ...]:
        """Each unit's score state (score, trend, streak), aligned with :attr:`units`."""
        return tuple(self.scorer.states)

    @property
    def check_count(self) -> int:
        return self.scorer.check_count

    @property
    def meter(self) -> SavingsMeter | None:
        """The savings meter (None until the units' FLOPs are measured)."""
        return self.accounting.meter

    @property
    def total_forward_flops(self) -> int:
        return self.accounting.total_forward_flops

    @property
    def train_time_s(self) -> float:
        """Measured step time so far."""
        return self.accounting.train_time_s

    @property
    def distributed(self) -> DataParallel | None:
        """The data-parallel side (``ddp=``): rank, world size, all-reduce volume."""
        return self._ddp

    @property
    def dropped_prefix(self) -> int:
        """How many leading units are dropped."""
        return self.drops.prefix_len

    @property
    def cache_disabled_reason(self) -> str:
        """Why cache mode fell back to freeze for the rest of the run ('' while it has not)."""
        return self.caches.training.disabled_reason

    def pin(self, name: str) -> None:
        """Never drop this unit (a dropped one is restored first)."""
        u = self.unit(name)
        if self.drops.is_dropped(u):
            self.restore(name)
        self.drops.pin(u)

    def unpin(self, name: str) -> None:
        """Let the policy drop this unit again."""
        self.drops.pin(self.unit(name), False)

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
        if self.drops.is_dropped(u):
            return
        if self.drops.is_pinned(u):
            raise ConfigError(f"'{name}' is pinned: unpin it before dropping it")
        self._apply_drop(u, reason)
        call_hook(self.callbacks, "on_drop", DropEvent(
            self.step_count, self._epoch_float(), u.name, u.index, reason,
            self.scorer.states[u.index].score, self.policy.mode))

    def restore(self, name: str) -> None:
        """Undo a drop: the unit trains again (its optimizer state starts fresh)."""
        u = self.unit(name)
        if self.drops.is_dropped(u):
            self.drops.restore(u, self.optimizer, self.model.training)
            self.scorer.start(u)
            self.losses.forget(u.index)
            self._drop_state_changed()
            self._moved = True

    def step(self, loss: Any = None) -> None:
        """Call after each optimizer step, with its loss for ``drop.reversible``."""
        self.step_count += 1
        if loss is not None and self.policy.reversible:
            self.losses.add(loss)
        self.scorer.add_step(self.optimizer)
        self.accounting.end_step()
        for action, name in take_requests(self._pending, self._ddp, self.callbacks):
            try:
                getattr(self, action)(name)
            except (ConfigError, ModelError) as exc:
                call_hook(self.callbacks, "on_warning", f"{action} {name}: {exc}")
        if check_due(self.policy, self.step_count - self._epoch_start_step,
                     self.steps_per_epoch, self.step_count):
            self.check()
        self._report_moved()
        self.accounting.begin_step()

    def pause_timing(self) -> None:
        """The time until the next step is not step time (a pause, validation)."""
        self.accounting.pause()

    def end_epoch(self) -> None:
        """Call after each epoch (before validation)."""
        self.epoch += 1
        if self.steps_per_epoch is None:
            self.steps_per_epoch = max(self.step_count - self._epoch_start_step, 1)
        self._epoch_start_step = self.step_count
        if not self.policy.check_every:
            self.check()
        self._report_moved()
        self.pause_timing()  # validation and epoch-end work are not step time

    def _report_moved(self) -> None:
        """After drops or restores, the savings in the new drop state (``on_savings``)."""
        if self._moved:
            self._moved = False
            call_hook(self.callbacks, "on_savings", self.savings_report())

    def check(self) -> ScoreCheck:
        """Score every training unit now, then apply the drop rule (:mod:`._rule`)."""
        event = self.scorer.check(self.drops.training(), self.optimizer,
                                  step=self.step_count, epoch=self._epoch_float())
        call_hook(self.callbacks, "on_scores", event)
        moved = [c for c in event.changes if c is not None]
        if self.policy.score == "change" and moved and not any(moved) and not self._said:
            self._said = True
            notify(self.callbacks, NOTHING_MOVED)
        if self.policy.reversible:  # watches the last drop the policy made, if any
            self._revert(self.losses.take())
        if may_drop(self.policy, self._epoch_float()):
            statuses = self.drops.statuses([s.streak for s in self.scorer.states])
            names = self._agreed(drops_now(self.policy, self.drops.rule_units(), statuses))
            for name in names:
                self.drop(name, reason="policy")
            if self.policy.reversible and (said := self.losses.dropped(
                    [self.unit(n).index for n in names])):
                notify(self.callbacks, said)
        return event

    def _revert(self, span: LossSpan | None) -> None:
        """Restore the last drop's units when the loss since rose (:mod:`._reversal`)."""
        verdict = self.losses.judge(span, self.policy)
        for name in self._agreed(verdict.units):
            u = self.unit(name)
            if self.drops.is_dropped(u):
                self.restore(name)
                self.scorer.hold(u, restore_hold(self.policy))
                call_hook(self.callbacks, "on_restore",
                          verdict.event(u, self.step_count, self._epoch_float()))

    def _agreed(self, indexes: Iterable[int]) -> list[str]:
        """The names of units the policy acts on: rank 0's on every rank (data-parallel)."""
        names = [self.units[i].name for i in indexes]
        return self._ddp.agree_names(names) if self._ddp is not None else names

    def savings(self) -> dict[str, Any]:
        """Savings so far by the savings record's fields (``_now``: the current drop state's,
        ``_total``: the run's so far; FLOPs as fractions of the full network's: 0.3 = 30%)."""
        r = self.savings_report()
        return {**{k: getattr(r, k) for k in r.__dataclass_fields__},
                "score_overhead": self.score_overhead,
                **self.caches.savings_fields(self.accounting.train_time_s),
                **comm_fields(self._ddp)}

    @property
    def score_overhead(self) -> float:
        """Time spent on score checks as a share of the measured step time."""
        return self.scorer.time_s / train if (train := self.accounting.train_time_s) > 0 else 0.0

    def savings_report(self) -> SavingsReport:
        """The savings so far as one typed record (what ``on_epoch_end`` and
        ``on_savings`` report)."""
        return self.accounting.report(self.step_count, self.base_model, self.total_steps,
                                      **comm_savings(self._ddp))

    def unit_state(self, name: str) -> str:
        """learning, settling, dropped or pinned."""
        u = self.unit(name)
        if self.drops.is_dropped(u):
            return "dropped"
        if self.drops.is_pinned(u):
            return "pinned"
        return "settling" if self.scorer.states[u.index].settled else "learning"

    def drop_log(self) -> list[dict[str, Any]]:
        """Drops in order: unit, step, epoch, reason."""
        return self.drops.log()

    # ---- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to repeat the same drop state on resume, one section per part
        (plain types and tensors, loadable with ``torch.load(weights_only=True)``)."""
        progress = {"step_count": self.step_count, "epoch": self.epoch,
                    "epoch_start_step": self._epoch_start_step,
                    "steps_per_epoch": self.steps_per_epoch,
                    "loss_watch": self.losses.state_dict()}
        return save_state(self.units, self.policy.mode, self.drops, self.scorer,
                          self.accounting, progress,
                          self._ddp.state_dict() if self._ddp is not None else None)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved drop state. Call before ``optimizer.load_state_dict`` so the
        optimizer's parameter groups already match the saved ones."""
        sections = load_state(state, [u.name for u in self.units])
        for name in reversed(list(self.dropped)):  # back to the complete layout first
            self.restore(name)
        problem = self.drops.check_slots(sections["drops"].get("optimizer_slots"), self.optimizer)
        if problem:
            raise ModelError(f"the optimizer does not match the saved run's ({problem}): "
                             f"build it the same way before resuming")
        for name in sections["drops"]["pinned"]:
            self.drops.pin(self.unit(name))
        for name, step, epoch, reason in sections["drops"]["dropped"]:
            u = self.unit(name)
            self._apply_drop(u, reason)
            st = self.drops.of[u.index]
            st.drop_step, st.drop_epoch = step, epoch
        device = next((p.device for p in self.base_model.parameters()), torch.device("cpu"))
        self.scorer.load_state_dict(sections["scoring"], device)
        progress = sections["progress"]
        self.step_count = int(progress["step_count"])
        self.epoch = int(progress["epoch"])
        self._epoch_start_step = int(progress["epoch_start_step"])
        self.steps_per_epoch = progress.get("steps_per_epoch") or self.steps_per_epoch
        self.losses.load_state_dict(progress.get("loss_watch") or {})
        if self._ddp is not None and sections.get("ddp"):
            self._ddp.load_state_dict(sections["ddp"])
        self.accounting.load_state_dict(sections["accounting"])

    # ---- internals ----------------------------------------------------------------------------
    def _apply_drop(self, u: Unit, reason: str) -> None:
        self.drops.drop(u, reason, self.step_count, self._epoch_float(), self.optimizer)
        self.scorer.stop(u)
        self._drop_state_changed()
        self._moved = True

    def _drop_state_changed(self) -> None:
        """After a drop or restore (and once the units are measured): the scored units, the
        prefix and the part of it the cache replaces, each dropped module's replacement
        forward, the cost of a step."""
        self.scorer.follow(self.drops.training())
        cached = range(0)
        if self.policy.mode == "cache" and self.accounting.measured:
            cached = self.drops.cacheable(
                lambda message: self.caches.training.warn_once("cached", message))
        if self.drops.layout(cached):
            self.caches.reset()
        install_redirects(self, self.drops.redirects, self.drops.roles(self.policy.mode))
        if self._ddp is not None:
            self._ddp.changed(self.step_count)
        if self.accounting.measured:
            self.accounting.set_state_cost(self._cost(cache_hit=False))

    def _cost(self, cache_hit: bool) -> Any:
        return self.accounting.cost(self.units, self.drops, self.policy.mode, cache_hit)

    def _epoch_float(self) -> float:
        done = self.step_count - self._epoch_start_step
        return self.epoch + (done / self.steps_per_epoch if self.steps_per_epoch else 0.0)

    def _plan_call(self, training: bool, args: tuple, kwargs: dict, sample_ids: Any) -> CallPlan:
        """What one ``ld.model`` call runs (see :mod:`._forward`): FLOPs measured on the
        first call, the wrapper rebuilt after a change of drop state, the cache's plan, and
        the cost the call's step is counted at."""
        if not self.accounting.measured and (args or kwargs):
            self._measure(args, kwargs)
        self.runner.sync(self.drops.version, self.model.training)
        call = cache = None
        if self.dropped:
            self.drops.enforce_eval()
            if self.policy.mode == "cache" and self.drops.cached:
                cache, call = self.caches.plan(
                    sample_ids, training, step=self.step_count,
                    epoch_start=self._epoch_start_step, steps_per_epoch=self.steps_per_epoch)
        if not self.dropped:
            self.accounting.step_cost = None  # the full cost
        elif training:
            self.accounting.step_cost = self._cost(cache_hit=call is not None and call.hit)
        return self.runner.current(), call, cache

    def _on_train(self, mode: bool) -> None:
        """``ld.model.train(mode)``: the wrapper follows; dropped modules stay in eval."""
        self.runner.train(mode)
        self.drops.enforce_eval()

    def _measure(self, example: Any, kwargs: dict[str, Any] | None = None) -> None:
        """Measure each unit's FLOPs on ``example`` (one input or a tuple of them) and
        ``kwargs``, and start the savings meter."""
        self.accounting.measure(self.base_model, self.units, example, kwargs)
        if idle := idle_message(self.units):
            notify(self.callbacks, idle)
        self._drop_state_changed()  # skippable units and cache boundaries are known now
