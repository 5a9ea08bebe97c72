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
saving. Dropped units' forwards are redirected only while ``ld.model`` runs, so copying,
pickling or calling ``model`` directly never sees any patching.
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
from ._forward import DropAwareModule
from ._policy import DropPolicy
from ._savings import SavingsMeter, StepCost
from ._scores import ParameterSnapshots, UnitScore
from ._state import load_strategy_state, strategy_state
from ._timing import make_step_clock
from ._units import Unit, discover_units, measure_units

__all__ = ["LearnDrop"]


@dataclass
class _UnitState:
    dropped: bool = False
    pinned: bool = False
    drop_step: int | None = None
    drop_epoch: float | None = None
    reason: str = ""


class LearnDrop:
    """Scores each unit's learning and drops the settled ones during training.

    The drop settings come from ``policy`` (a :class:`DropPolicy`, by default its
    defaults); any of them given as a keyword argument (``threshold=0.2``) replaces the
    policy's value. Either way they are checked against the policy's one declaration, and
    an invalid one raises a :class:`ConfigError` naming ``drop.<setting>``.
    ``example_input`` (one batch, or one sample with a batch dimension) measures FLOPs now;
    without it they are measured on the first call of ``ld.model``. ``num_samples`` sizes
    the activation cache (``mode="cache"``, where ``ld.model(x, sample_ids=idx)`` must get
    each sample's index). ``sync_every``: how many steps apart the training loop reads a
    value back from the device; on a device timed by the host's clock (neither the CPU nor
    CUDA, see :mod:`._timing`) step times are averaged over that many steps.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        policy: DropPolicy | None = None,
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
        cache_dir: str | None = None,
        steps_per_epoch: int | None = None,
        total_steps: int | None = None,
        sync_every: int | None = None,
        callbacks: Iterable[Callback] = (),
    ) -> None:
        given = locals()  # the policy's settings among the arguments: those not left at None
        self.policy = (policy or DropPolicy()).with_values(
            **{name: given[name] for name in DropPolicy.names() if given[name] is not None})
        self.base_model = model
        self.optimizer = optimizer
        self.num_samples = num_samples
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.callbacks: list[Callback] = list(callbacks)

        self.units: list[Unit] = discover_units(model, list(self.policy.units) or None)
        self._by_name = {u.name: u for u in self.units}
        self._state = {u.index: _UnitState() for u in self.units}
        self._scores = {u.index: UnitScore(window=self.policy.window,
                                                ema=self.policy.ema)
                        for u in self.units}
        self._group_of: dict[int, int] = {}
        if optimizer is not None:
            for gi, group in enumerate(optimizer.param_groups):
                for p in group["params"]:
                    self._group_of[id(p)] = gi
        self._snaps = ParameterSnapshots()
        for u in self._scored_units():
            self._snaps.take(u.index, u.parameters())
        self.dropped: list[str] = []
        self.scores: dict[str, float] = {}
        self.model = DropAwareModule(self, model)
        self.step_count = 0
        self.epoch = 0
        self._epoch_start_step = 0
        self._lr_sum = 0.0
        self._lr_n = 0
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self._clock = make_step_clock(device)
        self._timing_block = 1 if self._clock.per_step else max(int(sync_every or 20), 1)
        self._prefix_len = 0
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
        self._cache_disabled_reason = ""
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
    def dropped_prefix(self) -> int:
        """How many leading units are dropped."""
        return self._prefix_len

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
        """Undo a drop: the unit trains again (its optimizer state starts fresh)."""
        u = self.unit(name)
        st = self._state[u.index]
        if not st.dropped:
            return
        st.dropped, st.drop_step, st.drop_epoch, st.reason = False, None, None, ""
        params = u.parameters()
        for p in params:
            p.requires_grad_(True)
        if self.optimizer is not None:
            for p in params:
                gi = self._group_of.get(id(p), 0)
                self.optimizer.param_groups[gi]["params"].append(p)
        for m in u.modules:
            m.train(self.model.training)
        self.dropped.remove(u.name)
        self._snaps.take(u.index, params)
        self._scores[u.index].streak = 0
        self._update_prefix()

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
        while self._pending:
            action, name = self._pending.popleft()
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
        assert self.meter is not None
        for cost, seconds in times:
            self.meter.add_time(cost, seconds)
            self.train_time_s += seconds

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
        t0 = time.perf_counter()
        self.check_count += 1
        units = self._scored_units()
        items = [(u.index, u.parameters()) for u in units if u.index in self._snaps]
        changes = self._snaps.relative_changes(items)
        lr = self._lr_sum / self._lr_n if self._lr_n else (
            float(self.optimizer.param_groups[0]["lr"]) if self.optimizer else 1.0)
        self._lr_sum, self._lr_n = 0.0, 0
        for (idx, _), change in zip(items, changes):
            if self.policy.lr_normalize and self.optimizer is not None and lr > 0:
                change = change / lr
            s = self._scores[idx]
            s.update(change, self.policy.threshold, self.policy.trend_tolerance)
            self.scores[self.units[idx].name] = float(s.score or 0.0)
        cost = time.perf_counter() - t0
        self.score_time_s += cost
        n = len(self.units)
        scored = {idx for idx, _ in items}
        event = ScoreCheck(
            step=self.step_count, epoch=self._epoch_float(), lr=lr,
            changes=tuple(self._scores[i].change if i in scored else None for i in range(n)),
            scores=tuple(self._scores[i].score if i in scored else None for i in range(n)),
            trends=tuple(self._scores[i].trend if i in scored else None for i in range(n)),
            settled=tuple(i in scored and self._scores[i].streak > 0 for i in range(n)),
            streaks=tuple(self._scores[i].streak for i in range(n)),
            cost_s=cost)
        call_hook(self.callbacks, "on_scores", event)
        if self.policy.enabled and self.epoch >= self.policy.warmup_epochs:
            for u in self._policy_drops():
                self.drop(u.name, reason="policy")
        return event

    def savings(self) -> dict[str, Any]:
        """Savings so far; FLOP figures are fractions of the full network's (0.3 = 30%)."""
        r = self.savings_report()
        out = {k: getattr(r, k) for k in r.__dataclass_fields__}
        out["score_overhead"] = self.score_overhead
        out["cache_location"] = self._cache.location
        return out

    @property
    def score_overhead(self) -> float:
        """Time spent on score checks as a share of the measured step time."""
        return self.score_time_s / self.train_time_s if self.train_time_s > 0 else 0.0

    def savings_report(self) -> SavingsReport:
        m = self.meter
        trainable = sum(p.numel() for p in self.base_model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.base_model.parameters())
        if m is None:
            return SavingsReport(self.step_count, 0.0, 0.0, 0.0, 0.0, trainable, total,
                                 None, None, None, 0.0, 0.0, None)
        remaining = max((self.total_steps or 0) - self.step_count, 0)
        saved = m.time_saved()
        return SavingsReport(
            step=self.step_count, forward_flops_saved=m.forward_saved(),
            train_flops_saved=m.train_saved(),
            cumulative_forward_flops_saved=m.cumulative_forward_saved(),
            cumulative_train_flops_saved=m.cumulative_train_saved(),
            trainable_params=trainable, total_params=total, step_time_s=m.step_time,
            full_step_time_s=m.full_step_time, measured_time_saved=m.measured_time_saved(),
            time_saved_s=saved.seconds if saved else 0.0,
            projected_time_saved_s=m.projected_time_saved_s(remaining),
            efficiency=m.efficiency(),
            time_saved_low_s=saved.low if saved else None,
            time_saved_high_s=saved.high if saved else None,
            predicted_time_saved_s=saved.predicted if saved else None,
            step_time_spread=m.step_time_spread)

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
    def _epoch_float(self) -> float:
        if self.steps_per_epoch:
            return self.epoch + (self.step_count - self._epoch_start_step) / self.steps_per_epoch
        return float(self.epoch)

    def _scored_units(self) -> list[Unit]:
        return [u for u in self.units if not u.is_head and not self._state[u.index].dropped
                and u.params > 0]

    def _protected(self) -> set[int]:
        head = len(self.units) - 1
        return set(range(max(head - self.policy.keep_last, 0), head + 1))

    def _qualifies(self, u: Unit) -> bool:
        return u.params == 0 or self._scores[u.index].streak >= self.policy.patience

    def _policy_drops(self) -> list[Unit]:
        protected = self._protected()
        out: list[Unit] = []
        for u in self.units:
            st = self._state[u.index]
            if st.dropped:
                continue
            ok = u.index not in protected and not st.pinned and self._qualifies(u)
            if ok:
                out.append(u)
            elif self.policy.order == "prefix":
                break
        return out

    def _apply_drop(self, u: Unit, reason: str) -> None:
        st = self._state[u.index]
        st.dropped, st.reason = True, reason
        st.drop_step, st.drop_epoch = self.step_count, self._epoch_float()
        params = u.parameters()
        ids = {id(p) for p in params}
        for p in params:
            p.requires_grad_(False)
            p.grad = None
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in ids]
            for p in params:
                self.optimizer.state.pop(p, None)
        for m in u.modules:
            m.eval()
        self._snaps.discard(u.index)
        self.dropped.append(u.name)
        self._update_prefix()

    def _update_prefix(self) -> None:
        n = 0
        for u in self.units:
            if not self._state[u.index].dropped:
                break
            n += 1
        if n != self._prefix_len:
            self._prefix_len = n
            self._cache.clear()
        if self.meter is not None:
            self.meter.set_cost(self._cost(cache_hit=False))

    def _enforce_eval(self) -> None:
        for name in self.dropped:
            for m in self._by_name[name].modules:
                if m.training:
                    m.eval()

    def _measure(self, example: torch.Tensor) -> None:
        total = measure_units(self.base_model, self.units, example)
        self.total_forward_flops = total
        self.other_flops = max(total - sum(u.forward_flops for u in self.units), 0)
        self.meter = SavingsMeter(total, block=self._timing_block)
        if self._pending_meter:
            self.meter.load_state_dict(self._pending_meter)
        self.meter.set_cost(self._cost(cache_hit=False))

    def _cost(self, cache_hit: bool) -> StepCost:
        fwd = float(self.other_flops)
        train = 3.0 * self.other_flops
        for u in self.units:
            f = float(u.forward_flops)
            st = self._state[u.index]
            if not st.dropped:
                fwd += f
                train += 3 * f
            elif self.policy.mode == "skip" and u.skippable:
                continue
            elif u.index < self._prefix_len:
                if not (self.policy.mode == "cache" and cache_hit):
                    fwd += f
                    train += f
            else:
                fwd += f
                train += 2 * f
        return StepCost(fwd, train)
