"""MiDaS-style input/target transforms on top of albumentations 2.

Training: resize keeping the aspect ratio so the image just covers the network size
(MiDaS "lower_bound", sides rounded to multiples of 32), random crop to the network
size, horizontal flip and light colour jitter.  Evaluation: the same resize, then a
centre crop.  The image is resized bicubically; the target and its validity mask
with nearest neighbour, so invalid pixels never bleed into valid ones and target
values are never invented between a foreground edge and the background.

The target is disparity (larger = closer).  It is min-max normalised to [0, 1] over
the valid pixels *after* cropping, so every item spans the full range; the
scale-and-shift-invariant loss does not care about the affine normalisation anyway.
"""
from __future__ import annotations

import os
import random
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from .settings import check_image_size

try:  # needed only to build a DepthTransform; rendering and normalisation work without it
    import albumentations as A
    from albumentations.augmentations.geometric import functional as fgeometric
    from albumentations.core.transforms_interface import BaseTransformInitSchema
    from pydantic import Field
    _ALBUMENTATIONS_ERROR: ImportError | None = None
except ImportError as _err:  # e.g. a GPU image without albumentations (benchmarks/depth_proxy)
    import types as _types
    _ALBUMENTATIONS_ERROR = _err
    A = _types.SimpleNamespace(DualTransform=object)  # lets MidasResize's definition import
    fgeometric = None
    BaseTransformInitSchema = object

    def Field(*args: Any, **kwargs: Any) -> None:  # noqa: N802 (pydantic's name)
        return None

