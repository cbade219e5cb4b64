"""What a command shows on the terminal it runs in: progress bars, and lists cut short
in messages (no torch: `--help` stays fast)."""
from __future__ import annotations

import math
import sys
from typing import Iterable


def show_progress(no_progress: bool = False) -> bool:
    """Progress bars on a terminal only: in a log file tqdm's redraws become noise."""
    return not no_progress and sys.stderr.isatty()


def listed(items: Iterable[object], n: int = 3, sep: str = ", ") -> str:
    """The first `n` items for a message, and " ..." when there are more: a message
    names a few examples of what is at fault, not every one of thousands."""
    items = [str(i) for i in items]
    return sep.join(items[:n]) + (" ..." if len(items) > n else "")


def took(seconds: float) -> str:
    """A run's length for a person: seconds under a minute (a short search said
    "done in 0.0 min"), minutes to one decimal above."""
    return f"{seconds:.0f} s" if seconds < 59.5 else f"{seconds / 60:.1f} min"


def figure(x: float | None, spec: str = "+.3f", unit: str = "") -> str:
    """A ranking figure for a person: a correlation as +0.816, or "undefined" where
    there is none (every score alike, or too few), which "+nan" only hinted at."""
    return "undefined" if x is None or not math.isfinite(x) else format(x, spec) + unit
