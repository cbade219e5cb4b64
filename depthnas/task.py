"""What is learned and how it is scored, apart from how it is trained.

The trainer, the path evaluator and the search only call these methods, so a
classification space plugs into the same machinery with its own task.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from .choices import CLASSIFICATION_LOSSES, DEPTH_LOSS_SCORES


class Task(Protocol):
    name: str
    score_name: str  # what `score` measures, for people: "SSI loss", "error rate"

    def inputs(self, batch: dict[str, Any]) -> torch.Tensor: ...

    def loss(self, output: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Differentiable training loss (mean over the batch)."""

    def score(self, output: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | int]:
        """(numerators, denominators) of the validation score over the batch, summed
        over the split by callers; the split's score is each numerator sum over its
        denominator sum, added up: lower is better. A scalar each (errors and
        examples), or one per term of a pooled loss. Both may stay device tensors:
        callers add up a whole split and read it back once, since a read-back per
        batch would stall the GPU's queue."""


class DepthTask:
    """Monocular relative depth: the scale-and-shift-invariant loss in disparity space."""

    name = "depth"

    def __init__(self, loss: str = "ssi", *, models_of: str = "the space"):
        from .ssi_loss import build_loss
        self.models_of = models_of  # whose models these are, for an error: "space own"
        self.criterion: nn.Module = build_loss(loss)
        self.score_name = DEPTH_LOSS_SCORES[loss]

    def inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        return batch["image"]

    def loss(self, output: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return self.criterion(self._checked(output, batch), batch["target"], batch["mask"])

    def score(self, output: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        # The loss's pooled sums (one per term), not the batch's loss times its images:
        # summed over the split they give the loss of the split at once, the same
        # whatever the batch size (batch losses weighted by image count moved with it
        # where masks differ in size). An image with too few valid pixels to fit
        # (sparse ground truth, or valid pixels only outside the validation crop) adds
        # nothing to either sum: counted, it would add a perfect 0.
        numerators, denominators = self.criterion.terms(self._checked(output, batch),
                                                        batch["target"], batch["mask"])
        return numerators.detach().double(), denominators.detach().double()

    def _checked(self, output: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        target = batch["target"]  # [B, H, W] or [B, 1, H, W]; the image may not be at hand
        if not (torch.is_tensor(output) and output.shape == (target.shape[0], 1, *target.shape[-2:])):
            # a space of the user's broke the contract: say so, not where the loss trips
            got = tuple(output.shape) if torch.is_tensor(output) else f"a {type(output).__name__}"
            raise ValueError(f"{self.models_of}'s model returned {got} for a batch of "
                             f"{target.shape[0]} at {target.shape[-2]}x{target.shape[-1]}: a depth "
                             "model returns one tensor [B, 1, H, W], inverse depth at its "
                             "input's height and width")
        return output.float()


class ClassificationTask:
    """Image classification: cross-entropy to train; the search ranks by validation
    accuracy. The machinery minimises, so `score` is the error rate (1 - accuracy)
    and a stand-alone "val_loss" of a classification run is an error rate in [0, 1]."""

    name = "classification"
    score_name = "error rate"
    LOSS_NAMES = CLASSIFICATION_LOSSES

    def __init__(self, loss: str = "ce", *, models_of: str = "the space"):
        if loss not in self.LOSS_NAMES:
            raise ValueError(f"classification spaces train with cross-entropy; loss {loss!r} is a "
                             "depth loss (leave supernet.loss / standalone.loss unset, or 'ce')")
        self.models_of = models_of
        self._classes_checked = False  # once: reading the labels' maximum waits for the GPU

    def inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        return batch["image"]

    def _checked(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """A space of the user's broke the contract: said so, not as torch's "Target 8 is
        out of bounds" where the loss trips."""
        shaped = torch.is_tensor(output) and output.dim() == 2 and output.shape[0] == labels.shape[0]
        if shaped and not self._classes_checked:
            shaped = self._classes_checked = output.shape[1] > int(labels.max())
        if not shaped:
            got = tuple(output.shape) if torch.is_tensor(output) else f"a {type(output).__name__}"
            raise ValueError(f"{self.models_of}'s model returned {got} for a batch of "
                             f"{labels.shape[0]} with labels up to {int(labels.max())}: a "
                             "classification model returns logits [B, classes]")
        return output

    def loss(self, output: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return nn.functional.cross_entropy(self._checked(output, batch["label"]).float(), batch["label"])

    def score(self, output: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        wrong = (self._checked(output, batch["label"]).argmax(dim=1) != batch["label"]).sum()
        return wrong.double(), output.shape[0]


def move(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    # Only a copy onto the GPU may be asynchronous (the stream orders it before the
    # kernels that read it). A non-blocking copy to the host returns before the data
    # has landed, and the CPU would read whatever the buffer held.
    non_blocking = torch.device(device).type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) if torch.is_tensor(v) else v
            for k, v in batch.items()}


def make_task(space, loss: str = "ssi") -> Task:
    """The task a space's models solve: depth spaces output inverse depth maps,
    classification spaces (`task_kind = "classification"`) class logits."""
    kind = space.task_kind
    if kind == "depth":
        return DepthTask(loss, models_of=f"space {space.name}")
    if kind == "classification":
        return ClassificationTask(loss, models_of=f"space {space.name}")
    raise ValueError(f"space {space.name!r} has unsupported task kind {kind!r}")
