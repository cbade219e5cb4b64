"""Scoring one path of a super-net: BN recalibration, then the validation loss.

For models that split into `encode` (architecture-independent backbone +
laterals) and `decode` (the searched part), the encoder runs once per batch and
its features are cached, so scoring a candidate costs only decoder passes; BN
recalibration runs them only as far as the path's last BatchNorm layer (the head
is skipped outright when the model offers `decode_for_calibration`).

Both modes score the same thing: the model runs in eval mode (the backbone with
its trained running statistics) and only the decoder's BatchNorm layers are
reset and re-estimated for the path.

The cache lives on the GPU while it fits in half of the memory free when it is
built, else in pinned host memory, copied in batch by batch (at the paper's size
one batch holds 50 MB of features; SPOS-style recalibration uses a few hundred).

A constant prediction's score (`constant_score`) is measured here too: it is the
level `degenerate` reads every score against.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .bn_calibration import recalibrate, statistics_kept
from .task import Task, move
from .runtime import autocast
from .ssi_loss import pooled_loss

if TYPE_CHECKING:
    from .config import Config


def fixed_batches(dataset: Dataset, batch_size: int, limit: int | None, seed: int,
                  shuffle: bool) -> list[dict[str, Any]]:
    """The same batches every call: a candidate's score never depends on luck."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=False,
                        generator=torch.Generator().manual_seed(seed))
    return list(itertools.islice(loader, limit))  # (a loop breaking at the limit loads one more)


def cache_on_device(batch_bytes: int, batches: int, device: torch.device,
                    free_bytes: int | None = None) -> bool:
    """Whether `batches` cached batches of `batch_bytes` each may stay on `device`:
    always on a CPU; on a GPU while they take at most half the free memory."""
    if device.type != "cuda":
        return True
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    return batch_bytes * batches <= free_bytes // 2


class PathEvaluator:
    def __init__(self, model: nn.Module, task: Task, calib_set: Dataset, val_set: Dataset, *,
                 batch_size: int = 8, calib_batches: int = 200, val_batches: int | None = None,
                 device: torch.device | str = "cpu", precision: str = "fp32",
                 cache_features: bool = True, seed: int = 0, cache_device: str = "auto"):
        self.model, self.task = model, task
        self.device, self.precision = torch.device(device), precision
        self.calib = fixed_batches(calib_set, batch_size, calib_batches, seed, shuffle=True)
        self.val = fixed_batches(val_set, batch_size, val_batches, seed, shuffle=False)
        self.split = cache_features and hasattr(model, "encode") and hasattr(model, "decode")
        if cache_device not in ("auto", "device", "host"):
            raise ValueError(f"cache_device must be auto, device or host, got {cache_device!r}")
        self.cache_device = cache_device
        self.cached_on: torch.device | None = None  # where refresh() put the features
        # (calibration features, validation features, validation batches on the device)
        self._cache: tuple[list, list, list] | None = None

    @classmethod
    def for_run(cls, model: nn.Module, task: Task, calib_set: Dataset, val_set: Dataset,
                cfg: "Config", device: torch.device | str) -> "PathEvaluator":
        """The evaluator a search run scores with: its batch size, calibration and
        validation batches, precision and seed (`rank` must score as the search did)."""
        return cls(model, task, calib_set, val_set, batch_size=cfg.data.batch_size,
                   calib_batches=cfg.search.calib_batches, val_batches=cfg.search.val_batches,
                   device=device, precision=cfg.supernet.precision, seed=cfg.seed)

    def _place(self, first: list[torch.Tensor], batches: int) -> torch.device:
        if self.cache_device == "device":
            return self.device
        nbytes = sum(f.numel() * f.element_size() for f in first)
        if self.cache_device == "auto" and cache_on_device(nbytes, batches, self.device):
            return self.device
        return torch.device("cpu")

    def _encode_all(self, batches: list[dict[str, Any]]) -> list[list[torch.Tensor]]:
        out: list[list[torch.Tensor]] = []
        for b in batches:
            x = self.task.inputs(move(b, self.device))
            feats = [f.detach() for f in self.model.encode(x)]
            if self.cached_on is None:
                self.cached_on = self._place(feats, len(self.calib) + len(self.val))
            if self.cached_on != self.device:
                # pinned, so the copy back overlaps the decoder's work
                feats = [f.to(self.cached_on).pin_memory() if torch.cuda.is_available()
                         else f.to(self.cached_on) for f in feats]
            out.append(feats)
        return out

    def _fetch(self, feats: list[list[torch.Tensor]]):
        """Cached features batch by batch, on the compute device."""
        for f in feats:
            yield [t.to(self.device, non_blocking=True) for t in f]

    def _without_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch on the device minus its input tensor: scoring reads targets only."""
        x = self.task.inputs(batch)
        return move({k: v for k, v in batch.items() if v is not x}, self.device)

    @torch.no_grad()
    def refresh(self) -> None:
        """(Re)compute cached encoder features; call after the weights change."""
        self._cache, self.cached_on = None, None
        if self.split:
            self.model.eval()
            with autocast(self.device, self.precision):
                calib, val = self._encode_all(self.calib), self._encode_all(self.val)
            self._cache = (calib, val, [self._without_inputs(b) for b in self.val])

    def _modules(self) -> list[nn.Module]:
        """The modules whose BatchNorm statistics depend on the path."""
        if hasattr(self.model, "decoder_modules"):
            return self.model.decoder_modules()
        return [self.model]

    def constant_level(self) -> float | None:
        """A constant prediction's score on the batches this evaluator scores on: the
        level of a collapsed path. With `val_batches` set they are part of the
        validation split, whose own level differs by far more than the tolerance of
        `degenerate.at_constant_level`. None for classification: an error rate takes few values
        on these batches, and live paths land on the majority class's by chance (a
        collapsed classifier need not: it may name another class)."""
        if getattr(self.task, "name", None) != "depth":
            return None
        return _constant_level_on(self.task, self.val)

    @torch.no_grad()
    def score(self, arch: Any) -> float:
        """Validation score of `arch` (lower is better) after BN recalibration. The
        model's BN statistics are left as they were (`statistics_kept`)."""
        if self.split and self._cache is None:
            self.refresh()
        model = self.model
        model.eval()  # recalibrate() switches the decoder's BN layers alone to train mode
        with statistics_kept(self._modules()), autocast(self.device, self.precision):
            if self.split:
                calib_feats, val_feats, val_batches = self._cache
                calib_decode = getattr(model, "decode_for_calibration", model.decode)
                recalibrate(self._modules(), lambda f: calib_decode(f, arch),
                            self._fetch(calib_feats), stop_after_last_bn=True)
                results = ((model.decode(f, arch), b)
                           for f, b in zip(self._fetch(val_feats), val_batches))
            else:
                def run(b):
                    return model(self.task.inputs(b), arch)
                recalibrate(self._modules(), lambda b: run(move(b, self.device)), self.calib)
                moved = (move(b, self.device) for b in self.val)
                results = ((run(b), b) for b in moved)
            total, count = 0.0, 0
            for out, batch in results:
                s, n = self.task.score(out, batch)
                total, count = total + s.double(), count + n
        return _mean(total, count, "a path", self.task)


