"""What a command shows on the terminal it runs in (no torch: `--help` stays fast)."""
from __future__ import annotations

import sys


def show_progress(no_progress: bool = False) -> bool:
    """Progress bars on a terminal only: in a log file tqdm's redraws become noise."""
    return not no_progress and sys.stderr.isatty()
