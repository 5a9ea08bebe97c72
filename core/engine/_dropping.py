"""How a :class:`LearnDrop` drops and restores a unit, and what its dropped modules do.

Each function takes the :class:`~._strategy.LearnDrop` first. A drop freezes the unit's
parameters and takes them out of the optimizer; a restore puts each back where it was. After
either, the dropped prefix, the part of it the cache replaces and each dropped module's
replacement forward (see :mod:`._forward`) are worked out again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from ._forward import Role, install_redirects
from ._units import Unit

if TYPE_CHECKING:
    from ._strategy import LearnDrop

__all__ = ["apply_drop", "restore_unit", "drop_state_changed"]


def apply_drop(ld: LearnDrop, u: Unit, reason: str) -> None:
    """Drop ``u`` now: freeze it, free its optimizer state, put its modules in eval mode."""
    st = ld._state[u.index]
    st.dropped, st.reason = True, reason
    st.drop_step, st.drop_epoch = ld.step_count, ld._epoch_float()
    params = u.parameters()
    st.trainable = tuple(p.requires_grad for p in params)
    for p in params:
        p.requires_grad_(False)
        p.grad = None
    if ld.optimizer is not None:
        ld._slots.remove(ld.optimizer, params)
    for m in u.modules:
        m.eval()
    ld._snaps.discard(u.index)
    ld.dropped.append(u.name)
    ld._drop_version += 1
    drop_state_changed(ld)


def restore_unit(ld: LearnDrop, u: Unit) -> None:
    """Undo the drop of ``u``: each parameter gets back its ``requires_grad`` and its place
    in the optimizer (its optimizer state starts fresh)."""
    st = ld._state[u.index]
    params = u.parameters()
    trainable = st.trainable or (True,) * len(params)
    st.dropped, st.drop_step, st.drop_epoch, st.reason = False, None, None, ""
    st.trainable = ()
    for p, t in zip(params, trainable):
        p.requires_grad_(t)
    if ld.optimizer is not None:
        ld._slots.insert(ld.optimizer, ld._named,
                         [ld._name_of[id(p)] for p in params if id(p) in ld._name_of])
    for m in u.modules:
        m.train(ld.model.training)
    ld.dropped.remove(u.name)
    if ld._grads is None:
        ld._snaps.take(u.index, params)
    ld._scores[u.index].streak = 0
    ld._drop_version += 1
    drop_state_changed(ld)


def drop_state_changed(ld: LearnDrop) -> None:
    """After a drop or restore (and once the units are measured): the prefix, the part
    of it the cache replaces, each dropped module's replacement forward, the cost."""
    if ld._grads is not None:  # the gradient signal follows the units still training
        ld._grads.track([(x.index, x.parameters()) for x in ld._scored_units()])
    n = 0
    for u in ld.units:
        if not ld._state[u.index].dropped:
            break
        n += 1
    cached = _cacheable(ld, n)
    if (n, cached) != (ld._prefix_len, ld._cached):
        ld._prefix_len, ld._cached = n, cached
        ld._cache_mode.reset()
        ld._eval_cache.reset()
    install_redirects(ld, ld._redirects, _roles(ld))
    if ld._ddp is not None:
        ld._ddp.changed(ld.step_count)
    if ld.meter is not None:
        ld.meter.set_cost(ld._cost(cache_hit=False))


def _cacheable(ld: LearnDrop, prefix: int) -> range:
    """The units of a dropped prefix of ``prefix`` units whose work the cache replaces.

    On a cache hit the cached units' modules return their input, and the last one
    returns the cached output, so the cached units must run in sequence: each passes
    its output straight to the next (``feeds_next``), and the last one's output is its
    last module's (it feeds the next unit too, or is a single module). Units before
    them run frozen (their output passes through unchanged), and so do units after them
    (on the cached output). Of the runs that qualify, the one with the most FLOPs.
    """
    if ld.policy.mode != "cache" or ld.meter is None or prefix == 0:
        return range(0)
    units = ld.units
    best, best_flops = range(0), -1
    for end in range(prefix):
        u = units[end]
        if u.last_module is None or not (u.feeds_next or len(u.modules) == 1):
            continue
        start = end
        while start > 0 and units[start - 1].feeds_next:
            start -= 1
        flops = sum(units[i].forward_flops for i in range(start, end + 1))
        if flops >= best_flops:
            best, best_flops = range(start, end + 1), flops
    if len(best) < prefix:  # said once: later drops do not change the reason
        frozen = [repr(u.name) for u in units[:prefix] if u.index not in best]
        breaks = [repr(u.name) for u in units[:prefix] if not u.feeds_next]
        cached = (f"units '{units[best.start].name}' to '{units[best.stop - 1].name}' "
                  f"are cached" if best else "nothing is cached")
        ld._cache_mode.warn_once(
            "cached", f"cache mode: {cached} and {', '.join(frozen)} run frozen (as in "
            f"freeze), since the forward does not run {', '.join(breaks)} as one chain of "
            f"modules whose output is the next unit's input (it reshapes, concatenates or "
            f"adds in between)")
    return best


def _roles(ld: LearnDrop) -> dict[nn.Module, tuple[Unit, Role]]:
    """What each dropped module does inside ``ld.model`` (modules that are not listed
    run as they are)."""
    roles: dict[nn.Module, tuple[Unit, Role]] = {}
    for u in ld.units:
        if not ld._state[u.index].dropped:
            continue
        for m in u.modules:
            if ld.policy.mode == "skip" and u.skippable:
                roles[m] = (u, Role.SKIP)
            elif u.index in ld._cached:
                last = u.index == ld._cached.stop - 1 and m is u.last_module
                roles[m] = (u, Role.BOUNDARY if last else Role.CACHED)
            elif u.index < ld._prefix_len:
                roles[m] = (u, Role.PREFIX)
    return roles