__all__ = [
    "SampleTransform",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MidasResize",
    "DepthTransform",
    "normalize_image",
    "normalize_target",
    "prepare_image",
    "check_net_size",
    "net_side",
    "midas_resize_shape",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_MEAN255 = np.array(IMAGENET_MEAN, np.float32) * 255.0
_INV_STD255 = 1.0 / (np.array(IMAGENET_STD, np.float32) * 255.0)


class SampleTransform(Protocol):
    """What a depth dataset calls to turn a raw sample into an item. ``index`` is the
    sample's position in the dataset, for augmentation seeded per sample."""

    def __call__(self, rgb: np.ndarray, disparity: np.ndarray, valid: np.ndarray,
                 index: int | None = None) -> dict[str, torch.Tensor]: ...


def loader_base_seed() -> int:
    """The seed the trainer last gave torch, the same in the main process and in every
    DataLoader worker (torch seeds worker k with the trainer's seed + k). Augmentation
    seeded from it and the sample's index does not depend on data.num_workers."""
    worker = torch.utils.data.get_worker_info()
    return (torch.initial_seed() - (worker.id if worker is not None else 0)) % (2**63)


def _constrain_to_multiple(x: float, multiple: int, min_val: int) -> int:
    """Round to the nearest multiple, but never below ``min_val`` (MiDaS' rule)."""
    y = int(round(x / multiple) * multiple)
    if y < min_val:
        y = int(np.ceil(x / multiple) * multiple)
    return y


def midas_resize_shape(height: int, width: int, target: tuple[int, int], multiple: int = 32) -> tuple[int, int]:
    """Size (H, W) that keeps the aspect ratio and covers ``target`` (MiDaS lower_bound)."""
    th, tw = target
    scale = max(th / height, tw / width)
    return (_constrain_to_multiple(scale * height, multiple, th), _constrain_to_multiple(scale * width, multiple, tw))


class MidasResize(A.DualTransform):
    """Aspect-preserving resize so the output covers (height, width), sides multiples of ``multiple``.

    Albumentations has no "lower bound + multiple of 32" resize: SmallestMaxSize neither
    rounds to a multiple nor guarantees both sides cover a non-square target.
    """

    class InitSchema(BaseTransformInitSchema):
        height: int = Field(ge=1)
        width: int = Field(ge=1)
        multiple: int = Field(ge=1)
        interpolation: int
        mask_interpolation: int

    def __init__(
        self,
        height: int,
        width: int,
        multiple: int = 32,
        interpolation: int = cv2.INTER_CUBIC,
        mask_interpolation: int = cv2.INTER_NEAREST_EXACT,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.height, self.width, self.multiple = height, width, multiple
        self.interpolation, self.mask_interpolation = interpolation, mask_interpolation

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        return {"out_shape": midas_resize_shape(h, w, (self.height, self.width), self.multiple)}

    def apply(self, img: np.ndarray, out_shape: tuple[int, int], **params: Any) -> np.ndarray:
        return fgeometric.resize(img, out_shape, self.interpolation)

    def apply_to_mask(self, mask: np.ndarray, out_shape: tuple[int, int], **params: Any) -> np.ndarray:
        return fgeometric.resize(mask, out_shape, self.mask_interpolation)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width", "multiple", "interpolation", "mask_interpolation")


def normalize_image(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 3xHxW, ImageNet mean/std."""
    x = (rgb.astype(np.float32) - _MEAN255) * _INV_STD255
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def normalize_target(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-image min-max of disparity over valid pixels to [0, 1]; invalid pixels are 0.

    A constant (or empty) valid set maps to 0: such a target gives a loss of 0.
    """
    out = np.zeros(disparity.shape, np.float32)
    if valid.any():
        v = disparity[valid]
        lo, hi = float(v.min()), float(v.max())
        if hi > lo:
            out[valid] = (v - lo) / (hi - lo)
    return out


class DepthTransform:
    """(rgb uint8 HxWx3, disparity float32 HxW, valid bool HxW) -> dataset item dict.

    Item: ``image`` float32 [3,H,W] (ImageNet-normalised), ``target`` float32 [1,H,W]
    in [0,1], ``mask`` bool [1,H,W]; H, W == ``image_size``.

    Randomness: albumentations 2 keeps its own generators, seeded once at
    construction, so forked DataLoader workers would all replay the same
    augmentations.  The datasets pass each sample's index, and the augmentation of
    a sample is then a function of (index, the seed torch was last given) alone:
    the trainer seeds every epoch, so an epoch's crops and flips depend on (seed,
    epoch, sample) and on nothing the process drew before.  A resumed run replays
    them, and the search's fixed calibration batches are the same whether or not
    stand-alone trainings ran earlier in the process.  In a DataLoader worker the
    seed is the loader's base seed (torch's per-worker seed minus the worker id),
    so one worker or several give the same items.  Without an index (a direct
    call) the generators are seeded once per process and seed, then run on.
    """

    def __init__(self, image_size: tuple[int, int], augment: bool = False) -> None:
        if _ALBUMENTATIONS_ERROR is not None:
            raise ImportError(f"DepthTransform needs albumentations>=2 ({_ALBUMENTATIONS_ERROR})"
                              ) from _ALBUMENTATIONS_ERROR
        self.image_size = check_image_size(image_size)
        self.augment = augment
        h, w = self.image_size
        ops: list[A.BasicTransform] = [MidasResize(h, w)]
        if augment:
            ops += [
                A.RandomCrop(height=h, width=w),
                A.HorizontalFlip(p=0.5),
                # Light jitter: depth cues survive, colour statistics vary a little.
                A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.8),
            ]
        else:
            ops.append(A.CenterCrop(height=h, width=w))
        self.pipeline = A.Compose(ops, additional_targets={"disparity": "mask"}, seed=0)
        self._seeded_by: tuple[int, int, int | None] | None = None

    def _seed(self, index: int | None) -> None:
        if index is None:  # torch's own seed, distinct per worker
            base = torch.initial_seed() % (2**63)
            key = (os.getpid(), base, None)
            if self._seeded_by == key:
                return  # run on with the generators seeded for this process and seed
        else:
            base = loader_base_seed()
            key = (os.getpid(), base, index)
        seq = np.random.SeedSequence([base] if index is None else [base, int(index)])
        self.pipeline.set_random_state(np.random.default_rng(seq), random.Random(int(seq.generate_state(1)[0])))
        self._seeded_by = key

    def __call__(self, rgb: np.ndarray, disparity: np.ndarray, valid: np.ndarray,
                 index: int | None = None) -> dict[str, torch.Tensor]:
        if self.augment:
            self._seed(index)
        if np.asarray(rgb).dtype != np.uint8:  # a float image in [0, 1] normalised as 0-255: near constant
            raise ValueError(f"DepthTransform: expected a uint8 RGB image, got {np.asarray(rgb).dtype}")
        # a non-finite value marked valid (an API caller's) would make the target NaN
        valid = np.asarray(valid, bool) & np.isfinite(disparity)
        disp = np.where(valid, disparity, 0.0).astype(np.float32)  # no NaN/inf reaches the resize
        out = self.pipeline(image=np.ascontiguousarray(rgb), mask=valid.astype(np.uint8), disparity=disp)
        img, mask, disp = out["image"], out["mask"].astype(bool), out["disparity"]
        if img.shape[:2] != self.image_size:  # guards the contract the trainer relies on
            raise RuntimeError(f"transform produced {img.shape[:2]}, expected {self.image_size}")
        target = normalize_target(disp, mask)
        return {
            "image": torch.from_numpy(normalize_image(img)),
            "target": torch.from_numpy(target)[None],
            "mask": torch.from_numpy(mask)[None],
        }


MIN_NET_SIZE = 32  # the smallest input side: the encoder's stride
# The largest side an exported graph takes (export.onnx_export); beyond it, a photo
# scaled up alone needs gigabytes before the network runs.
MAX_NET_SIZE = 16384


def check_net_size(net_size: int | None) -> None:
    """None is the training size; anything else must be a usable inference size."""
    if net_size is None or MIN_NET_SIZE <= net_size <= MAX_NET_SIZE:
        return
    bound = f">= {MIN_NET_SIZE}" if net_size < MIN_NET_SIZE else f"<= {MAX_NET_SIZE}"
    raise ValueError(f"--net-size (net_size) must be {bound} (pixels of the longer side), got {net_size}; "
                     "leave it out for the training size")


def net_side(net_size: int) -> int:
    """The longer side the network runs at for `net_size`: rounded to a multiple of 32,
    as net_input_size rounds it."""
    return max(MIN_NET_SIZE, int(round(net_size / 32)) * 32)


def net_input_size(h: int, w: int, net_size: int) -> tuple[int, int]:
    """(H, W) the network sees an h x w photo at: aspect kept, longer side ~``net_size``,
    sides multiples of 32."""
    scale = net_size / max(h, w)
    return (max(MIN_NET_SIZE, int(round(h * scale / 32)) * 32),
            max(MIN_NET_SIZE, int(round(w * scale / 32)) * 32))


def prepare_image(rgb_uint8_hwc: np.ndarray, net_size: int) -> torch.Tensor:
    """Inference input: [1,3,h,w] float32, aspect kept, longer side ~``net_size``, sides multiples of 32.

    Bicubic resize and ImageNet normalisation, as in training.  The caller resizes the
    prediction back to the original size.
    """
    rgb = np.asarray(rgb_uint8_hwc)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    rgb = rgb[:, :, :3]
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {rgb.dtype}")
    if net_size < MIN_NET_SIZE:
        raise ValueError(f"net_size must be >= {MIN_NET_SIZE}, got {net_size}")
    h, w = rgb.shape[:2]
    if not (h and w):
        raise ValueError(f"the image is empty ({h}x{w} pixels)")
    nh, nw = net_input_size(h, w, net_size)
    if (nh, nw) != (h, w):
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_CUBIC)
    return torch.from_numpy(normalize_image(rgb))[None]
