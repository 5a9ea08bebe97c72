"""The drop policy: every Learn&Drop setting, declared once.

Each field carries its type, default, bounds and one-line help (:func:`learndrop.core.fields.doc`).
The run config's ``[drop]`` section *is* this class, :class:`LearnDrop` takes one as
``policy=`` (or the same names as keyword arguments), the command line's ``--drop.*`` flags
and the app's form are generated from it, and :meth:`DropPolicy.problems` is the one check.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from ..fields import choices_of, doc, value_problem

__all__ = ["DropPolicy", "DropMode", "DropOrder", "DropScore", "MODES", "ORDERS", "SCORES",
           "SETTLE_TESTS"]

DropMode = Literal["auto", "freeze", "cache", "skip"]
DropOrder = Literal["prefix", "any"]
DropScore = Literal["change", "gradient"]
SettleTest = Literal["noise", "tolerance"]
CachePrecision = Literal["float16", "full"]
MODES: tuple[str, ...] = choices_of(DropMode)
ORDERS: tuple[str, ...] = choices_of(DropOrder)
SCORES: tuple[str, ...] = choices_of(DropScore)
SETTLE_TESTS: tuple[str, ...] = choices_of(SettleTest)
#: checks an epoch when a run fine-tunes trained weights (``checks_per_epoch=0``): its early
#: blocks have settled from the start, so they may drop from the end of epoch 2, not 4
FINE_TUNING_CHECKS = 2


@dataclass
class DropPolicy:
    """When a unit counts as settled, when it drops, and how its work is skipped."""

    enabled: bool = field(default=True, metadata=doc(
        "Drop settled units; off trains the full network (the baseline)."))
    mode: DropMode = field(default="auto", metadata=doc(
        "auto: cache where it applies (each sample's index known, training images the same "
        "every epoch), else freeze; freeze: exact, dropped prefix runs without gradients; "
        "cache: exact, dropped prefix output computed once per sample; skip: residual "
        "blocks bypassed (approximate).",
        label="Drop mode", flag="mode", group="Learn&Drop policy", place=17))
    score: DropScore = field(default="change", metadata=doc(
        "The learning signal: change: how far a unit's parameters moved since the last "
        "check (per unit of learning rate); gradient: how much its gradient norm changed "
        "(AutoFreeze's signal).",
        label="Learning signal", flag="score", group="Learn&Drop policy", place=11))
    threshold: float = field(default=0.7, metadata=doc(
        "A unit is settled when its learning score is at or below this (1 settles every unit).",
        min=0.0, max=1.0,
        label="Settled below", flag="threshold", group="Learn&Drop policy", place=12))
    patience: int = field(default=2, metadata=doc(
        "Consecutive settled checks before a unit is dropped.", min=1, max=1000,
        label="Patience (checks)", flag="patience", group="Learn&Drop policy", place=13))
    warmup_epochs: float = field(default=1.0, metadata=doc(
        "Epochs before any unit may drop (fractions allowed: 0.5 is half an epoch).",
        min=0.0, max=100000.0,
        label="Warm-up (epochs)", flag="warmup-epochs", group="Learn&Drop policy", place=14))
    check_every: int = field(default=0, metadata=doc(
        "Optimizer steps between score checks (0: checks_per_epoch checks an epoch).",
        min=0, max=10_000_000,
        label="Check every (steps)", flag="check-every", group="Learn&Drop policy", place=15))
    checks_per_epoch: int = field(default=0, metadata=doc(
        "Score checks an epoch, evenly spaced, when check_every is 0 (the first epoch of a "
        "loop that does not give its steps per epoch is checked once, at its end); 0: two "
        "when the run fine-tunes trained weights (the trainer's model.weights), else one.",
        min=0, max=1000, label="Checks an epoch"))
    order: DropOrder = field(default="prefix", metadata=doc(
        "prefix: only the earliest training unit may drop (exact savings); any: any unit.",
        label="Drop order", flag="order", group="Learn&Drop policy", place=16))
    keep_last: int = field(default=1, metadata=doc(
        "Units just before the head that always train.", min=0, max=10000,
        label="Always train last", flag="keep-last", group="Learn&Drop policy", place=18))
    lr_normalize: bool = field(default=True, metadata=doc(
        "Divide parameter change by the learning rate, so a decaying schedule alone does "
        "not look like convergence (score=change only).", label="Normalize by LR"))
    ema: float = field(default=0.0, metadata=doc(
        "Smooth learning scores with this EMA factor (0: off).", min=0.0, max=0.99,
        label="Score smoothing (EMA)"))
    window: int = field(default=3, metadata=doc(
        "Checks over which the score's trend is fitted.", min=2, max=1000,
        label="Trend window (checks)"))
    settle: SettleTest = field(default="tolerance", metadata=doc(
        "How a flat trend is told: noise: the trend's slope is within what the unit's own "
        "score noise explains at drop.confidence (scale-free); tolerance: its slope per "
        "check is within trend_tolerance.", label="Flat trend test"))
    confidence: float = field(default=0.9, metadata=doc(
        "settle=noise: the confidence at which a trend must differ from flat to count as "
        "still moving; reversible: the confidence at which a rise of the training loss "
        "restores the last drop.", min=0.5, max=0.999, label="Confidence"))
    trend_tolerance: float = field(default=0.1, metadata=doc(
        "settle=tolerance: a unit's score trend counts as flat when its slope per check is "
        "within this.", min=0.0, max=10.0))
    reversible: bool = field(default=False, metadata=doc(
        "After the policy drops units, restore them when the training loss of the next "
        "checks rises above the loss before the drop by more than its noise; a restored "
        "unit must then stay settled for twice the patience before it drops again. Needs "
        "the loss: ld.step(loss).", label="Undo harmful drops"))
    units: list[str] = field(default_factory=list, metadata=doc(
        "Explicit units as module names (empty: found automatically)."))
    pinned: list[str] = field(default_factory=list, metadata=doc(
        "Units that never drop.", label="Pinned units"))
    cache_budget_mb: int = field(default=2048, metadata=doc(
        "cache mode: memory for cached activations before spilling to disk (MiB).",
        min=1, max=10_000_000, label="Cache budget (MiB)"))
    cache_precision: CachePrecision = field(default="float16", metadata=doc(
        "cache mode: float16 halves the cache's memory and rounds the cached activations "
        "(their effect on the output is measured at every verification, and said when "
        "large); full keeps their own dtype: no rounding of the cache's own.",
        label="Cache precision"))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def with_values(self, **values: Any) -> DropPolicy:
        """A checked copy with some settings replaced; an integer is taken for a float
        setting and any iterable of names for a list."""
        hints = _hints()
        for name, value in values.items():
            if name not in hints:
                raise ConfigError(f"unknown drop setting '{name}' (known: "
                                  f"{', '.join(self.names())})", field=f"drop.{name}")
            if hints[name] is float and isinstance(value, int) and not isinstance(value, bool):
                values[name] = float(value)
        for name, hint in hints.items():  # lists are copied: the copy shares nothing
            value = values.get(name, getattr(self, name))
            if hint == list[str] and not isinstance(value, str):
                values[name] = list(value)
        return dataclasses.replace(self, **values).check()

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid setting as (``drop.<name>``, one-line message); empty when all is
        well."""
        hints = _hints()
        out: list[tuple[str, str]] = []
        for f in dataclasses.fields(self):
            path = f"drop.{f.name}"
            message = value_problem(path, getattr(self, f.name), f, hints[f.name])
            if message:
                out.append((path, message))
        if self.mode == "cache" and self.order != "prefix":
            out.append(("drop.order", "drop.mode=cache needs drop.order=prefix: only a dropped "
                        "prefix has an output that can be cached"))
        return out

    def resolved(self, cacheable: bool, fine_tuning: bool = False) -> DropPolicy:
        """``self`` with its automatic settings made concrete: ``mode="auto"`` is cache when
        ``cacheable`` (the training samples are numbered and do not change between epochs),
        else freeze; ``checks_per_epoch=0`` is two when ``fine_tuning`` (the network starts
        from trained weights), else one."""
        mode = ("cache" if cacheable else "freeze") if self.mode == "auto" else self.mode
        checks = self.checks_per_epoch or (FINE_TUNING_CHECKS if fine_tuning else 1)
        if (mode, checks) == (self.mode, self.checks_per_epoch):
            return self
        return dataclasses.replace(self, mode=mode, checks_per_epoch=checks)

    def check(self) -> DropPolicy:
        """``self``, or a :class:`ConfigError` naming the first invalid setting."""
        problems = self.problems()
        if problems:
            path, message = problems[0]
            raise ConfigError(message, field=path)
        return self


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(DropPolicy)
