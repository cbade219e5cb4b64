"""Measured latency of a stand-alone model, for latency-constrained search."""
from __future__ import annotations

import time

import torch

from depthnas.spaces import Arch, SearchSpace

from .config import Config
from .models import model_kwargs, without_weights_file
from .runtime import autocast


@torch.no_grad()
def measure_latency(space: SearchSpace, arch: Arch, cfg: Config, device: torch.device,
                    repeats: int = 9, warmup: int = 2) -> float:
    """Median milliseconds of one forward pass at the size the model sees, batch 1: the
    configured image size, or a classification space's fixed input (32x32). The model
    runs as the stand-alone training runs it (its precision and memory layout): that is
    the model the search hands over. The median of nine, not the mean of few, because
    one slow pass (a page fault, another process) would otherwise decide near the
    budget."""
    kw = without_weights_file(model_kwargs(cfg.model, space))
    model = space.build_fixed(arch, **kw).to(device).eval()
    size = space.input_size or cfg.data.image_size
    x = torch.randn(1, 3, *size, device=device)
    if cfg.standalone.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with autocast(device, cfg.standalone.precision):
        for i in range(warmup + repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter() - t) * 1000)
    return sorted(times)[len(times) // 2]
