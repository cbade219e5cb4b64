"""DARTS candidate operations (the DARTS paper's `operations.py`, affine BN).

Every op maps C to C channels; on the edges from a reduction cell's inputs it
runs at stride 2. BN is affine in the super-net as in stand-alone models, so the
two hold the same parameters under the same names. The pools have no BN after them:
DARTS's search added one (non-affine) to keep the weighted sum of all ops on one
scale, and a single-path super-net runs one op per edge, as its stand-alone models do.
"""
from __future__ import annotations

import torch
from torch import nn


class DilConv(nn.Sequential):
    """ReLU -> depthwise dilated conv -> pointwise conv -> BN."""

    def __init__(self, c: int, kernel: int, stride: int, dilation: int):
        pad = dilation * (kernel - 1) // 2
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c, c, kernel, stride, pad, dilation=dilation, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False),
                         nn.BatchNorm2d(c))


class SepConv(nn.Sequential):
    """Two stacked (ReLU -> depthwise -> pointwise -> BN), the first strided."""

    def __init__(self, c: int, kernel: int, stride: int):
        pad = kernel // 2
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(c, c, kernel, stride, pad, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False),
                         nn.BatchNorm2d(c),
                         nn.ReLU(inplace=False),
                         nn.Conv2d(c, c, kernel, 1, pad, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False),
                         nn.BatchNorm2d(c))


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing every other pixel: two 1x1 stride-2
    convs, the second shifted by one pixel, concatenated."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # Odd sizes: pad so the shifted branch yields the same output size.
        shifted = nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def make_darts_op(name: str, c: int, stride: int) -> nn.Module:
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name == "sep_conv_3x3":
        return SepConv(c, 3, stride)
    if name == "sep_conv_5x5":
        return SepConv(c, 5, stride)
    if name == "dil_conv_3x3":
        return DilConv(c, 3, stride, 2)
    if name == "dil_conv_5x5":
        return DilConv(c, 5, stride, 2)
    raise ValueError(f"unknown DARTS op {name!r}")
