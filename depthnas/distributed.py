"""Running under `torchrun`: the process group, who does what, and small collectives.

Launched by torchrun (WORLD_SIZE > 1 in the environment), `init` joins the process
group: nccl when this rank trains on a GPU (one GPU per rank, cuda:LOCAL_RANK),
gloo on CPU. Launched as a plain process, nothing is initialised and every helper
here is the single-process identity: rank 0 of 1, `is_main()` true, barriers and
broadcasts return at once, `shard` returns everything.

The process group's timeout is long (DEPTHNAS_DIST_TIMEOUT_S, default 24 h):
ranks wait at a collective while rank 0 searches the super-net or while the
others finish their share of stand-alone trainings, which can take hours. A rank
that crashes does not leave the rest waiting: torchrun stops them all.
"""
from __future__ import annotations

import datetime
import hashlib
import math
import os
from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .launch_env import launched

T = TypeVar("T")


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun a CUDA device means this rank's GPU, cuda:LOCAL_RANK."""
    if device.type == "cuda" and launched():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ValueError(f"torchrun started local rank {local}, but this machine shows "
                             f"{torch.cuda.device_count()} GPU(s): one GPU per process, so "
                             "--nproc-per-node must not exceed that (or use --device cpu)")
        return torch.device("cuda", local)
    return device


def init(device: torch.device) -> None:
    """Join torchrun's process group (nccl for CUDA, gloo otherwise); no-op when
    not launched by torchrun or already joined."""
    if not launched() or active():
        return
    device = local_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    raw = os.environ.get("DEPTHNAS_DIST_TIMEOUT_S", "86400")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"DEPTHNAS_DIST_TIMEOUT_S={raw!r}: expected seconds (a number > 0)")
    timeout = datetime.timedelta(seconds=seconds)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)


def cleanup(finished: bool = False) -> None:
    """Leave the process group. `finished` (every rank returned normally): wait for
    the others first, so no rank tears the group down under a collective another
    still completes (gloo then aborted a rank at exit, "terminate called without an
    active exception", once in a clean-clone test run). After an error the ranks may
    sit in different collectives, so there is no barrier then."""
    if active():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """`obj` as rank `src` holds it, on every rank (pickled)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank (pickled)."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def mean_and_failed(value: float, failed: bool, device: torch.device) -> tuple[float, list[int]]:
    """The mean of `value` over the ranks, and the ranks where `failed` is true: one
    all_reduce, as a training step can afford (each rank's value alone is its own
    shard's; a failure on any rank must stop every rank)."""
    world = world_size()
    if world == 1:
        return value, [0] if failed else []
    flags = [0.0] * world
    flags[rank()] = 1.0 if failed else 0.0
    t = torch.tensor([value, *flags], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    total, *flags = t.tolist()  # one read-back
    return total / world, [r for r, f in enumerate(flags) if f > 0]


def shard(items: Sequence[T], rank_: int | None = None, world: int | None = None) -> list[T]:
    """This rank's share of `items`: every world-th item from position rank, so the
    shares are disjoint, cover every item once, and differ in size by one at most."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    if not 0 <= r < w:
        raise ValueError(f"rank {r} outside a world of {w}")
    return list(items[r::w])


def sync_buffers(model: nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward, so after the last step of
    an epoch each rank holds its own data's statistics; this makes the replicas
    identical again before a checkpoint or a check."""
    if world_size() == 1:
        return
    for buf in model.buffers():
        dist.broadcast(buf, src=src)


def state_checksum(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_replicas(model: nn.Module, what: str) -> list[str]:
    """Every rank's state checksum of `model`; raises on every rank if any differs."""
    sums = gather_objects(state_checksum(model))
    if len(set(sums)) > 1:
        raise RuntimeError(f"{what}: the replicas' weights differ across ranks "
                           f"({', '.join(s[:12] for s in sums)})")
    return sums
