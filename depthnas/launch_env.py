"""What torchrun tells each process it starts, through the environment. Read without
torch: an error is worded before torch loads, and `--help` must stay fast."""
from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    # empty is unset: `export RANK=$SLURM_PROCID` in a script run outside the scheduler
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not a whole number (torchrun "
                         "sets it; unset it to run as a single process)") from None


def launched() -> bool:
    """True when torchrun started this process as one of several ranks."""
    return _env_int("WORLD_SIZE", 1) > 1


def env_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by it), known before
    the process group is joined."""
    return _env_int("RANK", 0)
