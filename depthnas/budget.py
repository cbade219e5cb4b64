"""The search's budget: a model's parameters and its measured latency.

One object judges candidates, landmarks and the start-up check alike, and keeps what
it measured: latency is a measurement, so an architecture timed twice could pass once
and fail the next time; it is timed once and its figure goes into results.json."""
from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch

from depthnas.spaces import Arch, SearchSpace

from . import distributed as dist
from .config import Config
from .models import PathParameters, has_timm_backbone, is_classification, model_kwargs, smallest_architecture
from .runtime import seeded_rng


log = logging.getLogger(__name__)
SAVE_EVERY_S = 30.0  # latency.json is rewritten whole: at most this often while timing


class Budget:
    """`timings`: a file that keeps the figures across a run's sessions (the run's
    latency.json): a resumed run re-timed its finished searches' picks, and reported
    figures they were never judged by, over the budget and unflagged."""

    def __init__(self, space: SearchSpace, cfg: Config, device: torch.device,
                 measure: Callable[..., float] | None = None, timings: Path | None = None):
        from .latency import measure_latency
        self.space, self.cfg, self.device = space, cfg, device
        self.max_params, self.max_latency_ms = cfg.search.max_params, cfg.search.max_latency_ms
        self._params = PathParameters(space, cfg.model)
        self._measure = measure or measure_latency
        self.timings = timings
        self._written = 0.0  # when latency.json was last written (time.monotonic)
        self.latency_ms: dict[Arch, float] = self._read_timings()

    @classmethod
    def of(cls, space: SearchSpace, cfg: Config, device: torch.device,
           timings: Path | None = None) -> "Budget | None":
        """The run's budget, or None when it sets neither limit."""
        if cfg.search.max_params is None and cfg.search.max_latency_ms is None:
            return None
        return cls(space, cfg, device, timings=timings)

    def latency(self, arch: Arch) -> float:
        if arch not in self.latency_ms:
            self.latency_ms[arch] = self._measure(self.space, arch, self.cfg, self.device)
            if time.monotonic() - self._written > SAVE_EVERY_S:  # a search times thousands
                self.save()
        return self.latency_ms[arch]

    @functools.cached_property
    def _setup(self) -> dict[str, Any]:
        """What a timing depends on: the machine, the model's settings, its input and
        how it runs (`latency.measure_latency`); fixed for the run."""
        from .recipe import as_recorded
        from .runtime import cpu_model
        device = torch.device(self.device)
        if device.type == "cuda":  # "cuda" and torchrun's "cuda:0" are one device
            device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
        return as_recorded({"device": str(device), "hardware": hardware,
                            "model": model_kwargs(self.cfg.model, self.space),
                            "image_size": self.space.input_size or self.cfg.data.image_size,
                            "precision": self.cfg.standalone.precision,
                            "channels_last": self.cfg.standalone.channels_last})

    def _read_timings(self) -> dict[Arch, float]:
        """The figures an earlier session measured under this setup (on another machine,
        or for another model size or image size, they would judge by other speeds:
        timed again)."""
        from .io import read_json
        if self.timings is None or not self.timings.is_file():
            return {}
        try:
            data = read_json(self.timings, expect=dict)
            if data.get("setup") != self._setup:
                return {}
            return {self.space.from_string(a): float(ms) for a, ms in data["ms"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:  # timed again
            log.warning("%s is unreadable (%s): its architectures are timed again", self.timings, err)
            return {}

    def save(self) -> None:
        """Keep the figures for a resume (rank 0; before the run folder exists, they
        stay in memory and go with the next save)."""
        from .io import atomic_write_json
        if self.timings is not None and self.timings.parent.is_dir() and dist.is_main() \
                and self.latency_ms:
            atomic_write_json(self.timings, {"setup": self._setup, "ms": {
                self.space.to_string(a): ms for a, ms in self.latency_ms.items()}})
            self._written = time.monotonic()

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

    # ---- before any training -------------------------------------------------------
    def check_reachable(self, say: Callable[[str], None], samples: int = 10) -> None:
        """A budget nothing meets was found only when the search started, after hours
        of training, and then cost a build and timed passes per candidate (up to a
        thousand misses in a row); a resumed run may not change the budget. So fail now."""
        if self.max_params is not None:
            self._check_params()
        if self.max_latency_ms is not None:
            self._check_latency(say, samples)

    @functools.cached_property
    def _smallest(self) -> tuple[Arch, int]:
        """The smallest architecture and its parameters, for both checks."""
        return smallest_architecture(self.space, self.cfg.model)

    def _check_params(self) -> None:
        arch, params = self._smallest
        if params <= self.max_params:
            return
        if has_timm_backbone(self.space):
            given = f"backbone {self.cfg.model.backbone}"
            advice = "a smaller backbone or model.features"
        else:  # sized by its own settings
            sizes = {k: v for k, v in model_kwargs(self.cfg.model, self.space).items()
                     if k != "num_classes"}
            if is_classification(self.space):  # the built-in cells: named as settings
                field = {"layers": "darts_layers"}  # the model's argument -> its config field
                sizes = {f"model.{field.get(k, k)}": v for k, v in sizes.items()}
                advice = f"a smaller {' or '.join(sizes)}"
            else:  # a space of the user's: which setting feeds which argument is its own
                advice = "smaller model settings"
            given = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ValueError(f"search.max_params={self.max_params:,}: no {self.space.name} architecture "
                         f"fits; the smallest found, {self.space.to_string(arch)}, has {params:,} "
                         f"parameters with {given} (raise the budget, or choose {advice})")

    def _check_latency(self, say: Callable[[str], None], samples: int) -> None:
        """The MiDaS decoder's smallest architecture runs no fusion-block op at all, a
        true lower bound, so missing it is an error. Any other space's smallest need
        not be its fastest (DARTS: max-pool cells against skip ones; a space of the
        user's may have a slow parameter-free op), so there `samples` random
        architectures within the parameter budget are timed too, as the search draws
        its first candidates (at random; it then keeps their figures): none fitting is
        an error, few a warning. Rank 0 times for all: ranks timing apart could decide
        apart."""
        budget, (arch, _) = self.max_latency_ms, self._smallest
        timed = [arch]
        bound = has_timm_backbone(self.space)  # the smallest is the fastest
        if not bound:
            rng = seeded_rng(self.cfg.seed, "search", 0)  # the first search's own draws
            for _ in range(samples * 20):  # a tight parameter budget rejects most draws
                if len(timed) > samples:
                    break
                a = self.space.sample(rng)
                if self.max_params is None or self._params(a) <= self.max_params:
                    timed.append(a)
            say(f"search.max_latency_ms={budget:g}: timing {len(timed)} {self.space.name} "
                f"architectures on {self.device} (the smallest and random ones) before training")
        fits, ms = dist.broadcast_object(
            ([a for a in timed if self.latency(a) <= budget], self.latency(arch))
            if dist.is_main() else None)
        if len(fits) * 4 >= len(timed):
            return
        smallest = f"{self.space.to_string(arch)}, takes {ms:.1f} ms"
        if bound:
            raise ValueError(f"search.max_latency_ms={budget:g}: the smallest {self.space.name} "
                             f"architecture, {smallest} on {self.device}, and none is faster "
                             "(raise the budget, or choose a smaller backbone or image size)")
        said = (f"search.max_latency_ms={budget:g}: {len(fits)} of {len(timed)} {self.space.name} "
                f"architectures timed on {self.device} fit (the smallest by parameters, {smallest})")
        advice = ("raise the budget, or choose a smaller model.channels" if is_classification(self.space)
                  else "raise the budget, or choose smaller model settings or image size")
        if not fits:
            raise ValueError(f"{said}, so the search would find few, if any, after the "
                             f"super-net has trained ({advice})")
        say(f"warning: {said}; the search may find few ({advice})")
