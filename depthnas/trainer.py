"""One training loop for the super-net (a path per step) and stand-alone models.

Everything random in an epoch (batch order, augmentation, sampled paths) is
seeded from (seed, epoch), so resuming from an epoch checkpoint replays the rest
of a run and reaches the same final weights: bit for bit on the CPU; on a GPU up to
the run-to-run noise of the cuDNN kernels `cudnn.benchmark` picks (the CLI's
`fixed_shape_kernels`), which no run of the same settings escapes either.

With `distributed=True` under torchrun the loop runs data-parallel with
DistributedDataParallel: every rank samples the same path each step (the path
generator is seeded per epoch alike on all ranks), reads its own shard of the
training split (DistributedSampler, reseeded per epoch) and the whole of the
step's regularizer batch (the same landmark term on every rank); gradients are
averaged by DDP. Rank 0 alone logs and checkpoints (the unwrapped model's state
dict, so a checkpoint resumes under DDP or in a single process alike).
"""
from __future__ import annotations

import functools
import itertools
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from . import distributed as dist
from .checkpoint import Checkpointer
from .config import TrainConfig
from .io import append_jsonl, drop_jsonl_records
from .runtime import autocast, quiet_on_sigterm, seed_everything
from .task import Task, move

ArchSampler = Callable[[random.Random], Any]
log = logging.getLogger(__name__)


