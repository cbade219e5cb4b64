"""A small DARTS network (the DARTS paper's NetworkCIFAR, no auxiliary head).

    stem 3x3 conv -> 3C | `layers` cells, reduction cells at layers//3 and 2*layers//3
    (each doubling C) | global average pool -> linear

The same class is the super-net (arch=None: every op on every (input -> node)
edge of both cell types; forward(x, arch) runs one genotype) and a stand-alone
model (arch given: only the genotype's edges and ops). Edge modules are keyed by
(node, input) and ops by name, so both hold identical parameter names and a fixed
model copies its weights from the super-net by name.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..base import Arch, refuse_backbone_weights, resolve_arch
from ..ops import ChoiceEdge, ReLUConvBN
from .ops import FactorizedReduce, make_darts_op
from .space import DARTS_OPS, NODES, DartsSpace

NodeChoice = tuple[str, int, str, int]  # (op_lo, input_lo, op_hi, input_hi)


def edge_key(node: int, src: int) -> str:
    return f"n{node}_{src}"


class DartsCell(nn.Module):
    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool,
                 choice: list[NodeChoice] | None):
        super().__init__()
        self.reduction = reduction
        # The previous-previous output is at twice the resolution after a reduction.
        self.preprocess0: nn.Module = (FactorizedReduce(c_pp, c) if reduction_prev
                                       else ReLUConvBN(c_pp, c, 1))
        self.preprocess1 = ReLUConvBN(c_p, c, 1)
        ops: dict[tuple[int, int], set[str]] = {}
        if choice is None:  # super-net: every edge, every op
            ops = {(n, j): set(DARTS_OPS) for n in NODES for j in range(n)}
        else:
            for n, (op_lo, lo, op_hi, hi) in zip(NODES, choice):
                ops.setdefault((n, lo), set()).add(op_lo)
                ops.setdefault((n, hi), set()).add(op_hi)
        self.edges = nn.ModuleDict({
            edge_key(n, j): ChoiceEdge(tuple(o for o in DARTS_OPS if o in names),
                                       partial(make_darts_op, c=c, stride=2 if reduction and j < 2 else 1))
            for (n, j), names in sorted(ops.items())})

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, choice: list[NodeChoice]) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for n, (op_lo, lo, op_hi, hi) in zip(NODES, choice):
            states.append(self.edges[edge_key(n, lo)](states[lo], op_lo)
                          + self.edges[edge_key(n, hi)](states[hi], op_hi))
        return torch.cat(states[2:], dim=1)


class DartsNet(nn.Module):
    STEM_MULTIPLIER = 3

    def __init__(self, space: DartsSpace, arch: Arch | None = None, *, channels: int = 16,
                 layers: int = 5, num_classes: int = 10, backbone_weights: str | None = None):
        super().__init__()
        refuse_backbone_weights(space, backbone_weights)
        # (any channels: the factorized reductions run at 2x and 4x it, always even)
        if layers < 3 or channels < 2 or num_classes < 2:
            raise ValueError(f"{space.name}: need layers >= 3 (two reduction cells and a normal "
                             f"one), channels >= 2 and num_classes >= 2; got layers={layers}, "
                             f"channels={channels}, num_classes={num_classes}")
        self.space, self.arch = space, arch
        self.channels, self.layers, self.num_classes = channels, layers, num_classes
        fixed = space.cells(arch) if arch is not None else None
        c_stem = self.STEM_MULTIPLIER * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        self.reduction_at = (layers // 3, 2 * layers // 3)
        cells, reduction_prev = [], False
        for i in range(layers):
            reduction = i in self.reduction_at
            if reduction:
                c *= 2
            kind = "reduce" if reduction else "normal"
            cells.append(DartsCell(c_pp, c_p, c, reduction, reduction_prev,
                                   fixed[kind] if fixed is not None else None))
            reduction_prev = reduction
            c_pp, c_p = c_p, len(NODES) * c
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def _cells(self, arch: Arch | None) -> dict[str, list[NodeChoice]]:
        arch = resolve_arch(self.space, self.arch, arch)
        return self.space.cells(arch)

    def forward(self, x: torch.Tensor, arch: Arch | None = None) -> torch.Tensor:
        choice = self._cells(arch)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, choice["reduce" if cell.reduction else "normal"])
        return self.classifier(self.pool(s1).flatten(1))
