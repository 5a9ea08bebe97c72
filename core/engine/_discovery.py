"""Finding units from a model's structure alone (no forward pass).

The rule, input to output:

1. *Plain containers* are exactly ``nn.Sequential``, ``nn.ModuleList`` and ``nn.ModuleDict``
   (subclasses such as torchvision's ``Conv2dNormActivation`` are not plain). A module's
   children are flattened through plain containers into one ordered sequence.
2. The *block class* is the class with the longest run of consecutive same-class composite
   modules (with children, not plain) in a flattened sequence, searched from the root (a tie
   goes to the class seen first). Where blocks of two classes alternate (a residual block,
   then a plain one that widens, then a residual one), a class's run is its count in the
   stretch of consecutive composites, so the other class's members become units of their own
   (rule 3) rather than the stretch one unit. The search looks inside a composite only when it is a
   *stage* -- no parameters of its own, its children held in a container and all of one
   composite class that is more than a layer group such as ``Conv2dNormActivation`` (RegNet's
   ``AnyStage``, DenseNet's ``_DenseBlock``, MaxViT's ``MaxVitBlock``; a stage's members are
   blocks even when alone) -- or when its class repeats nowhere and no run of blocks sits
   beside it (a wrapper such as ViT's ``Encoder``). So GoogLeNet's blocks are its
   ``Inception`` modules, not the ``BasicConv2d`` branches inside them, Inception v3's one-off
   reduction modules stay whole, and RegNet's blocks are the ones inside its stages.
3. Expanding from the root: an item that contains block instances (or is a stage) is replaced
   by its own flattened sequence, its own parameters first (the root's first of all). Block
   instances become units named by their qualified name; so do other composite items with
   parameters (EfficientNet's first and last conv, Swin's ``PatchMerging``, DenseNet's
   transitions). Consecutive leaf items and parameters form one group: the leading group is
   ``stem``, the trailing one ``head``, one in between is named by its items' common prefix. A
   group without parameters joins the unit before it (the one after it when it leads), so each
   unit's output still feeds the next.
4. No block class (a VGG or AlexNet: leaves only): one unit per convolution with what follows
   it, named by its module path when it is one module (a hand-written stage such as
   ``nn.Sequential(conv, bn, relu)``), else ``conv1``, ``conv2``...; the head is what comes
   after the last convolution's top-level container. Otherwise
   (no blocks, composite children): the top-level children that own parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import nn

from ..errors import ModelError

__all__ = ["Spec", "spec_for", "unwrap"]

#: ``[(unit name, [qualified module or parameter names]), ...]``, input to output, head last
Spec = list[tuple[str, list[str]]]

_PLAIN = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# every convolution (1d, 2d, 3d, transposed): PyTorch names their base class privately only
_CONV = nn.modules.conv._ConvNd  # noqa: SLF001
_HEAD_START = (nn.Linear, nn.Flatten, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
               nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
               nn.AdaptiveMaxPool3d)


def unwrap(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` wrapper runs (``_orig_mod``), or ``model`` itself."""
    while isinstance(inner := getattr(model, "_orig_mod", None), nn.Module):
        model = inner
    return model


def _is_plain(m: nn.Module) -> bool:
    return type(m) in _PLAIN


def _is_leaf(m: nn.Module) -> bool:
    return next(iter(m.children()), None) is None


def _is_composite(m: nn.Module) -> bool:
    return not _is_leaf(m) and not _is_plain(m)


def _own_params(m: nn.Module) -> list[str]:
    return [n for n, _ in m.named_parameters(recurse=False)]


def _has_params(m: nn.Module) -> bool:
    return next(iter(m.parameters()), None) is not None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@dataclass
class _Item:
    """One entry of a flattened sequence: a module, or a parameter owned directly."""

    name: str
    module: nn.Module | None  # None: a parameter
    containers: tuple[str, ...] = ()  # plain containers flattened through, outermost first
    has_params: bool = True


def _flatten(module: nn.Module, prefix: str, through: tuple[str, ...] = ()) -> Iterator[_Item]:
    """``module``'s children with plain containers opened (their own parameters included)."""
    for name, child in module.named_children():
        qname = _join(prefix, name)
        if _is_plain(child):
            for p in _own_params(child):
                yield _Item(_join(qname, p), None, through + (qname,))
            yield from _flatten(child, qname, through + (qname,))
        else:
            yield _Item(qname, child, through, _has_params(child))


def _runs(items: list[_Item]) -> Iterator[tuple[type, int]]:
    """(class, length) for each run of consecutive same-class composite items."""
    cls: type | None = None
    n = 0
    for it in items:
        c = type(it.module) if it.module is not None and _is_composite(it.module) else None
        if c is not None and c is cls:
            n += 1
            continue
        if cls is not None:
            yield cls, n
        cls, n = c, 1
    if cls is not None:
        yield cls, n


