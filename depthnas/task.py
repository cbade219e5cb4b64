"""What is learned and how it is scored, apart from how it is trained.

The trainer, the path evaluator and the search only call these methods, so a
classification space plugs into the same machinery with its own task.
"""
from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn


class Task(Protocol):
    name: str

    def inputs(self, batch: dict[str, Any]) -> torch.Tensor: ...

    def loss(self, output: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Differentiable training loss (mean over the batch)."""

    def score(self, output: torch.Tensor, batch: dict[str, Any]) -> tuple[float, int]:
        """(sum, count) of the validation score over the batch: lower is better."""


class DepthTask:
    """Monocular relative depth: the scale-and-shift-invariant loss in disparity space."""

    name = "depth"

    def __init__(self, loss: str = "ssi"):
        from .ssi_loss import build_loss
        self.criterion: nn.Module = build_loss(loss)
        self.loss_name = loss

    def inputs(self, batch: dict[str, Any]) -> torch.Tensor:
        return batch["image"]

    def loss(self, output: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return self.criterion(output.float(), batch["target"], batch["mask"])

    def score(self, output: torch.Tensor, batch: dict[str, Any]) -> tuple[float, int]:
        n = output.shape[0]
        return float(self.loss(output, batch)) * n, n


def move(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}


def make_task(space, loss: str = "ssi") -> Task:
    """The task a space's models solve (depth spaces output inverse depth maps)."""
    kind = getattr(space, "task_kind", "depth")
    if kind == "depth":
        return DepthTask(loss)
    raise ValueError(f"space {space.name!r} has unsupported task kind {kind!r}")
