"""The pairwise ranking regularizer of landmark architectures (paper section 4). Their
stand-alone results are kept by `landmark_store`; drawing them (Algorithm 1) is
`landmark_sampler`."""
from __future__ import annotations

import random
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from depthnas.spaces import Arch

from .config import LandmarkConfig
from .schedule import landmark_lambda
from .task import Task, move
from .runtime import quiet_on_sigterm, seeded_rng


def all_pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def step_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The regularizer-split indices of optimizer step `step`: a function of the step
    alone, so a resumed run draws the same batches."""
    per_cycle = max(n // batch_size, 1)
    cycle, pos = divmod(step, per_cycle)
    order = list(range(n))
    seeded_rng(seed, "regularizer batches", cycle).shuffle(order)
    return order[pos * batch_size:(pos + 1) * batch_size] or order[:batch_size]


class _StepBatches:
    """Batch sampler: the indices of steps start, start + 1, ... (endless)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int):
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start

    def __iter__(self):
        step = self.start
        while True:
            yield step_indices(self.n, self.batch_size, self.seed, step)
            step += 1


class LandmarkRegularizer:
    """R = sum over pairs (i better than j) of max(0, L(a_i) - L(a_j)) (Eq. 4), or
    over m pairs drawn uniformly per step (Eq. 6), weighted by lambda(step).

    L is the super-net loss on a batch of the regularizer split, disjoint from
    the batches that train L_s. When the model splits into encode/decode, the
    backbone runs once for all landmarks of a step: same losses and gradients as
    separate passes, at the cost of decoder passes only (`share_encoder=False`
    runs a full forward per landmark, for reference and tests).

    Regularizer batches are prefetched by a DataLoader (`num_workers` processes,
    pinned memory on CUDA), so reading the regularizer split does not stall the
    training loop. The split must not be augmented at random (it is not): a batch
    is then the same whichever worker reads it.

    Under data-parallel training every rank evaluates the landmarks on the whole
    step batch: the term, and so its gradient, is then the same on every rank, and
    DDP's average of it is the single process's. (Slices per rank would be cheaper,
    but the mean of hinges taken on slices is another objective: the hinge is not
    linear, and train-mode BatchNorm would see a slice.)
    """

    def __init__(self, landmarks: Sequence[tuple[Arch, float]], reg_set: Dataset, task: Task,
                 cfg: LandmarkConfig, *, batch_size: int, device: torch.device | str,
                 seed: int = 0, total_epochs: int = 1, num_workers: int = 0,
                 share_encoder: bool = True):
        self.task, self.cfg, self.reg_set = task, cfg, reg_set
        self.batch_size, self.device, self.seed = batch_size, torch.device(device), seed
        self.total_epochs = max(total_epochs, 1)
        self.num_workers, self.share_encoder = num_workers, share_encoder
        self.channels_last = False  # set by a Trainer that trains channels-last
        self._batches: Any = None   # iterator of the prefetching loader
        self._next_step: int | None = None
        if len(reg_set) < 1:
            raise ValueError("the regularizer split is empty; raise data.reg_fraction")
        self.set_landmarks(landmarks)

    def set_landmarks(self, landmarks: Sequence[tuple[Arch, float]]) -> None:
        """Landmarks sorted best (lowest stand-alone loss) first."""
        self.landmarks = sorted(landmarks, key=lambda p: p[1])
        # Only pairs where i is strictly better than j: landmarks of equal stand-alone
        # loss (frequent in coarse truth tables) have no order to enforce.
        losses = [loss for _, loss in self.landmarks]
        self.pairs = [(i, j) for i, j in all_pairs(len(losses)) if losses[i] < losses[j]]

    def lam(self, step: int, total_steps: int) -> float:
        progress = step / max(total_steps - 1, 1)
        return landmark_lambda(progress, self.cfg.lambda_max, self.cfg.schedule,
                               warmup=self.cfg.warmup_epochs / self.total_epochs,
                               ramp=self.cfg.ramp_epochs / self.total_epochs)

    def draw_pairs(self, rng: random.Random) -> list[tuple[int, int]]:
        """m pairs uniformly over all pairs, without replacement (the authors'
        sampler favoured high indices); m = 0 or m >= #pairs means all pairs."""
        m = self.cfg.pairs
        if m <= 0 or m >= len(self.pairs):
            return list(self.pairs)
        return rng.sample(self.pairs, m)

    def batch(self, step: int) -> dict[str, Any]:
        """The regularizer batch of `step` (see `step_indices`), on the device."""
        if self._batches is None or step != self._next_step:
            # first call, a resumed run, or steps skipped while lambda was 0
            # Its own generator: drawing the workers' base seed from torch's global
            # generator would shift the training split's augmentation whenever a
            # resumed run re-creates this loader.
            loader = DataLoader(self.reg_set, num_workers=self.num_workers,
                                batch_sampler=_StepBatches(len(self.reg_set), self.batch_size,
                                                           self.seed, step),
                                collate_fn=default_collate,
                                generator=torch.Generator().manual_seed(self.seed * 7_919 + step),
                                worker_init_fn=quiet_on_sigterm,
                                pin_memory=self.device.type == "cuda")
            self._batches = iter(loader)
        batch = next(self._batches)
        self._next_step = step + 1
        return move(batch, self.device)

    def penalty(self, model: nn.Module, batch: dict[str, Any],
                pairs: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, int]:
        """Unweighted hinge sum over `pairs` and the number of violated pairs."""
        needed = sorted({k for p in pairs for k in p})
        x = self.task.inputs(batch)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        split = self.share_encoder and hasattr(model, "encode") and hasattr(model, "decode")
        feats = model.encode(x) if split else None
        losses = {}
        for k in needed:
            arch = self.landmarks[k][0]
            out = model.decode(feats, arch) if split else model(x, arch)
            losses[k] = self.task.loss(out, batch)
        hinge = [torch.relu(losses[i] - losses[j]) for i, j in pairs]
        # Which pairs are violated is read back here, a device sync before backward is
        # queued (which the trainer otherwise avoids): it decides whether backward runs
        # through the landmarks' passes at all, which a satisfied pair's step saves
        # (both costs: benchmarks/RESULTS.md, part (b)); a sync costs the GPU the launch
        # of backward's first kernels.
        # (not "> 0": a NaN hinge, a landmark's loss gone NaN, must reach the trainer's check)
        violated = (~(torch.stack(hinge).detach() <= 0)).tolist()
        if not any(violated):
            return torch.stack(hinge).sum(), 0
        # The sum of the violated hinges alone, the same value: a satisfied pair's
        # hinge has a zero gradient, and ops only its landmarks use would get zeros
        # instead of none, which AdamW's weight decay and momentum move as if on the
        # path (off-path ops keep no gradient, and AdamW leaves those alone).
        # (each hinge on its own: one stacked tensor's backward reaches every term)
        total = torch.stack([h for h, v in zip(hinge, violated) if v]).sum()
        return total, sum(violated)

    def __call__(self, model: nn.Module, step: int, total_steps: int):
        lam = self.lam(step, total_steps)
        if lam == 0.0 or not self.pairs:
            return None, {"lambda": lam}
        pairs = self.draw_pairs(seeded_rng(self.seed, "landmark pairs", step))
        r, violated = self.penalty(model, self.batch(step), pairs)
        term = lam * r
        if not violated:
            # Every hinge is exactly 0 and so is its gradient: cut the term from the
            # graph, so backward skips the regularizer's encoder and decoder passes.
            # (The only other effect: ops used by the landmarks alone get no
            # gradient, as for any op off the sampled path, instead of a zero one.)
            term = term.detach()
        return term, {"lambda": lam, "reg": float(r.detach()),
                      "reg_violated": violated / len(pairs)}