class Regularizer(Protocol):
    """Adds a term to the training loss (the landmark ranking penalty)."""

    def __call__(self, model: nn.Module, step: int, total_steps: int
                 ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Return (weighted term or None, numbers to log) at optimizer step `step`.
        Randomness must derive from `step` so a resumed run replays it."""


def check_batch_fits(samples: int, batch_size: int, world: int = 1) -> None:
    """ValueError unless the training split holds one batch for each rank."""
    if samples < batch_size * world:
        # a resume keeps its batch size: fewer processes is then the way on
        fewer = f"run on at most {samples // batch_size} process(es), " if world > 1 and samples >= batch_size else ""
        raise ValueError(f"training split has {samples} samples, fewer than the batch size "
                         f"{batch_size}" + (f" times {world} ranks" if world > 1 else "") +
                         f" ({fewer}lower --batch-size, or add data)")


def _moments_in_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Optimizer state loaded from a checkpoint keeps the memory layout it was saved
    in; a resume under another --channels-last puts it beside parameters of the other
    layout, and the fused Adam update then reads them element by element wrongly."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    optimizer.state[p][key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2**31 - 1)


def _leaves_parameters_unused(model: nn.Module, task: Task, dataset: Dataset,
                              device: torch.device) -> bool:
    """Whether the loss of one training sample leaves parameters of `model` without a
    gradient. In eval mode, so that no running statistic moves; the same sample on
    every rank, so that every rank decides alike."""
    from torch.utils.data import default_collate
    params = [p for p in model.parameters() if p.requires_grad]
    was = model.training
    model.eval()
    try:
        batch = move(default_collate([dataset[0]]), device)
        loss = task.loss(model(task.inputs(batch)), batch)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    finally:
        model.train(was)
    return any(g is None for g in grads)


def _seed_worker(seed: int, worker_id: int) -> None:
    """A loader worker's torch seed: `seed + worker_id`, as the main process has `seed`
    when there are no workers. The depth transform seeds each sample from this seed
    minus the worker id, so its crops and flips are the same for any number of
    workers, and a run resumed with another data.num_workers trains on the same data.
    (Left to torch, the workers' seeds come from the loader's generator instead.)"""
    torch.manual_seed(seed + worker_id)
    quiet_on_sigterm(worker_id)


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile the part of `model` where it pays and stays valid for every path.

    The super-net's forward is Python control flow over the sampled architecture
    (which edges run, which op, which upsampling): compiling it whole would guard on
    the architecture and recompile for every new path, then fall back to eager once
    dynamo's recompile limit (8) is hit. The backbone is architecture-independent and
    holds most of the FLOPs, so it alone is compiled, for the super-net and for
    stand-alone models alike (the same compiled code then serves both, which keeps
    their timings comparable). `nn.Module.compile` works in place: parameter names
    stay as they are, so checkpoints are unaffected. Models without a backbone are
    left eager.
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
    """AdamW with its own learning rate for the backbone (`backbone_lr`).

    The fused implementation updates all parameters in one kernel per group
    instead of ~12 ops per tensor: on a CPU it is 6x faster than the default
    loop (25 of a quick-preset step's 40 ms were the optimizer), and on a GPU it
    removes thousands of kernel launches per step. The results agree with the
    loop to float rounding (tested)."""
    backbone = getattr(model, "backbone", None)
    bb_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    bb = [p for p in model.parameters() if id(p) in bb_ids and p.requires_grad]
    rest = [p for p in model.parameters() if id(p) not in bb_ids and p.requires_grad]
    groups = [{"params": rest, "lr": cfg.lr}]
    if bb:
        groups.append({"params": bb, "lr": cfg.backbone_lr})
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in bb + rest)
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, fused=fused or None)


class StepLoss(nn.Module):
    """One training step's loss as a single forward: the task loss of the sampled
    path plus the regularizer's term. Under DDP this is the wrapped module, so the
    landmark passes (which call model.encode/decode, not model.forward) also run
    inside DDP's forward, and its search of the autograd graph for the parameters
    a step leaves unused (the ops off the sampled path) sees every pass."""

    def __init__(self, model: nn.Module, task: Task, regularizer: Regularizer | None,
                 channels_last: bool):
        super().__init__()
        self.model = model
        self.task, self.regularizer, self.channels_last = task, regularizer, channels_last

    def forward(self, batch: dict[str, Any], arch: Any, step: int, total_steps: int
                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(total loss, task loss, the regularizer's numbers to log)."""
        x = self.task.inputs(batch)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x, arch) if arch is not None else self.model(x)
        loss = self.task.loss(out, batch)
        total, logs = loss, {}
        if self.regularizer is not None:
            term, logs = self.regularizer(self.model, step, total_steps)
            if term is not None:
                total = total + term
        return total, loss, logs


@dataclass
class TrainState:
    epoch: int = 0          # epochs completed
    step: int = 0           # optimizer steps taken
    train_s: float = 0.0    # wall seconds of the completed epochs, over every session


class Trainer:
    def __init__(self, model: nn.Module, task: Task, cfg: TrainConfig, train_set: Dataset, *,
                 out_dir: str | Path, total_epochs: int, seed: int = 0,
                 device: torch.device | str = "cpu", sample_arch: ArchSampler | None = None,
                 regularizer: Regularizer | None = None, metadata: dict[str, Any] | None = None,
                 name: str = "train", progress: bool = True, batch_size: int = 8,
                 num_workers: int = 0, distributed: bool = False):
        # Data-parallel over the torchrun ranks, or (False, or a single process) on
        # this process alone; `writes`: this process logs and checkpoints.
        self.distributed = distributed and dist.world_size() > 1
        self.rank, self.world = (dist.rank(), dist.world_size()) if self.distributed else (0, 1)
        self.writes = self.rank == 0
        self.device = torch.device(device)
        self.model = model.to(self.device)
        # Ops off the sampled path get no gradient: DDP needs find_unused_parameters
        # (every rank samples the same path, so the unused sets agree). A stand-alone
        # model needs it only when it leaves some unused (a dead cell's ops); set for
        # one that has none, DDP would warn on every rank and traverse the graph every
        # step for nothing. Probed before compiling: the probe's pass, in eval mode at
        # batch 1, would otherwise be the compiled model's first.
        unused = self.distributed and (
            sample_arch is not None or regularizer is not None
            or _leaves_parameters_unused(self.model, task, train_set, self.device))
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.compile:
            compile_model(self.model)
        self.task, self.cfg, self.train_set = task, cfg, train_set
        self.out_dir = Path(out_dir)
        self.total_epochs, self.seed = total_epochs, seed
        self.sample_arch = sample_arch
        self.metadata = metadata or {}
        self.name, self.show_progress = name, progress and self.writes
        self.batch_size, self.num_workers = batch_size, num_workers
        check_batch_fits(len(train_set), batch_size, self.world)
        self.steps_per_epoch = (len(train_set) // self.world) // batch_size
        if cfg.steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, cfg.steps_per_epoch)
        self.total_steps = self.steps_per_epoch * total_epochs
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_factor(s, self.total_steps))
        self.state = TrainState()
        self.step_lr = 0.0  # the learning rate of the last step taken (its log's "lr")
        # steps taken minus the schedules' position (not 0 after a resume on another
        # number of ranks: see _align_schedules)
        self._schedule_offset = 0
        self.checkpoints = Checkpointer(self.out_dir / "checkpoints")
        self._writer = None
        self._purge_step: int | None = None
        self._loss = StepLoss(self.model, task, None, cfg.channels_last)
        self.regularizer = regularizer  # through the setter: it matches the layout
        self.step_loss: nn.Module = self._loss
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel
            self.step_loss = DistributedDataParallel(
                self.step_loss, device_ids=[self.device] if self.device.type == "cuda" else None,
                find_unused_parameters=unused)

    @property
    def regularizer(self) -> Regularizer | None:
        """The term each step adds (the landmark penalty); assigning one takes effect
        at the next step, under DDP as well."""
        return self._loss.regularizer

    @regularizer.setter
    def regularizer(self, regularizer: Regularizer | None) -> None:
        if regularizer is not None:
            if self.cfg.channels_last and hasattr(regularizer, "channels_last"):
                regularizer.channels_last = True  # its batches take the model's layout
        self._loss.regularizer = regularizer

    # ---- persistence -------------------------------------------------------------
    def _state_dict(self) -> dict[str, Any]:
        return {"epoch": self.state.epoch, "step": self.state.step, "train_s": self.state.train_s,
                "steps_per_epoch": self.steps_per_epoch,  # this session's: a resume compares
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def save(self) -> None:
        """Checkpoint the epoch (rank 0 writes; the others wait until it has)."""
        meta = dict(self.metadata, epoch=self.state.epoch, step=self.state.step)
        if self.writes:
            self.checkpoints.save(self.state.epoch, self.model, self._state_dict(), meta)
        if self.distributed:
            dist.barrier()

    def try_resume(self) -> bool:
        """Load the latest checkpoint (every rank the same one) if there is one."""
        if self.checkpoints.latest() is None:
            if self.writes:  # killed in its first epoch: the steps it logged are redone
                self._drop_records_after(0)
            return False
        state = self.checkpoints.load(self.model)
        self.optimizer.load_state_dict(state["optimizer"])
        _moments_in_parameter_layout(self.optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        self.state = TrainState(epoch=int(state["epoch"]), step=int(state["step"]),
                                train_s=float(state.get("train_s", 0.0)))  # (older: none)
        self._align_schedules(state.get("steps_per_epoch"))  # (older checkpoints: none)
        if self.writes:
            self._drop_records_after(self.state.step)
            log.info("%s: resuming after epoch %d of %d (step %d) from %s", self.name,
                     self.state.epoch, self.total_epochs, self.state.step, self.checkpoints.loaded)
        return True

    def _align_schedules(self, saved_steps_per_epoch: int | None = None) -> None:
        """A checkpoint holds whole epochs. Resumed on another number of ranks, an epoch
        has another number of steps, and the steps taken so far sit elsewhere in this
        run's schedules (past their end from 1 process to 2 ranks: the learning rate
        at its floor for the rest of the run). The schedules (learning rate, landmark
        lambda and batches) go on from the epoch instead; the step count, which the
        logs use, goes on counting the optimizer steps taken. Said when the session
        that saved the checkpoint took other steps per epoch than this one."""
        epoch, taken = self.state.epoch, self.state.step
        position = epoch * self.steps_per_epoch
        if not epoch or taken == position:
            return
        self._schedule_offset = taken - position
        saved = saved_steps_per_epoch or taken // epoch
        if saved != self.steps_per_epoch:  # not again on each resume after one such change
            schedules = ("the learning rate and the landmark schedule go" if self.regularizer
                         is not None else "the learning rate goes")  # a stand-alone has no lambda
            log.warning("%s: the checkpoint trained %d steps per epoch, this run takes %d "
                        "(another number of ranks?): %s on from epoch %d's place in this "
                        "run's, step %d of %d", self.name, saved, self.steps_per_epoch,
                        schedules, epoch, position, self.total_steps)
        self.scheduler.last_epoch = position - 1
        self.scheduler.step()  # sets each group's learning rate for `position`

    # ---- logging -----------------------------------------------------------------
    def _drop_records_after(self, step: int) -> None:
        """A run killed mid-epoch logged steps its checkpoint does not hold; the resumed
        run logs them again. Keep one record per step: drop the stale ones here, and
        tell TensorBoard to do the same with its events (purge_step)."""
        self._purge_step = step + 1
        dropped = drop_jsonl_records(
            self.out_dir / "metrics.jsonl",
            lambda r: (r.get("phase") == self.name and isinstance(r.get("step"), int)
                       and r["step"] > step))
        if dropped:
            log.info("%s: dropped %d metrics.jsonl record(s) of steps %s; they are trained and "
                     "logged again", self.name, dropped,
                     f"after the checkpoint (step {step})" if step else "not in any checkpoint")

    def record_metrics(self, record: dict[str, Any]) -> None:
        """One line of metrics.jsonl, and its numbers to TensorBoard."""
        if not self.writes:
            return
        record = {"phase": self.name, **record}
        append_jsonl(self.out_dir / "metrics.jsonl", record)
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=self._purge_step)
            # Once: a writer reopened later (fit() closes it) must not purge the steps
            # this session has logged since.
            self._purge_step = None
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
        # Augmentation draws from the global generators, and loader workers from
        # `generator`: offset by the rank so ranks augment differently (rank 0 and a
        # single process draw exactly as before).
        seed_everything(s + self.rank)
        sampler = None
        if self.distributed:  # the same permutation on every rank, a disjoint shard each
            sampler = DistributedSampler(self.train_set, num_replicas=self.world, rank=self.rank,
                                         shuffle=True, seed=s, drop_last=True)
            sampler.set_epoch(epoch)
        if self.num_workers and hasattr(self.train_set, "warm_cache"):
            self.train_set.warm_cache()  # else re-rendered in every epoch's new workers
        loader = DataLoader(self.train_set, batch_size=self.batch_size, shuffle=sampler is None,
                            sampler=sampler, drop_last=True, num_workers=self.num_workers,
                            generator=torch.Generator().manual_seed(s + self.rank),
                            worker_init_fn=functools.partial(_seed_worker, s + self.rank),
                            pin_memory=self.device.type == "cuda")
        # (islice: a loop that breaks at the cap has loaded one batch past it)
        for batch in itertools.islice(loader, self.steps_per_epoch):
            yield move(batch, self.device)

    def train_step(self, batch: dict[str, Any], arch: Any) -> dict[str, float]:
        self.model.train()
        with autocast(self.device, self.cfg.precision):
            total, loss, logs = self.step_loss(batch, arch, self.state.step - self._schedule_offset,
                                               self.total_steps)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()  # under DDP: gradients averaged over the ranks here
        # Values are read back to the host (a device sync) only once backward has been
        # queued: a sync between the forward passes would leave the GPU idle while
        # Python queues the next pass. The check still precedes the update, so a
        # non-finite step changes no weight (on any rank: they all stop together).
        # A finite loss can still give non-finite gradients (a sqrt or a division at
        # zero): the norm is checked too, or NaN weights would be checkpointed and
        # every resume would fail on them.
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = (nn.utils.get_total_norm([p.grad for p in params]) if params
                     else total.new_zeros(()))
        # one read-back for all three (the norm is logged, clipped or not)
        total_value, loss_value, norm_value = torch.stack(
            [total.detach().float(), loss.detach().float(), grad_norm.float()]).tolist()
        bad_loss, bad_grad = not math.isfinite(total_value), not math.isfinite(norm_value)
        where = ""
        if self.distributed:  # gradients are averaged, so every rank sees the same norm
            # the loss logged is the mean of the ranks' shards, not rank 0's half alone
            loss_value, failed = dist.mean_and_failed(loss_value, bad_loss, self.device)
            if failed and not bad_loss:  # this rank's own loss is finite: say whose is not
                where = f" on rank {', '.join(map(str, failed))} of {self.world}"
            bad_loss = bool(failed)
        if bad_loss or bad_grad:
            logs = {"loss": loss_value, **logs}
            what = "loss" if bad_loss else "gradient"
            raise FloatingPointError(f"{self.name}: non-finite {what}{where} at step {self.state.step} "
                                     f"({logs}); lower the learning rate or check the data, in a new --out "
                                     "(--resume keeps the run's settings)")
        if self.cfg.grad_clip:
            nn.utils.clip_grads_with_norm_(params, self.cfg.grad_clip, grad_norm)
        self.optimizer.step()
        # the rate this step took: after scheduler.step(), get_last_lr() is the next one's
        self.step_lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.state.step += 1
        return {"loss": loss_value, **logs, "grad_norm": norm_value}

    def fit(self, until_epoch: int | None = None, resume: bool = True) -> TrainState:
        """Train until `until_epoch` (default: all epochs), resuming from the last
        checkpoint when one exists (`resume=False`: start over, removing checkpoints
        found in the folder); checkpoint after every epoch."""
        until = self.total_epochs if until_epoch is None else min(until_epoch, self.total_epochs)
        self._start(resume)
        while self.state.epoch < until:
            self._train_epoch()
            self.save()
        self.close()
        return self.state

    def _start(self, resume: bool) -> None:
        """Resume from the last checkpoint, or (resume=False) clear an earlier training's
        checkpoints and records from the folder."""
        if resume:
            if self.state.epoch == 0:  # later calls continue from memory
                self.try_resume()
        elif self.state.epoch > 0:  # clearing would drop the epochs this object holds
            raise ValueError(f"{self.name}: fit(resume=False) on a Trainer that has trained "
                             f"{self.state.epoch} epoch(s); build a new Trainer to start over")
        elif self.writes:  # from step 0: an earlier training's checkpoints and records go
            if self.checkpoints.latest() is not None:
                self.checkpoints.clear()
            self._drop_records_after(0)

    def _train_epoch(self) -> None:
        """One epoch of steps (a path sampled per step for a super-net), logged every
        log_every steps and summarised in one record at its end."""
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
                self.record_metrics({"step": self.state.step, "epoch": epoch + n / self.steps_per_epoch,
                                     "lr": self.step_lr, **logs})
        self.state.epoch += 1
        took = time.time() - start
        self.state.train_s += took
        record = {"step": self.state.step, "epoch": self.state.epoch, "epoch_time_s": took,
                  **{f"train_{k}": v / max(n, 1) for k, v in sums.items()}}
        if self.distributed:
            # BatchNorm statistics follow rank 0 (as DDP's per-forward broadcast
            # does); then every replica must hold the same weights, or it raises.
            dist.sync_buffers(self.model)
            record["replica_checksums"] = dist.check_replicas(self.model, self.name)
        self.record_metrics(record)
