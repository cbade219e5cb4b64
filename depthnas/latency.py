"""Measured latency of a stand-alone model, for latency-constrained search."""
from __future__ import annotations

import time

import torch

from depthnas.spaces import Arch, SearchSpace

from .config import Config
from .models import model_kwargs


@torch.no_grad()
def measure_latency(space: SearchSpace, arch: Arch, cfg: Config, device: torch.device,
                    repeats: int = 5, warmup: int = 2) -> float:
    """Median milliseconds of one forward pass at the size the model sees, batch 1:
    the configured image size, or a classification space's fixed input (32x32)."""
    kw = dict(model_kwargs(cfg.model, space), backbone_weights=None)
    model = space.build_fixed(arch, **kw).to(device).eval()
    size = getattr(space, "input_size", cfg.data.image_size)
    x = torch.randn(1, 3, *size, device=device)
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1000)
    return sorted(times)[len(times) // 2]
