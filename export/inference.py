"""One inference interface, two backends: `estimator.predict(rgb_uint8) -> float32 HxW`.

`depthnas predict` and the demo only see `DepthEstimator`; whether an exported
ONNX file runs in onnxruntime or a `model.safetensors` runs in PyTorch is decided
once, by `load_estimator(path)`.

Preprocessing is MiDaS' inference one (`depthnas.datasets.prepare_image`): keep
the aspect ratio, longer side about the model's image size, sides multiples of 32,
bicubic, so the whole photo is seen (training instead covers the size and crops).
The prediction is resized back to the photo's original size so every output pixel
matches an input pixel; bilinearly, not bicubically as MiDaS does, because cubic
overshoot invents values outside the network's output range (negative inverse
depth next to edges).
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from depthnas.datasets import IMAGENET_MEAN, IMAGENET_STD, net_input_size, prepare_image
from depthnas.datasets.transforms import check_net_size, net_side
from depthnas.out_of_memory import said_as_out_of_memory
from depthnas.model_files import onnx_file

_MEAN = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)


@dataclass(frozen=True)
class ModelInfo:
    source: Path
    backend: str                 # "onnxruntime (CPUExecutionProvider)" | "pytorch (cpu)"
    arch: str
    space: str
    backbone: str
    image_size: tuple[int, int]  # (H, W) the model was trained at
    parameters: int
    inference_size: int | None = None  # longer side to run at; None: the training size's
    ignores_input: bool = False  # its architecture cuts the image off: one map for every photo

    @property
    def net_size(self) -> int:
        """Longer side of the network input: --net-size 50 runs, and is said as, 64."""
        return net_side(self.inference_size) if self.inference_size else max(self.image_size)


def ignores_input_warning(arch_string: str) -> str:
    """What predict, export and the demo say of a model whose output ignores the image."""
    from depthnas.models import ignores_input_note
    return f"{ignores_input_note(arch_string)}: its maps are the same for every photo, whatever they look like"


class DepthEstimator(ABC):
    """A loaded model that turns a photo into relative inverse depth (larger = nearer)."""

    info: ModelInfo

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 RGB (HxW grey and RGBA accepted) -> float32 HxW at the same size."""
        if isinstance(rgb, (str, os.PathLike)):  # the first thing one tries
            raise TypeError(f"predict takes an image array, not the path {str(rgb)!r}: "
                            "depthnas.export.images.read_photo(path) reads one")
        rgb = np.asarray(rgb)
        h, w = (*rgb.shape, 0, 0)[:2]  # a flat array's shape is prepare_image's to refuse
        # W x H, as the photo's size is said
        size = "x".join(map(str, net_input_size(h, w, self.info.net_size)[::-1])) if h and w else "?"
        with said_as_out_of_memory(f"not enough memory to run the network at {size} px (net size "
                                   f"{self.info.net_size}) for a {w}x{h} photo on "
                                   f"{self.info.backend}: pass a smaller --net-size"):
            x = prepare_image(rgb, self.info.net_size)      # [1,3,h',w'] normalised
            out = self._forward(x)                           # [h', w'] float32
            if out.shape != (h, w):
                out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(out, dtype=np.float32)

    @abstractmethod
    def _forward(self, x: torch.Tensor) -> np.ndarray:
        """ImageNet-normalised [1,3,H,W] -> raw network output [H,W]."""


def load_torch_model(path: str | Path, device: str | torch.device = "cpu"
                     ) -> tuple[torch.nn.Module, dict[str, Any], Path]:
    """`depthnas.models.load_depth_model`, also giving the model file it read (a run
    folder resolves to its model). A damaged file is a ValueError naming it."""
    from depthnas.models import load_depth_model
    from depthnas.model_files import resolve_model_file
    path = resolve_model_file(path)
    model, meta = load_depth_model(path, device)
    return model, meta, path