def evaluate_fixed(model: nn.Module, task: Task, val_set: Dataset, *, batch_size: int = 8,
                   device: torch.device | str = "cpu", precision: str = "fp32",
                   observe: Callable[[torch.Tensor, dict[str, Any]], None] | None = None) -> float:
    """Validation score of a stand-alone model with its own running statistics.
    `observe(output, batch)` sees every batch's output (`InvertedShare`): one pass
    over the split for all that is measured on it."""
    return _mean_score(model, task, DataLoader(val_set, batch_size=batch_size),
                       torch.device(device), precision, observe)


class InvertedShare:
    """% of validation images on which a depth model's raw output has near and far
    swapped (clearly anti-correlated with the target: `depth_metrics.inverted`). The
    SSI loss aligns with a scale of either sign, so it scores such a model as well as
    one the right way round; predict and the demo show the raw output, upside down.
    Pass it as `evaluate_fixed(observe=...)`."""

    def __init__(self) -> None:
        self.flipped = self.fitted = 0

    def __call__(self, output: torch.Tensor, batch: dict[str, Any]) -> None:
        from .depth_metrics import inverted
        flipped, fitted = inverted(output.float(), batch["target"], batch["mask"])
        self.flipped, self.fitted = self.flipped + flipped, self.fitted + fitted

    @property
    def percent(self) -> float:
        return 100.0 * self.flipped / max(self.fitted, 1)


@torch.no_grad()
def _mean_score(model: nn.Module, task: Task, batches: Iterable[dict[str, Any]],
                device: torch.device, precision: str = "fp32",
                observe: Callable[[torch.Tensor, dict[str, Any]], None] | None = None) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        batch = move(batch, device)
        with autocast(device, precision):
            output = model(task.inputs(batch))
            s, n = task.score(output, batch)
        if observe is not None:
            observe(output, batch)
        total, count = total + s.double(), count + n
    return _mean(total, count, "the model", task)


def _mean(total: torch.Tensor | float, count: torch.Tensor | int, what: str, task: Task) -> float:
    """The split's score from the sums of `task.score` over it, read back once: each
    term's numerator over its denominator, summed (one term: a mean)."""
    total = torch.as_tensor(total, dtype=torch.float64).cpu()
    count = torch.as_tensor(count, dtype=torch.float64).cpu()
    if not bool((count > 0).any()):
        why = ("" if task.name != "depth" else ", or no image in it has two valid depth pixels "
               "inside the area scored (validation images are resized and centre-cropped to "
               "data.image_size)")
        raise ValueError(f"nothing to score {what} on: the validation split is empty{why}")
    return float(pooled_loss(total, count))


class _Constant(nn.Module):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.new_ones(image.shape[0], 1, *image.shape[2:])


def constant_score(task: Task, val_set: Dataset, *, batch_size: int = 8) -> float | None:
    """The best validation score of an output that ignores the input: the level of a
    model that learned nothing. Depth: one value everywhere (also what a head whose
    final ReLU died outputs); under the scale-and-shift-invariant loss every constant
    scores the same. Classification: the same logits for every image, which at best
    name the most frequent class. None for other tasks."""
    return _constant_level_on(task, DataLoader(val_set, batch_size=batch_size))


def _constant_level_on(task: Task, batches: Iterable[dict[str, Any]]) -> float | None:
    """`constant_score` over these batches."""
    kind = getattr(task, "name", None)
    if kind == "depth":
        return _mean_score(_Constant(), task, batches, torch.device("cpu"))
    if kind == "classification":
        labels = torch.cat([b["label"] for b in batches])
        if not len(labels):
            return None
        return 1.0 - torch.bincount(labels).max().item() / len(labels)
    return None
