"""A MiDaS-style depth network whose fusion blocks come from the search space.

    image -> timm backbone (strides 4, 8, 16, 32) -> 3x3 lateral convs to F channels
          -> fusion blocks, coarse to fine, each upsampling x2 -> head -> inverse depth

The same class is the super-net (arch=None: every candidate op, one path per
forward, chosen by the `arch` argument) and a stand-alone model (arch given: only
the modules that path runs). Parameter names are identical, so a fixed model loads the
super-net's weights for its path with a plain state-dict subset.
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..base import Arch, resolve_arch
from ..ops import EDGE_OPS, ChoiceEdge, ReLUConvBN, make_edge_op
from .backbone import check_strides, create_backbone
from .space import (EDGES, FIRST_BLOCK_INPUTS, MIN_FEATURES, NUM_BLOCKS, BlockChoice, DepthSpace,
                    has_output, running_blocks)

EDGE_KEYS = {e: "e" + e.replace("<-", "") for e in EDGES}  # "2<-0" -> "e20"


class Interpolate(nn.Module):
    """x2 upsampling with align_corners=True: REFERENCE fixes it for the fusion blocks;
    the head uses it too, as DPT's MiDaS head does (MidasNet v2.1's head used False).
    Changing it would invalidate the committed stand-alone tables."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=True)


def make_upsample(name: str, channels: int) -> nn.Module:
    if name in ("bilinear", "bicubic"):
        return Interpolate(name)
    if name == "transposed_conv":
        up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
        bilinear_(up)
        return up
    if name == "pixel_shuffle":
        conv = ReLUConvBN(channels, 4 * channels, 1)
        icnr_(conv[1].weight, scale=2)
        return nn.Sequential(conv, nn.PixelShuffle(2))
    raise ValueError(f"unknown upsample op {name!r}")


@torch.no_grad()
def bilinear_(up: nn.ConvTranspose2d) -> None:
    """Start a x2 transposed convolution as bilinear upsampling, channel by channel
    (the FCN init, Long et al. 2015). From PyTorch's random init it begins as a
    checkerboard: in the proxy benchmark 11 of 12 V2-sync transposed-conv trainings
    ended no better than a constant prediction; with this init 9 of 12 learned."""
    k = torch.tensor([0.25, 0.75, 0.75, 0.25], dtype=up.weight.dtype, device=up.weight.device)
    up.weight.zero_()
    up.weight[range(up.in_channels), range(up.out_channels)] = torch.outer(k, k)
    up.bias.zero_()


@torch.no_grad()
def icnr_(weight: torch.Tensor, scale: int) -> None:
    """ICNR init of a sub-pixel convolution (Aitken et al. 2017): the scale**2 output
    channels PixelShuffle interleaves into one start with the same kernel, so the op
    begins as nearest-neighbour upsampling. With independent kernels it begins as a
    checkerboard: in the proxy benchmark every V2-sync pixel-shuffle decoder (16
    trainings, two presets) ended no better than a constant prediction; with this
    init 13 of 20 learned."""
    groups = weight.shape[0] // scale**2
    base = torch.empty(groups, *weight.shape[1:], dtype=weight.dtype, device=weight.device)
    nn.init.kaiming_uniform_(base, a=math.sqrt(5))  # nn.Conv2d's own init, same fan-in
    weight.copy_(base.repeat_interleave(scale**2, dim=0))


class FusionCell(nn.Module):
    """One searched fusion block: nodes 2 and 3 sum their incoming edges."""

    def __init__(self, channels: int, edge_ops: dict[str, tuple[str, ...]],
                 upsample_ops: tuple[str, ...]):
        super().__init__()
        make = partial(make_edge_op, channels=channels)
        self.edges = nn.ModuleDict({EDGE_KEYS[e]: ChoiceEdge(edge_ops[e], make) for e in EDGES})
        self.upsample = nn.ModuleDict({u: make_upsample(u, channels) for u in upsample_ops})

    def forward(self, x0: torch.Tensor | None, x1: torch.Tensor,
                block: BlockChoice) -> torch.Tensor | None:
        """`block` comes from `running_blocks`: its edges all have a source and a
        reader, so a node is the sum of its non-none edges, or nothing. None in (no
        block before has output) and None out (node 3 has no edge) both mean nothing."""
        nodes = {"0": x0, "1": x1}
        for target in "23":
            out = None
            for edge in EDGES:
                if edge[0] == target and block.op(edge) != "none":
                    y = self.edges[EDGE_KEYS[edge]](nodes[edge[-1]], block.op(edge))
                    out = y if out is None else out + y
            nodes[target] = out
        return None if nodes["3"] is None else self.upsample[block.upsample](nodes["3"])