class TorchEstimator(DepthEstimator):
    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        from depthnas.models import count_parameters, meta_ignores_input, trained_image_size
        self.device = torch.device(device)
        self.model, meta, self.path = load_torch_model(path, self.device)
        self.info = ModelInfo(
            source=self.path, backend=f"pytorch ({self.device})", arch=str(meta["arch"]),
            space=str(meta["space"]), backbone=str(meta.get("backbone", "none")),
            image_size=trained_image_size(meta, self.path), parameters=count_parameters(self.model),
            ignores_input=meta_ignores_input(meta))

    @torch.inference_mode()
    def _forward(self, x: torch.Tensor) -> np.ndarray:
        y = self.model(x.to(self.device))
        return y[0, 0].float().cpu().numpy()


class OnnxEstimator(DepthEstimator):
    """Runs a file written by `depthnas export`; its graph normalises, so it is fed [0,1]."""

    def __init__(self, path: str | Path, providers: list[Any] | None = None):
        import onnxruntime as ort

        from depthnas.models import trained_image_size
        self.path = onnx_file(path)
        if providers is None:
            providers = onnx_providers("auto")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as err:  # onnxruntime raises its own untyped Fail/InvalidGraph
            raise ValueError(f"{self.path}: onnxruntime cannot load it ({err})") from err
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if "image_size" not in meta or "arch" not in meta:
            raise ValueError(f"{self.path}: no depthnas metadata (arch, image_size); "
                             "export the model with `depthnas export`")
        self.input_name = self.session.get_inputs()[0].name
        self.info = ModelInfo(
            source=self.path,
            backend=f"onnxruntime ({self.session.get_providers()[0]})",
            arch=meta["arch"], space=meta.get("space", ""), backbone=meta.get("backbone", ""),
            image_size=trained_image_size(meta, self.path), parameters=int(meta.get("parameters", 0)),
            ignores_input=meta.get("ignores_input") == "true")  # absent from older exports

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        # prepare_image is the one definition of the inference resize; undoing its
        # normalisation gives the resized image in [0,1] (to float rounding, ~1e-7),
        # which is what the exported graph takes.
        x01 = (x * _STD + _MEAN).numpy()
        y = self.session.run(None, {self.input_name: x01})[0]
        return np.asarray(y[0, 0], dtype=np.float32)


def load_estimator(path: str | Path, device: str = "auto", net_size: int | None = None
                   ) -> DepthEstimator:
    """An ONNX file (.onnx) runs in onnxruntime; a model file or run folder in PyTorch.
    `device`: cpu, cuda[:N] or auto; one this machine (or onnxruntime build) lacks is a
    ValueError that says what there is. `net_size`: the longer side the network sees
    (None: the training size's). The decoder is fully convolutional, so a model trained
    on small crops can be run larger on a large photo, for a finer map."""
    check_net_size(net_size)  # before a model loads
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        estimator: DepthEstimator = OnnxEstimator(path, providers=onnx_providers(device))
    else:
        from depthnas.runtime import resolve_device
        estimator = TorchEstimator(path, device=str(resolve_device(device)))
    estimator.info = dataclasses.replace(estimator.info, inference_size=net_size)
    return estimator


def onnx_providers(device: str) -> list[Any]:
    """onnxruntime execution providers for a device name (its CUDA build, not torch's)."""
    import onnxruntime as ort
    available = ort.get_available_providers()
    cuda = "CUDAExecutionProvider" in available
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        return (["CUDAExecutionProvider"] if cuda else []) + ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind == "cuda" and (index == "" or index.isdigit()):
        if not cuda:
            raise ValueError(f"--device {device}: this onnxruntime has no CUDA provider "
                             f"(it has {', '.join(available)}); use --device cpu, or install "
                             "onnxruntime-gpu")
        return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
    raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def predict_latency(estimator: DepthEstimator, runs: int = 5, warmup: int = 1) -> float:
    """Median milliseconds of one `predict` on a random photo at the model's input size:
    resizing and normalising included, what a demo user waits for (the search's
    latency budget, `depthnas.latency`, times the network alone)."""
    h, w = estimator.info.image_size
    rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    for _ in range(warmup):
        estimator.predict(rgb)
    times = []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        estimator.predict(rgb)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)
