"""One training loop for the super-net (a path per step) and stand-alone models.

Everything random in an epoch (batch order, augmentation, sampled paths) is
seeded from (seed, epoch), so resuming from an epoch checkpoint replays the rest
of a run exactly and reaches the same final weights.
"""
from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .checkpoint import Checkpointer
from .config import TrainConfig
from .io import append_jsonl
from .task import Task, move

ArchSampler = Callable[[random.Random], Any]


class Regularizer(Protocol):
    """Adds a term to the training loss (the landmark ranking penalty)."""

    def __call__(self, model: nn.Module, step: int, total_steps: int
                 ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Return (weighted term or None, numbers to log) at optimizer step `step`.
        Randomness must derive from `step` so a resumed run replays it."""


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    return nullcontext()


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile the part of `model` where it pays and stays valid for every path.

    The super-net's forward is Python control flow over the sampled architecture
    (which edges run, which op, which upsampling): compiling it whole would guard on
    the architecture and recompile for every new path, then fall back to eager once
    dynamo's recompile limit (8) is hit. The backbone is architecture-independent and
    holds most of the FLOPs, so it alone is compiled, for the super-net and for
    stand-alone models alike (the same compiled code then serves both, which keeps
    their timings comparable). `nn.Module.compile` works in place: parameter names
    stay as they are, so checkpoints and the super-net -> stand-alone weight copy by
    name are unaffected. Models without a backbone are left eager.
    """
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module):
        backbone.compile()
    return model


