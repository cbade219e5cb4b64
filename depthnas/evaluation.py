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

The rest of the module is what a score is read against: a constant prediction's
level (`constant_score`), when a model learned nothing (`learned_nothing`,
`unlearned_note`, `at_constant_level`), and the orders that put a model whose
output ignores its input last (`candidate_order` for trained models, `search_order`
for super-net paths).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .bn_calibration import recalibrate
from .task import Task, move
from .runtime import autocast

if TYPE_CHECKING:
    from .config import Config


def fixed_batches(dataset: Dataset, batch_size: int, limit: int | None, seed: int,
                  shuffle: bool) -> list[dict[str, Any]]:
    """The same batches every call: a candidate's score never depends on luck."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=False,
                        generator=torch.Generator().manual_seed(seed))
    out = []
    for i, batch in enumerate(loader):
        if limit is not None and i >= limit:
            break
        out.append(batch)
    return out


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
        `at_constant_level`. None for classification: an error rate takes few values
        on these batches, and live paths land on the majority class's by chance (a
        collapsed classifier need not: it may name another class)."""
        if getattr(self.task, "name", None) != "depth":
            return None
        return _constant_level_on(self.task, self.val)

    @torch.no_grad()
    def score(self, arch: Any) -> float:
        """Validation score of `arch` (lower is better) after BN recalibration."""
        if self.split and self._cache is None:
            self.refresh()
        model = self.model
        model.eval()  # recalibrate() switches the decoder's BN layers alone to train mode
        with autocast(self.device, self.precision):
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


def inverted_note(share: float | None, where: str = "validation images") -> str | None:
    """The warning for a model mostly upside down (`share`: % of images), else None."""
    if share is None or share <= 50.0:
        return None
    return (f"on {share:.0f}% of the {where} the model's output has near and far swapped: the "
            "SSI loss fits it with a negative scale, so its scores look fine, but its raw output "
            "(predict, the demo) is upside down; train longer, with another --seed, or with the "
            "sign-aware loss (--set standalone.loss=ssitrim)")


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
    """The split's mean score, read back once."""
    if not float(count):
        why = ("" if task.name != "depth" else ", or no image in it has two valid depth pixels "
               "inside the area scored (validation images are resized and centre-cropped to "
               "data.image_size)")
        raise ValueError(f"nothing to score {what} on: the validation split is empty{why}")
    return float(total) / float(count)


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


def learned_nothing(loss: float, constant: float | None) -> bool:
    """A stand-alone score within 1% of a constant prediction's, or worse: the model
    learned (almost) nothing."""
    return constant is not None and loss >= 0.99 * constant


def unlearned_note(searches: list[int], level: float, best: float | None = None) -> str:
    """What a search whose super-net beat no constant prediction means, and the fix."""
    which = f"search{'es' if len(searches) > 1 else ''} {', '.join(map(str, searches))}"
    best_s = f"; the best path scored {best:.5f}" if best is not None else ""
    return (f"in {which} no super-net path scored better than a constant prediction "
            f"({level:.5f}{best_s}): the super-net had not learned yet, so the search's order "
            "and picks are noise, as is the super-net side of any ranking; train it longer "
            "(--epochs, super-net epochs per iteration)")


def candidate_order(record: dict[str, Any]) -> tuple[bool, float]:
    """How trained candidates (results.json records) rank for "the best": by stand-alone
    loss, except that one whose output ignores its input comes after every other. It
    is no depth estimator, whatever its loss (when every model learned nothing it may
    score best): the best only for want of others."""
    return record.get("ignores_input", False), record["val_loss"]


def at_constant_level(score: float, constant: float | None) -> bool:
    """A score within 0.1% of a constant prediction's: the output ignores the input
    (depth: one value everywhere, from a head whose final ReLU died), and its order
    among such scores is float noise."""
    return constant is not None and abs(score - constant) <= 1e-3 * constant


def collapsed(space: Any, arch: Any, score: float, constant: float | None,
              model_kw: dict[str, Any] | None = None) -> bool:
    """A super-net path whose output ignores its input, so that its score says nothing
    about the architecture: by the architecture itself (a dead cell cutting the input
    off, `space.ignores_input` for models built with `model_kw`), or in the shared
    weights (a head whose final ReLU died: a constant prediction's score)."""
    return space.ignores_input(arch, **(model_kw or {})) or at_constant_level(score, constant)


def search_order(space: Any, constant: float | None, model_kw: dict[str, Any] | None = None
                 ) -> Callable[[Any, float], tuple[bool, float]]:
    """The order in which a search picks super-net paths: by score, except that
    collapsed paths come after every other. Their score (for depth, about the target
    variance) beats live paths that a short super-net training left slightly worse
    than a constant: a short search would pick them, and report one as its best."""
    return lambda arch, score: (collapsed(space, arch, score, constant, model_kw), score)