class Head(nn.Sequential):
    """MiDaS head: non-negative relative inverse depth at the input's resolution."""

    def __init__(self, features: int):
        super().__init__(
            nn.Conv2d(features, features // 2, 3, padding=1),
            Interpolate("bilinear"),
            nn.Conv2d(features // 2, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(),
        )
        # With a random-init backbone the last conv can start negative everywhere;
        # the final ReLU would then pass no gradient at all. A positive bias keeps
        # the output alive at the start of training.
        nn.init.constant_(self[4].bias, 1.0)


class DepthNet(nn.Module):
    """A MiDaS-style depth network: a timm backbone's features at strides 4 to 32,
    3x3 lateral convs to `features` channels, four fusion blocks (coarse to fine) and
    the MiDaS head. With `arch` it is a fixed model holding that architecture's ops;
    without, the super-net, whose forward(x, arch) runs one path. Input [B, 3, H, W]
    ImageNet-normalised, H and W multiples of 32; output [B, 1, H, W] relative inverse
    depth (larger = nearer)."""

    def __init__(self, space: DepthSpace, arch: Arch | None = None, *,
                 backbone: str | nn.Module = "resnet18", features: int = 64,
                 backbone_weights: str | Path | None = None,
                 first_block_input: str = "duplicate"):
        super().__init__()
        if first_block_input not in FIRST_BLOCK_INPUTS:
            raise ValueError(f"first_block_input must be 'duplicate' or 'zeros', "
                             f"got {first_block_input!r}")
        if isinstance(features, bool) or not isinstance(features, int) or features < MIN_FEATURES:
            raise ValueError(f"features must be a whole number >= {MIN_FEATURES} (the head "
                             f"halves it), got {features!r}")
        self.space = space
        self.arch = arch
        self.first_block_input = first_block_input
        self.features = features
        if isinstance(backbone, nn.Module):  # built already (a timm features_only model)
            if backbone_weights is not None:
                raise ValueError("backbone_weights applies to a backbone given by name; "
                                 "this backbone was given as a module")
            check_strides(backbone, type(backbone).__name__)
            self.backbone = backbone
        else:
            self.backbone = create_backbone(backbone, backbone_weights)
        self.laterals = nn.ModuleList(
            nn.Conv2d(c, features, 3, padding=1, bias=False)
            for c in self.backbone.feature_info.channels())
        # A fixed model holds only the ops its path runs (see `running_blocks`).
        fixed = running_blocks(space.blocks(arch)) if arch is not None else None
        cells = []
        for i in range(NUM_BLOCKS):
            if fixed is None:
                edge_ops = {e: EDGE_OPS for e in EDGES}
                ups = space.upsample_ops
            else:
                edge_ops = {e: (fixed[i].op(e),) for e in EDGES}
                ups = (fixed[i].upsample,) if has_output(fixed[i]) else ()
            cells.append(FusionCell(features, edge_ops, ups))
        self.blocks = nn.ModuleList(cells)  # coarse (stride 32) to fine (stride 4)
        self.head = Head(features)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone + lateral features, fine to coarse. Architecture-independent,
        so a batch's features can be computed once for many paths."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"DepthNet input must be [B, 3, H, W] with H and W multiples "
                             f"of 32, got {list(x.shape)}")
        return [lat(f) for lat, f in zip(self.laterals, self.backbone(x))]

    def decode(self, features: list[torch.Tensor], arch: Arch | None = None, *,
               head: bool = True) -> torch.Tensor:
        """Fusion blocks then the head; head=False stops before the head and returns
        the finest fusion block's output (F channels at half the input size)."""
        choices = self._choices(arch)
        path = features[-1] if self.first_block_input == "duplicate" else torch.zeros_like(features[-1])
        for i, (cell, lateral) in enumerate(zip(self.blocks, reversed(features))):
            path = cell(path, lateral, choices[i])
        if path is None:  # the finest block outputs nothing: zeros, as the space defines
            b, c, h, w = features[0].shape
            path = features[0].new_zeros(b, c, 2 * h, 2 * w)
        return self.head(path) if head else path

    def decode_for_calibration(self, features: list[torch.Tensor],
                               arch: Arch | None = None) -> torch.Tensor:
        """The part of decode() that BN recalibration must run: every BatchNorm of
        the decoder sits in the fusion blocks (the head has none), so the head, at
        full resolution and about 60% of the decoder's FLOPs, is skipped."""
        return self.decode(features, arch, head=False)

    def forward(self, x: torch.Tensor, arch: Arch | None = None) -> torch.Tensor:
        return self.decode(self.encode(x), arch)

    def _choices(self, arch: Arch | None) -> list[BlockChoice]:
        return running_blocks(self.space.blocks(resolve_arch(self.space, self.arch, arch)))

    def decoder_modules(self) -> list[nn.Module]:
        """The decoder, whose BatchNorm statistics depend on the path: what BN
        recalibration resets and re-estimates. The head holds no BatchNorm, and
        `decode_for_calibration` skips it: a head given one would have to run there
        too, or its statistics would be reset and never estimated."""
        return [self.blocks, self.head]