def _is_layer_group(m: nn.Module) -> bool:
    """A ``Sequential`` subclass that only runs its leaves in order (``Conv2dNormActivation``):
    one layer with its norm and activation, never a block of a stage."""
    return (isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward
            and all(_is_leaf(c) for c in m.children()))


def _is_stage(m: nn.Module) -> bool:
    """No parameters of its own, and its children (held in a container) share one composite
    class that is more than a layer group: a stage of blocks, looked into rather than taken as
    a block."""
    if _is_plain(m) or _own_params(m):
        return False
    items = list(_flatten(m, ""))
    if not items or any(it.module is None or not _is_composite(it.module)
                        or _is_layer_group(it.module) for it in items):
        return False
    in_container = isinstance(m, _PLAIN) or all(it.containers for it in items)
    return in_container and len({type(it.module) for it in items}) == 1


def _counts(items: list[_Item]) -> list[tuple[type, int]]:
    """(class, n) for the block candidates of one flattened sequence: each run of consecutive
    same-class composites, and, where blocks of two classes alternate (a residual block, then a
    plain one that changes the width, then a residual one...), each class's count within the
    stretch of consecutive composites (stages and layer groups end a stretch)."""
    out = list(_runs(items))
    stretch: list[type] = []
    for it in [*items, _Item("", None)]:
        m = it.module
        if m is not None and _is_composite(m) and not _is_layer_group(m) and not _is_stage(m):
            stretch.append(type(m))
            continue
        if len(set(stretch)) >= 2:
            out.extend((c, stretch.count(c)) for c in dict.fromkeys(stretch)
                       if stretch.count(c) >= 2)
        stretch = []
    return out


@dataclass
class _Search:
    repeated: set[type]
    best: dict[type, int] = field(default_factory=dict)  # longest visible run per class
    order: list[type] = field(default_factory=list)  # classes in the order first seen
    seen: dict[type, list[int]] = field(default_factory=dict)  # visible instances (ids)
    stages: set[type] = field(default_factory=set)

    def note(self, cls: type, n: int) -> None:
        if cls not in self.best:
            self.order.append(cls)
        self.best[cls] = max(self.best.get(cls, 0), n)


def _repeated_classes(root: nn.Module) -> set[type]:
    """Classes with a run of two or more in any flattened sequence of the model."""
    out: set[type] = set()
    for m in root.modules():
        if not _is_plain(m) or m is root:
            out.update(c for c, n in _counts(list(_flatten(m, ""))) if n >= 2)
    return out


def _visit(module: nn.Module, search: _Search, in_stage: bool = False) -> None:
    """Note the runs in ``module``'s sequence and look inside the composites that are neither
    repeated nor members of a stage (those are candidate blocks, taken whole)."""
    items = list(_flatten(module, ""))
    runs = _counts(items)
    for cls, n in runs:
        search.note(cls, n)
    # beside a run of blocks, a one-off composite is a block of its own kind (Inception v3's
    # reduction modules): looked into only where no run shows the blocks' level
    peers = any(n >= 2 for _, n in runs)
    for it in items:
        m = it.module
        if m is None or not _is_composite(m):
            continue
        search.seen.setdefault(type(m), []).append(id(m))
        if _is_stage(m):
            search.stages.add(type(m))
            _visit(m, search, in_stage=True)
        elif not in_stage and not peers and type(m) not in search.repeated:
            _visit(m, search)
        elif in_stage:
            search.note(type(m), 1)
            search.repeated.add(type(m))  # a stage's members are blocks even when alone


def _find_blocks(root: nn.Module) -> tuple[type | None, set[int]]:
    """The block class and its instances reached by the search (ids)."""
    search = _Search(repeated=_repeated_classes(root))
    _visit(root, search)
    best: type | None = None
    for cls in search.order:  # first seen wins a tie: the outer one
        if cls in search.stages or cls not in search.repeated:
            continue
        if best is None or search.best[cls] > search.best[best]:
            best = cls
    return best, set(search.seen.get(best, [])) if best is not None else set()


def block_class(root: nn.Module) -> type | None:
    """The class whose instances are the model's blocks (None: the model has no blocks)."""
    return _find_blocks(root)[0]


def _expand(module: nn.Module, prefix: str, block: type, visible: set[int]) -> list[_Item]:
    items = [_Item(_join(prefix, p), None) for p in _own_params(module)]
    for it in _flatten(module, prefix):
        m = it.module
        if (m is not None and _is_composite(m) and type(m) is not block
                and (_is_stage(m) or any(id(d) in visible for d in m.modules()))):
            items.extend(_expand(m, it.name, block, visible))
        else:
            items.append(it)
    return items


