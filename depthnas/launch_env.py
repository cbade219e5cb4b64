"""What torchrun tells each process it starts, through the environment. Read without
torch: an error is worded before torch loads, and `--help` must stay fast."""
from __future__ import annotations

import os


def launched() -> bool:
    """True when torchrun started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def env_rank() -> int:
    """This process's rank as torchrun set it (0 when not launched by it), known before
    the process group is joined."""
    return int(os.environ.get("RANK", "0"))
