"""LearnDropCallback in a real Lightning Trainer: units, drops, skipped work, logs, resume."""

from __future__ import annotations

import copy
import csv
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")
torchvision = pytest.importorskip("torchvision")

from learndrop.core import ConfigError, LearnDrop, discover_units  # noqa: E402
from learndrop.integrations.lightning import LearnDropCallback  # noqa: E402

# Lightning's advice for real runs (more loader workers, a shorter logging interval), and a
# deprecation inside Lightning itself, say nothing about these tests.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*smaller than the logging interval"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
    pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no"),
]

X = torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 4, (64,), generator=torch.Generator().manual_seed(1))


def _loader() -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=16)


def _resnet() -> nn.Module:
    """A torchvision ResNet (the class resnet18 builds), two blocks in its first stage and one
    in each other, so that tests stay fast on a CPU."""
    torch.manual_seed(0)
    net = torchvision.models.ResNet(torchvision.models.resnet.BasicBlock, [2, 1, 1, 1],
                                    num_classes=4)
    net.maxpool = nn.Identity()
    return net


class GradModeProbe(nn.Conv2d):
    """A convolution that notes whether autograd was on while its forward ran in a
    training step."""

    seen: list[bool]
    recording = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.recording:
            self.seen.append(torch.is_grad_enabled())
        return super().forward(x)


class Classifier(pl.LightningModule):
    """An ordinary LightningModule: a torchvision ResNet, two parameter groups, a scheduler."""

    def __init__(self, optimizer: str = "sgd") -> None:
        super().__init__()
        self.net = _resnet()
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer_name = optimizer
        self.seen_bn_training: list[bool] = []  # layer1.0.bn1's mode inside training_step
        self.grad_enabled_in_stem: list[bool] = []
        probe = GradModeProbe(3, 64, 7, stride=2, padding=3, bias=False)
        probe.load_state_dict(self.net.conv1.state_dict())
        probe.seen = self.grad_enabled_in_stem
        self.net.conv1 = probe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        self.seen_bn_training.append(self.net.layer1[0].bn1.training)
        self.net.conv1.recording = True
        loss = self.criterion(self(x), y)
        self.net.conv1.recording = False
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", self.criterion(self(x), y))

    def configure_optimizers(self) -> Any:
        stem = [p for n, p in self.net.named_parameters() if n.startswith(("conv1", "bn1"))]
        rest = [p for n, p in self.net.named_parameters() if not n.startswith(("conv1", "bn1"))]
        groups = [{"params": stem, "lr": 0.02}, {"params": rest}]
        if self.optimizer_name == "adamw":
            opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01)
        else:
            opt = torch.optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": sched}


class DropAt(pl.Callback):
    """Drops units by hand at the end of a given epoch (the policy has its own tests)."""

    def __init__(self, ld_callback: LearnDropCallback, epoch: int, units: list[str]) -> None:
        self.ld_callback, self.epoch, self.units = ld_callback, epoch, units

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            assert self.ld_callback.learndrop is not None
            for name in self.units:
                self.ld_callback.learndrop.drop(name)


def _trainer(tmp_path: Path, callbacks: list[Any], epochs: int, **kw: Any) -> pl.Trainer:
    opts: dict[str, Any] = dict(max_epochs=epochs, accelerator="cpu", devices=1,
                                callbacks=callbacks, enable_progress_bar=False,
                                enable_model_summary=False, default_root_dir=str(tmp_path),
                                logger=pl.loggers.CSVLogger(str(tmp_path)),
                                log_every_n_steps=1, num_sanity_val_steps=0,
                                enable_checkpointing=False)
    opts.update(kw)
    return pl.Trainer(**opts)


def test_units_are_the_networks_own_blocks(tmp_path: Path) -> None:
    module = Classifier()
    cb = LearnDropCallback(threshold=0.5, checks_per_epoch=1)
    _trainer(tmp_path, [cb], epochs=1).fit(module, _loader())
    assert cb.learndrop is not None
    names = [u.name for u in cb.learndrop.units]
    assert names == [u.name for u in discover_units(_resnet())]
    assert names[:3] == ["stem", "layer1.0", "layer1.1"] and names[-1] == "head"
    assert cb.learndrop.base_model is module.net