def _compress(group: list[_Item], all_items: list[_Item]) -> list[str]:
    """The group's names, with a plain container named once when the group holds all of it."""
    counts: dict[str, int] = {}
    for it in all_items:
        for c in it.containers:
            counts[c] = counts.get(c, 0) + 1
    inside: dict[str, int] = {}
    for it in group:
        for c in it.containers:
            inside[c] = inside.get(c, 0) + 1
    out: list[str] = []
    for it in group:
        whole = next((c for c in it.containers if inside[c] == counts[c]), None)
        name = whole or it.name
        if name not in out:
            out.append(name)
    return out


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".") for n in names]
    common: list[str] = []
    for segs in zip(*parts):
        if len(set(segs)) != 1:
            break
        common.append(segs[0])
    # a group of one item keeps its own name; a longer one is named by its container
    if len(names) > 1 and common == parts[0]:
        common = common[:-1]
    return ".".join(common) or names[0]


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}_{k}", k + 1
    taken.add(out)
    return out


def _block_spec(root: nn.Module, block: type, visible: set[int]) -> Spec:
    items = _expand(root, "", block, visible)
    # groups: ("unit", [item]) for blocks and other composites with parameters,
    # ("loose", [items]) for runs of leaves, parameters and parameter-less composites
    groups: list[tuple[str, list[_Item]]] = []
    for it in items:
        own = it.module is not None and _is_composite(it.module) and (
            type(it.module) is block or it.has_params)
        if own:
            groups.append(("unit", [it]))
        elif groups and groups[-1][0] == "loose":
            groups[-1][1].append(it)
        else:
            groups.append(("loose", [it]))
    merged: list[tuple[str, list[_Item]]] = []
    carry: list[_Item] = []
    for kind, members in groups:
        if kind == "loose" and not any(m.has_params for m in members):
            if merged:
                merged[-1][1].extend(members)
            else:
                carry.extend(members)  # a parameter-less lead joins what follows
            continue
        merged.append((kind, carry + members))
        carry = []
    if carry and merged:
        merged[-1][1].extend(carry)
    taken: set[str] = set()
    spec: Spec = []
    last = len(merged) - 1
    for i, (kind, members) in enumerate(merged):
        names = _compress(members, items) if kind == "loose" else [m.name for m in members]
        if kind == "unit" and len(members) == 1:
            label = members[0].name
        elif kind == "unit":
            label = next(m.name for m in members if m.module is not None
                         and _is_composite(m.module))
        elif i == 0:
            label = "stem"
        elif i == last:
            label = "head"
        else:
            label = _common_prefix([m.name for m in members])
        spec.append((_unique(label, taken), names))
    return spec


def _vgg_spec(root: nn.Module, items: list[_Item]) -> Spec | None:
    """One unit per convolution and what follows it; the head after the last one."""
    convs = [i for i, it in enumerate(items) if isinstance(it.module, _CONV)]
    if not convs:
        return None
    last = convs[-1]
    top = items[last].name.split(".")[0]
    head_at = len(items)
    for i in range(last + 1, len(items)):
        it = items[i]
        if "." in items[last].name and it.name.split(".")[0] != top:
            head_at = i
            break
        if "." not in items[last].name and isinstance(it.module, _HEAD_START):
            head_at = i
            break
    groups: list[list[_Item]] = []
    for i, it in enumerate(items[:head_at]):
        if i in convs and groups and any(isinstance(g.module, _CONV) for g in groups[-1]):
            groups.append([])
        if not groups:
            groups.append([])
        groups[-1].append(it)
    head = items[head_at:]
    spec: Spec = []
    taken: set[str] = {"head"} if head else set()
    for k, g in enumerate(groups):
        names = _compress(g, items)
        # a group that is one container (a hand-written stage) is named by its path
        whole = len(names) == 1 and names[0] not in {it.name for it in g}
        label = names[0] if whole else f"conv{k + 1}"
        spec.append((_unique(label, taken), names))
    if head:
        spec.append(("head", _compress(head, items)))
    return spec


def _generic_spec(model: nn.Module) -> Spec:
    """The top-level children that own parameters (through single owners)."""
    root, prefix = model, ""
    loose = _own_params(model)
    while True:
        owners = [(n, m) for n, m in root.named_children() if _has_params(m)]
        if len(owners) == 1 and not _is_leaf(owners[0][1]):
            root = owners[0][1]
            prefix = f"{prefix}{owners[0][0]}."
            loose += [f"{prefix}{p}" for p in _own_params(root)]
            continue
        break
    if len(owners) < 2:
        raise ModelError("cannot find units in this model automatically (it has fewer than two "
                         "sub-modules with parameters): pass units=[...] with module names")
    spec: Spec = [(f"{prefix}{n}", [f"{prefix}{n}"]) for n, _ in owners]
    spec[0][1][:0] = loose
    return spec


def spec_for(model: nn.Module) -> Spec:
    """Units of ``model`` by the structural rule above (``model`` already unwrapped)."""
    block, visible = _find_blocks(model)
    if block is not None:
        return _block_spec(model, block, visible)
    items = [_Item(p, None) for p in _own_params(model)] + list(_flatten(model, ""))
    if all(it.module is None or _is_leaf(it.module) for it in items):
        spec = _vgg_spec(model, items)
        if spec is not None and len(spec) >= 2:
            return spec
    return _generic_spec(model)
