"""Depth datasets for depthnas: an embedded procedural RGB-D set and loaders for
ReDWeb, NYUv2, DIODE and generic folders, all yielding MiDaS-style items.

    from depthnas.datasets import build_splits
    splits = build_splits("synthetic", (128, 128), seed=0)
    item = splits.train[0]  # {"image": [3,H,W], "target": [1,H,W] in [0,1], "mask": [1,H,W] bool}
"""
from .base import PairedDepthDataset, SampleRef
from .io import DatasetError, read_pfm, write_pfm
from .splits import KINDS, Splits, build_splits
from .synthetic import SyntheticDepth, render_scene
from .transforms import IMAGENET_MEAN, IMAGENET_STD, DepthTransform, net_input_size, prepare_image

__all__ = [
    "build_splits",
    "Splits",
    "KINDS",
    "DatasetError",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "net_input_size",
    "prepare_image",
    "DepthTransform",
    "SyntheticDepth",
    "render_scene",
    "PairedDepthDataset",
    "SampleRef",
    "read_pfm",
    "write_pfm",
]
