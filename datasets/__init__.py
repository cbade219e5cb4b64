"""Depth datasets for depthnas: an embedded procedural RGB-D set and loaders for
ReDWeb, NYUv2, DIODE and generic folders, all yielding MiDaS-style items.

    from depthnas.datasets import build_splits
    splits = build_splits("synthetic", (128, 128), seed=0)
    item = splits.train[0]  # {"image": [3,H,W], "target": [1,H,W] in [0,1], "mask": [1,H,W] bool}

The loaders import torch, OpenCV and albumentations when first used: checking a
configuration (`settings`, and the data spec: `spec`) needs none of them.
"""
from depthnas.lazy import exports_on_first_use

__getattr__, __dir__ = exports_on_first_use(
    __name__,
    base=("PairedDepthDataset", "SampleRef"),
    io=("DatasetError", "read_pfm", "write_pfm"),
    splits=("KINDS", "Splits", "build_splits"),
    synthetic=("SyntheticDepth", "render_scene"),
    transforms=("IMAGENET_MEAN", "IMAGENET_STD", "DepthTransform", "net_input_size", "prepare_image"),
)

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
