"""The search's budget: a model's parameters and its measured latency.

One object judges candidates, landmarks and the start-up check alike, and keeps what
it measured: latency is a measurement, so an architecture timed twice could pass once
and fail the next time; it is timed once and its figure goes into results.json."""
from __future__ import annotations

from typing import Callable

import torch

from depthnas.spaces import Arch, SearchSpace

from .config import Config
from .models import PathParameters


class Budget:
    def __init__(self, space: SearchSpace, cfg: Config, device: torch.device,
                 measure: Callable[..., float] | None = None):
        from .latency import measure_latency
        self.space, self.cfg, self.device = space, cfg, device
        self.max_params, self.max_latency_ms = cfg.search.max_params, cfg.search.max_latency_ms
        self._params = PathParameters(space, cfg.model)
        self._measure = measure or measure_latency
        self.latency_ms: dict[Arch, float] = {}

    @classmethod
    def of(cls, space: SearchSpace, cfg: Config, device: torch.device) -> "Budget | None":
        """The run's budget, or None when it sets neither limit."""
        if cfg.search.max_params is None and cfg.search.max_latency_ms is None:
            return None
        return cls(space, cfg, device)

    def latency(self, arch: Arch) -> float:
        if arch not in self.latency_ms:
            self.latency_ms[arch] = self._measure(self.space, arch, self.cfg, self.device)
        return self.latency_ms[arch]

    def __call__(self, arch: Arch) -> bool:
        # parameters first: counting is cheap, timing builds and runs the model
        if self.max_params is not None and self._params(arch) > self.max_params:
            return False
        return self.max_latency_ms is None or self.latency(arch) <= self.max_latency_ms

    def record(self, arch: Arch) -> dict[str, float]:
        """The latency `arch` is judged by, for its results.json record (timed now if it
        never was: a resumed run has not timed the picks of its finished iterations)."""
        if self.max_latency_ms is None:
            return {}
        return {"latency_ms": round(self.latency(arch), 3)}