def test_named_sub_module_and_bad_name(tmp_path: Path) -> None:
    class Backbone(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3),
                                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.classifier = nn.Linear(4, 4)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return nn.functional.cross_entropy(self.classifier(self.backbone(x)), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    cb = LearnDropCallback(module="backbone")
    _trainer(tmp_path, [cb], epochs=1).fit(Backbone(), _loader())
    assert cb.learndrop is not None
    assert [u.name for u in cb.learndrop.units] == ["conv1", "conv2", "head"]
    assert cb.learndrop.savings()["forward_flops_saved_now"] == 0.0
    assert cb.learndrop.total_forward_flops > 0  # measured through the training step

    with pytest.raises(ConfigError, match="no such sub-module.*backbone, classifier"):
        _trainer(tmp_path, [LearnDropCallback(module="encoder")], epochs=1).fit(
            Backbone(), _loader())


class Flat(pl.LightningModule):
    """A LightningModule that is the network itself; ``direct`` skips its own forward."""

    def __init__(self, direct: bool = False) -> None:
        super().__init__()
        self.direct = direct
        self.conv1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv2(self.conv1(x)))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self.fc(self.conv2(self.conv1(x))) if self.direct else self(x)
        return nn.functional.cross_entropy(out, y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


def test_the_lightning_module_as_the_network(tmp_path: Path) -> None:
    module = Flat()
    cb = LearnDropCallback()
    _trainer(tmp_path, [cb, DropAt(cb, 0, ["conv1"])], epochs=2).fit(module, _loader())
    ld = cb.learndrop
    assert ld is not None and ld.base_model is module
    assert [u.name for u in ld.units] == ["conv1", "conv2", "head"]
    assert ld.total_forward_flops > 0 and ld.savings()["train_flops_saved_now"] > 0
    assert not module.conv1[1].training and "forward" not in module.__dict__


def test_warns_when_training_step_bypasses_the_network(tmp_path: Path) -> None:
    module = Flat(direct=True)
    cb = LearnDropCallback()
    with pytest.warns(UserWarning, match="training_step did not call the network"):
        _trainer(tmp_path, [cb, DropAt(cb, 0, ["conv1"])], epochs=2).fit(module, _loader())
    assert cb.learndrop is not None and cb.learndrop.total_forward_flops == 0
    assert not module.conv1[1].training  # dropped units are still frozen, BatchNorm in eval
    assert all(not p.requires_grad for p in module.conv1.parameters())


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_drop_frees_optimizer_state_and_keeps_bn_in_eval(tmp_path: Path,
                                                        optimizer: str) -> None:
    module = Classifier(optimizer)
    cb = LearnDropCallback(threshold=0.5, checks_per_epoch=1)
    dropped = ["stem", "layer1.0"]
    trainer = _trainer(tmp_path, [cb, DropAt(cb, 0, dropped)], epochs=3)
    trainer.fit(module, _loader(), _loader())
    ld = cb.learndrop
    assert ld is not None and ld.dropped == dropped
    opt = trainer.optimizers[0]
    frozen = {id(p) for name in dropped for p in ld.unit(name).parameters()}
    in_optimizer = {id(p) for g in opt.param_groups for p in g["params"]}
    assert frozen and not frozen & in_optimizer
    assert opt.param_groups[0]["params"] == []  # the stem's group is empty, training went on
    assert not frozen & {id(p) for p in opt.state}
    assert all(not p.requires_grad and p.grad is None
               for name in dropped for p in ld.unit(name).parameters())
    assert len(opt.state) == len(in_optimizer)
    # layer1.0's BatchNorm: train in epoch 0, eval in every later step although Lightning
    # switched the module back to train() after each validation.
    steps = len(module.seen_bn_training) // 3
    assert all(module.seen_bn_training[:steps])
    assert not any(module.seen_bn_training[steps:])
    # the dropped prefix ran without autograd during training (the first call measured FLOPs)
    assert module.grad_enabled_in_stem[1:steps + 1] == [True] * steps
    assert module.grad_enabled_in_stem[steps + 1:] == [False] * (2 * steps)
    assert ld.savings()["train_flops_saved_now"] > 0


def test_dropped_units_do_not_change_and_bn_stats_stay(tmp_path: Path) -> None:
    module = Classifier()
    cb = LearnDropCallback()

    class Snapshot(pl.Callback):
        state: dict[str, torch.Tensor] = {}

        def on_train_epoch_start(self, trainer: pl.Trainer, m: pl.LightningModule) -> None:
            if trainer.current_epoch == 1:
                Snapshot.state = {k: v.clone() for k, v in module.net.state_dict().items()}

    trainer = _trainer(tmp_path, [cb, DropAt(cb, 0, ["stem", "layer1.0"]), Snapshot()],
                       epochs=3)
    trainer.fit(module, _loader(), _loader())
    after = module.net.state_dict()
    for key, before in Snapshot.state.items():
        same = torch.equal(before, after[key])
        assert same == key.startswith(("conv1", "bn1", "layer1.0.")), key


def test_logs_through_pl_module_log(tmp_path: Path) -> None:
    cb = LearnDropCallback(threshold=0.5, checks_per_epoch=1)
    trainer = _trainer(tmp_path, [cb, DropAt(cb, 0, ["stem"])], epochs=2)
    trainer.fit(Classifier(), _loader())
    metrics = trainer.logged_metrics
    assert metrics["learndrop/units_dropped"] == 1.0
    assert 0.0 < float(metrics["learndrop/train_flops_saved_now"]) < 1.0
    log_dir = Path(trainer.logger.log_dir)  # type: ignore[union-attr]
    with open(log_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == [str(s) for s in range(8)]  # every training step
    checks = [r for r in rows if r["learndrop/score/layer1.0"]]
    assert [r["step"] for r in checks] == ["3", "7"]  # one check at each epoch's end
    assert checks[0]["learndrop/score/stem"] and not checks[1]["learndrop/score/stem"]
    assert [r["learndrop/units_dropped"] for r in (rows[3], rows[4])] == ["0.0", "1.0"]


def test_engine_steps_follow_optimizer_steps(tmp_path: Path) -> None:
    cb = LearnDropCallback()
    trainer = _trainer(tmp_path, [cb], epochs=2, accumulate_grad_batches=2)
    trainer.fit(Classifier(), _loader())
    assert cb.learndrop is not None
    assert cb.learndrop.step_count == trainer.global_step == 4  # 8 batches, 4 steps
    assert cb.learndrop.steps_per_epoch == 2


class Stream(torch.utils.data.IterableDataset):
    """A loader without a length: Lightning does not know where an epoch ends."""

    def __iter__(self) -> Any:
        return iter(zip(X[:48], Y[:48]))


def test_epochs_of_unknown_length_are_scored_at_epoch_end(tmp_path: Path) -> None:
    cb = LearnDropCallback()
    trainer = _trainer(tmp_path, [cb], epochs=2)
    trainer.fit(Classifier(), torch.utils.data.DataLoader(Stream(), batch_size=16))
    ld = cb.learndrop
    assert ld is not None and ld.epoch == 2 and ld.step_count == 6
    assert "learndrop/score/layer1.0" in trainer.logged_metrics


def test_a_second_fit_keeps_the_drops(tmp_path: Path) -> None:
    module = Classifier()
    cb = LearnDropCallback()
    _trainer(tmp_path, [cb, DropAt(cb, 0, ["stem"])], epochs=1).fit(module, _loader())
    again = _trainer(tmp_path, [cb], epochs=1)
    again.fit(module, _loader())
    assert cb.learndrop is not None and cb.learndrop.dropped == ["stem"]
    assert cb.learndrop.step_count == 8
    stem = {id(p) for p in cb.learndrop.unit("stem").parameters()}
    assert not stem & {id(p) for g in again.optimizers[0].param_groups for p in g["params"]}


def test_policy_drops_inside_lightning(tmp_path: Path) -> None:
    cb = LearnDropCallback(threshold=1.0, patience=1, warmup_epochs=0, trend_tolerance=10.0,
                           settle="tolerance",
                           keep_last=1)
    trainer = _trainer(tmp_path, [cb], epochs=3)
    trainer.fit(Classifier(), _loader())
    assert cb.learndrop is not None
    assert cb.learndrop.dropped[:2] == ["stem", "layer1.0"]
    assert "layer4.0" not in cb.learndrop.dropped  # keep_last


def test_resume_from_checkpoint_repeats_drops_and_optimizer_state(tmp_path: Path) -> None:
    cb = LearnDropCallback(threshold=0.5, checks_per_epoch=1)
    first = _trainer(tmp_path, [cb, DropAt(cb, 1, ["stem", "layer1.0"])], epochs=2)
    first.fit(Classifier(), _loader())
    path = tmp_path / "two.ckpt"
    first.save_checkpoint(path)
    assert cb.learndrop is not None
    saved_steps = cb.learndrop.step_count
    checkpoint = torch.load(path, weights_only=True)

    restored: dict[str, Any] = {}

    class Inspect(pl.Callback):
        def on_train_start(self, trainer: pl.Trainer, m: pl.LightningModule) -> None:
            ld = again.learndrop
            assert ld is not None
            restored["dropped"] = list(ld.dropped)
            restored["steps"] = ld.step_count
            restored["optimizer"] = copy.deepcopy(trainer.optimizers[0].state_dict())
            restored["frozen"] = [p.requires_grad for p in m.net.layer1[0].parameters()]
            restored["bn_eval"] = not m.net.bn1.training

    again = LearnDropCallback(threshold=0.5)
    module = Classifier()
    second = _trainer(tmp_path, [again, Inspect()], epochs=3)
    second.fit(module, _loader(), ckpt_path=str(path))
    assert restored["dropped"] == ["stem", "layer1.0"]
    assert restored["steps"] == saved_steps
    assert restored["frozen"] == [False] * len(restored["frozen"]) and restored["bn_eval"]
    want = checkpoint["optimizer_states"][0]
    got = restored["optimizer"]
    assert [g["params"] for g in got["param_groups"]] == [
        g["params"] for g in want["param_groups"]]
    assert got["state"].keys() == want["state"].keys()
    for k, state in want["state"].items():
        assert torch.equal(state["momentum_buffer"], got["state"][k]["momentum_buffer"])
    assert again.learndrop is not None and again.learndrop.dropped == ["stem", "layer1.0"]
    assert again.learndrop.step_count == saved_steps + 4


def test_bf16_mixed_precision(tmp_path: Path) -> None:
    cb = LearnDropCallback(threshold=0.5, checks_per_epoch=1)
    trainer = _trainer(tmp_path, [cb, DropAt(cb, 0, ["stem"])], epochs=2,
                       precision="bf16-mixed")
    trainer.fit(Classifier(), _loader())
    assert cb.learndrop is not None and cb.learndrop.dropped == ["stem"]
    assert cb.learndrop.savings()["train_flops_saved_now"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_one_gpu_with_bf16(tmp_path: Path) -> None:
    module = Classifier()
    cb = LearnDropCallback()
    trainer = _trainer(tmp_path, [cb, DropAt(cb, 0, ["stem", "layer1.0"])], epochs=2,
                       accelerator="gpu", precision="bf16-mixed")
    trainer.fit(module, _loader(), _loader())
    assert cb.learndrop is not None and cb.learndrop.dropped == ["stem", "layer1.0"]
    assert next(module.net.parameters()).device.type == "cuda"
    assert module.grad_enabled_in_stem[-4:] == [False] * 4
    opt = trainer.optimizers[0]
    assert not {id(p) for p in module.net.layer1[0].parameters()} & set(map(id, opt.state))


def test_skip_mode_bypasses_dropped_blocks(tmp_path: Path) -> None:
    module = Classifier()
    calls: list[int] = []  # the epoch of each real forward of the block in a training step
    # a hook on the block itself fires even when it is bypassed: count its first conv
    module.net.layer1[1].conv1.register_forward_hook(
        lambda m, a, o: calls.append(module.current_epoch) if module.net.training else None)
    cb = LearnDropCallback(mode="skip")
    trainer = _trainer(tmp_path, [cb, DropAt(cb, 0, ["layer1.1"])], epochs=2,
                       limit_val_batches=0)
    trainer.fit(module, _loader())
    assert calls.count(0) >= 4 and calls.count(1) == 0  # bypassed in epoch 1
    # the block's replacement forward, in place while it is dropped, acts only inside the
    # training steps: called as it is, the network runs the block
    before = len(calls)
    module.net.train()
    with torch.no_grad():
        module.net(X[:2])
    assert len(calls) == before + 1


def test_refuses_unknown_or_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sample_ids=.... must be a function"):
        LearnDropCallback(mode="cache", sample_ids=[0, 1])
    with pytest.raises(ConfigError, match="unknown option.*treshold"):
        LearnDropCallback(treshold=0.3)
    with pytest.raises(ConfigError, match="threshold must be at most 1.0"):
        _trainer(tmp_path, [LearnDropCallback(threshold=3.0)], epochs=1).fit(
            Classifier(), _loader())


@pytest.mark.parametrize("accelerator", [
    "cpu", pytest.param("gpu", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                        reason="needs a CUDA GPU (NCCL)"))])
def test_ddp_in_one_process_rebuilds_the_wrapper_without_the_dropped_units(
        tmp_path: Path, accelerator: str) -> None:
    """Lightning's DDP wrapper registers every parameter that trains when it is built; a
    dropped unit's parameters get no gradient, so the reducer would wait for them. The
    callback builds it anew after the drop (two processes: test_lightning_ddp.py)."""
    strategy = pl.strategies.DDPStrategy()  # one process: no launch, a real process group
    environ, threads = dict(os.environ), torch.get_num_threads()
    wrappers: list[Any] = []

    class Watch(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, m: pl.LightningModule,
                                 batch: Any, batch_idx: int) -> None:
            wrappers.append(trainer.strategy.model)

    try:
        module = Classifier()
        cb = LearnDropCallback(threshold=0.5, checks_per_epoch=1)
        trainer = _trainer(tmp_path, [cb, DropAt(cb, 0, ["stem", "layer1.0"]), Watch()],
                           epochs=2, strategy=strategy, accelerator=accelerator)
        trainer.fit(module, _loader())
    finally:  # what DDP's set-up leaves behind: a process group, rank variables, threads
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
    ld = cb.learndrop
    assert ld is not None and ld.dropped == ["stem", "layer1.0"]
    assert ld.distributed is not None and ld.distributed.world_size == 1
    assert all(isinstance(w, torch.nn.parallel.DistributedDataParallel) for w in wrappers)
    assert [w is wrappers[0] for w in wrappers] == [True] * 4 + [False] * 4
    assert len({id(w) for w in wrappers}) == 2  # built at the first batch, then after the drop
    dropped = {id(p) for name in ld.dropped for p in ld.unit(name).parameters()}
    full = sum(p.numel() * p.element_size() for p in module.parameters())
    now = sum(p.numel() * p.element_size() for p in module.parameters()
              if id(p) not in dropped)
    assert trainer.logged_metrics["learndrop/allreduce_bytes_per_step"] == now < full
    assert ld.savings()["allreduce_timeline"] == [[0, full], [4, now]]


def test_network_is_left_unpatched(tmp_path: Path) -> None:
    module = Classifier()
    cb = LearnDropCallback()
    _trainer(tmp_path, [cb, DropAt(cb, 0, ["stem"])], epochs=2).fit(module, _loader())
    assert "forward" not in module.net.__dict__
    assert isinstance(cb.learndrop, LearnDrop)
    torch.save(module, tmp_path / "whole.pt")  # picklable: no closures left behind
