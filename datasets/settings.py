"""The settings a depth data set is built with, checked without torch or OpenCV:
depthnas checks a configuration with these before the seconds those take to load."""
from __future__ import annotations

import numbers

__all__ = ["DEPTH_KINDS", "EVAL_SYNTHETIC_SAMPLES", "REG_FRACTION", "SYNTHETIC_SAMPLES",
           "VAL_FRACTION", "check_depth_kind", "check_image_size"]

DEPTH_KINDS = ("depth", "disparity")  # what a folder's depth files hold
# A data set's default split: 15% validation, and 15% for the landmark regularizer's
# batches, which must not be the batches that train the super-net (the paper splits
# the training set in two).
VAL_FRACTION = 0.15
REG_FRACTION = 0.15
SYNTHETIC_SAMPLES = 512  # scenes a run draws by default
EVAL_SYNTHETIC_SAMPLES = 64  # scenes evaluate draws for a model of no run (or of other data)


def check_depth_kind(depth_kind: str) -> str:
    if depth_kind not in DEPTH_KINDS:
        raise ValueError(f"depth_kind must be one of {DEPTH_KINDS}, got {depth_kind!r}")
    return depth_kind


def check_image_size(image_size: tuple[int, int] | list[int] | int) -> tuple[int, int]:
    """Validate a network input size (H, W): positive multiples of 32 (the encoder stride)."""
    if isinstance(image_size, numbers.Integral):  # numpy's integers too
        image_size = (int(image_size), int(image_size))
    try:
        h, w = (int(v) for v in image_size)
        ok = (h, w) == tuple(image_size) and h > 0 and w > 0 and h % 32 == 0 and w % 32 == 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"image_size must be (H, W) with positive multiples of 32, got {image_size!r}")
    return h, w
