"""Candidate operations shared by the cell spaces (depth fusion blocks, NAS-Bench-201),
and the edge that holds an op per name (DARTS uses it with its own ops).

Every op maps C channels to C channels at stride 1, so any op can sit on any edge.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .base import EDGE_OPS


class ReLUConvBN(nn.Sequential):
    """NAS-Bench-201's 'nor_conv': ReLU -> Conv(no bias) -> BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class Zero(nn.Module):
    """The 'none' op. Callers skip it where they can; it exists so a fixed model
    can still be built and traced for a cell whose every edge is none."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_edge_op(name: str, channels: int, affine: bool = True) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, affine=affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, affine=affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown edge op {name!r}; expected one of {EDGE_OPS}")


class ChoiceEdge(nn.Module):
    """One edge holding a set of candidate ops, keyed by op name.

    The super-net builds it with every candidate; a fixed model builds it with the
    chosen one only. The parameter names (`ops.<name>.*`) are identical in both,
    which is what lets a fixed model take its weights from the super-net by name.
    `make` builds an op by name (the cell spaces' `make_edge_op`, DARTS' own).
    """

    def __init__(self, names: tuple[str, ...], make: Callable[[str], nn.Module]):
        super().__init__()
        self.ops = nn.ModuleDict({n: make(n) for n in names})

    def forward(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return self.ops[name](x)
