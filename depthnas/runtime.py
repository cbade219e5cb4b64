"""Where and how a process runs: its device, its precision, its seeds, its signals.

Shared by training, evaluation, export and the landmark workers, none of which should
need the training loop to ask which device they are on."""
from __future__ import annotations

import os
import random
import signal
import sys
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import numpy as np
import torch

from . import distributed as dist
from .choices import PRECISIONS


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def generators_kept() -> Iterator[None]:
    """Python's, NumPy's and torch's CPU generator as they were after work that seeds
    them, and CUDA's where CUDA was in use already (else taking their states would
    start it): a library call leaves a script's own random streams alone."""
    python, numpy = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


def seeded_rng(seed: int, purpose: str, index: int = 0) -> random.Random:
    """The run's random stream for one purpose (and iteration, step, ...). Streams
    seeded by arithmetic on the seed met: `seed * 31 + t` for the searches and
    `seed * 97 + 1` for the ranking sample were both Random(1) at seed 0, so the
    ranking "sample" was the second search's own first candidates. A string names
    the stream; Python seeds from its SHA-512, the same in every process and rank."""
    return random.Random(f"depthnas:{purpose}:{seed}:{index}")


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when available; under torchrun a CUDA device is this rank's GPU.
    A device that does not exist here is a ValueError that says what does."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):  # mps, xpu, meta: torch's traceback at first use
        raise ValueError(f"device {name!r}: depthnas runs on auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: torch sees no CUDA GPU here; use --device cpu "
                             "(device=\"cpu\") or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) visible")
    return dist.local_device(device)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("x86_64" alone says little in a
    benchmark's record), else what Python knows."""
    import platform
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def autocast(device: torch.device, precision: str):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def quiet_on_sigterm(worker_id: int) -> None:
    """A loader worker's SIGTERM handler. `timeout` or a scheduler signals the whole
    process group: torch's own handler then kills the worker by the signal, and the
    main process, already stopping for the same signal, printed that death as a
    traceback before its resume hint. The worker's file-descriptor sharing thread,
    whose peer the stop ended mid-handshake, reported a ConnectionResetError too."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    hook = sys.excepthook  # what multiprocessing's resource_sharer thread reports through

    def quiet(kind: type, value: BaseException, tb: Any) -> None:
        if not issubclass(kind, (ConnectionResetError, BrokenPipeError, EOFError)):
            hook(kind, value, tb)
    sys.excepthook = quiet
