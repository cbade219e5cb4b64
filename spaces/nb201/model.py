"""The NAS-Bench-201 macro network with searched cells.

    stem 3x3 conv -> C | N cells | res-block /2 -> 2C | N cells | res-block /2 -> 4C | N cells
         -> BN + ReLU -> global average pool -> linear

The same class is the super-net (arch=None: every op on every edge, one path per
forward, chosen by the `arch` argument) and a stand-alone model (arch given: only
that path's ops). Parameter names are identical, so a fixed model loads its
weights from the super-net with a plain state-dict subset.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..base import Arch, refuse_backbone_weights, resolve_arch
from ..ops import EDGE_OPS, ChoiceEdge, ReLUConvBN, make_edge_op
from .space import EDGES, NUM_NODES, NB201Space

EDGE_KEYS = {e: f"e{e[0]}{e[1]}" for e in EDGES}  # (2, 1) -> "e21"


class ResNetBasicBlock(nn.Module):
    """The benchmark's reduction block: two 3x3 ReLU-conv-BN (the first strided)
    plus a shortcut (2x2 average pool + 1x1 conv when striding)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        if stride == 2:
            self.downsample: nn.Module = nn.Sequential(
                nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))
        elif c_in != c_out:
            self.downsample = ReLUConvBN(c_in, c_out, 1)
        else:
            self.downsample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Cell(nn.Module):
    """Node i = sum over j < i of op_ij(node j); the cell outputs node 3."""

    def __init__(self, channels: int, edge_ops: dict[tuple[int, int], tuple[str, ...]]):
        super().__init__()
        make = partial(make_edge_op, channels=channels)
        self.edges = nn.ModuleDict({EDGE_KEYS[e]: ChoiceEdge(edge_ops[e], make) for e in EDGES})

    def forward(self, x: torch.Tensor, ops: dict[tuple[int, int], str]) -> torch.Tensor:
        nodes = [x]
        for i in range(1, NUM_NODES):
            out = None
            for j in range(i):
                if ops[(i, j)] == "none":  # contributes zero; skipping it is exact
                    continue
                y = self.edges[EDGE_KEYS[(i, j)]](nodes[j], ops[(i, j)])
                out = y if out is None else out + y
            nodes.append(out if out is not None else torch.zeros_like(x))
        return nodes[-1]


class NB201Net(nn.Module):
    def __init__(self, space: NB201Space, arch: Arch | None = None, *, channels: int = 16,
                 cells_per_stage: int = 5, num_classes: int = 10,
                 backbone_weights: str | None = None):
        super().__init__()
        refuse_backbone_weights(space, backbone_weights)
        if channels < 1 or cells_per_stage < 1 or num_classes < 2:
            raise ValueError(f"{space.name}: need channels >= 1, cells_per_stage >= 1 and "
                             f"num_classes >= 2, got {channels}, {cells_per_stage}, {num_classes}")
        self.space, self.arch = space, arch
        self.channels, self.cells_per_stage, self.num_classes = channels, cells_per_stage, num_classes
        fixed = space.edge_ops(arch) if arch is not None else None
        edge_ops = {e: EDGE_OPS if fixed is None else (fixed[e],) for e in EDGES}

        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBasicBlock(c, 2 * c, stride=2))
                c *= 2
            layers += [NB201Cell(c, edge_ops) for _ in range(cells_per_stage)]
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def _ops(self, arch: Arch | None) -> dict[tuple[int, int], str]:
        arch = resolve_arch(self.space, self.arch, arch)
        return self.space.edge_ops(arch)

    def forward(self, x: torch.Tensor, arch: Arch | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-2] % 4 or x.shape[-1] % 4:
            # two reductions: the residual's pooling floors where the strided conv rounds up
            raise ValueError(f"NB201 input must be [B, C, H, W] with H and W multiples of 4 "
                             f"(32 x 32 in the benchmark), got {list(x.shape)}")
        ops = self._ops(arch)
        h = self.stem(x)
        for layer in self.cells:
            h = layer(h, ops) if isinstance(layer, NB201Cell) else layer(h)
        return self.classifier(self.pool(self.lastact(h)).flatten(1))