def cosine_factor(step: int, total: int, floor: float = 0.01) -> float:
    """Learning-rate multiplier: cosine from 1 to `floor` over `total` steps."""
    t = min(step, total) / max(total, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam with its own (lower) learning rate for the backbone."""
    backbone = getattr(model, "backbone", None)
    bb_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    bb = [p for p in model.parameters() if id(p) in bb_ids and p.requires_grad]
    rest = [p for p in model.parameters() if id(p) not in bb_ids and p.requires_grad]
    groups = [{"params": rest, "lr": cfg.lr}]
    if bb:
        groups.append({"params": bb, "lr": cfg.backbone_lr})
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


@dataclass
class TrainState:
    epoch: int = 0          # epochs completed
    step: int = 0           # optimizer steps taken


class Trainer:
    def __init__(self, model: nn.Module, task: Task, cfg: TrainConfig, train_set: Dataset, *,
                 out_dir: str | Path, total_epochs: int, seed: int = 0,
                 device: torch.device | str = "cpu", sample_arch: ArchSampler | None = None,
                 regularizer: Regularizer | None = None, metadata: dict[str, Any] | None = None,
                 name: str = "train", progress: bool = True, batch_size: int = 8,
                 num_workers: int = 0):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            if regularizer is not None and hasattr(regularizer, "channels_last"):
                regularizer.channels_last = True  # its batches take the same layout
        if cfg.compile:
            compile_model(self.model)
        self.task, self.cfg, self.train_set = task, cfg, train_set
        self.out_dir = Path(out_dir)
        self.total_epochs, self.seed = total_epochs, seed
        self.sample_arch, self.regularizer = sample_arch, regularizer
        self.metadata = metadata or {}
        self.name, self.show_progress = name, progress
        self.batch_size, self.num_workers = batch_size, num_workers
        if len(train_set) < batch_size:
            raise ValueError(f"training split has {len(train_set)} samples, fewer than "
                             f"the batch size {batch_size}")
        self.steps_per_epoch = len(train_set) // batch_size
        if cfg.steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.steps_per_epoch)
        self.total_steps = self.steps_per_epoch * total_epochs
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_factor(s, self.total_steps))
        self.state = TrainState()
        self.checkpoints = Checkpointer(self.out_dir / "checkpoints")
        self._writer = None

    # ---- persistence -------------------------------------------------------------
    def _state_dict(self) -> dict[str, Any]:
        return {"epoch": self.state.epoch, "step": self.state.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def save(self) -> Path:
        meta = dict(self.metadata, epoch=self.state.epoch, step=self.state.step)
        return self.checkpoints.save(self.state.epoch, self.model, self._state_dict(), meta)

    def try_resume(self) -> bool:
        if self.checkpoints.latest() is None:
            return False
        state = self.checkpoints.load(self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.state = TrainState(epoch=int(state["epoch"]), step=int(state["step"]))
        return True

    # ---- logging -----------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        record = {"phase": self.name, **record}
        append_jsonl(self.out_dir / "metrics.jsonl", record)
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(str(self.out_dir / "tb"))
        step = record.get("step", self.state.step)
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                self._writer.add_scalar(f"{self.name}/{k}", v, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ---- training ----------------------------------------------------------------
    def _batches(self, epoch: int) -> Iterator[dict[str, Any]]:
        s = epoch_seed(self.seed, epoch)
        seed_everything(s)  # augmentation draws from the global generators
        loader = DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True,
                            drop_last=True, num_workers=self.num_workers,
                            generator=torch.Generator().manual_seed(s),
                            pin_memory=self.device.type == "cuda")
        for i, batch in enumerate(loader):
            if i >= self.steps_per_epoch:
                break
            yield move(batch, self.device)

    def train_step(self, batch: dict[str, Any], arch: Any) -> dict[str, float]:
        self.model.train()
        x = self.task.inputs(batch)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logs: dict[str, float] = {}
        with autocast(self.device, self.cfg.precision):
            out = self.model(x, arch) if arch is not None else self.model(x)
            loss = self.task.loss(out, batch)
            total = loss
            if self.regularizer is not None:
                term, reg_logs = self.regularizer(self.model, self.state.step, self.total_steps)
                logs.update(reg_logs)
                if term is not None:
                    total = total + term
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        # Values are read back to the host (a device sync) only once backward has been
        # queued: a sync between the forward passes would leave the GPU idle while
        # Python queues the next pass. The check still precedes the update, so a
        # non-finite step changes no weight.
        if not torch.isfinite(total):
            logs = {"loss": float(loss.detach()), **logs}
            raise FloatingPointError(f"{self.name}: non-finite loss at step {self.state.step} "
                                     f"({logs}); lower the learning rate or check the data")
        grad_norm = (nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
                     if self.cfg.grad_clip else None)
        self.optimizer.step()
        self.scheduler.step()
        self.state.step += 1
        logs = {"loss": float(loss.detach()), **logs}
        if grad_norm is not None:
            logs["grad_norm"] = float(grad_norm)
        return logs

    def fit(self, until_epoch: int | None = None, resume: bool = True,
            on_epoch_end: Callable[["Trainer"], dict[str, float] | None] | None = None) -> TrainState:
        """Train until `until_epoch` (default: all epochs), resuming from the last
        checkpoint when one exists; checkpoint after every epoch."""
        until = self.total_epochs if until_epoch is None else min(until_epoch, self.total_epochs)
        if resume:
            self.try_resume()
        while self.state.epoch < until:
            epoch = self.state.epoch
            rng = random.Random(epoch_seed(self.seed, epoch) + 1)
            start, sums, n = time.time(), {}, 0
            bar = tqdm(self._batches(epoch), total=self.steps_per_epoch, leave=False,
                       desc=f"{self.name} {epoch + 1}/{self.total_epochs}",
                       disable=not self.show_progress)
            for batch in bar:
                arch = self.sample_arch(rng) if self.sample_arch is not None else None
                logs = self.train_step(batch, arch)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
                bar.set_postfix(loss=f"{logs['loss']:.4f}")
                if self.state.step % self.cfg.log_every == 0:
                    self.log({"step": self.state.step, "epoch": epoch + n / self.steps_per_epoch,
                              "lr": self.scheduler.get_last_lr()[0], **logs})
            self.state.epoch += 1
            record = {"step": self.state.step, "epoch": self.state.epoch,
                      "epoch_time_s": time.time() - start,
                      **{f"train_{k}": v / max(n, 1) for k, v in sums.items()}}
            if on_epoch_end is not None:
                record.update(on_epoch_end(self) or {})
            self.log(record)
            self.save()
        self.close()
        return self.state
