"""A search's wall time over every session that resumed it, kept in the run's
elapsed.json: a run stopped and resumed many times reports the time it worked, not
its last session's (the report of a run stopped 15 times once said 18 s)."""
from __future__ import annotations

import time
from pathlib import Path

from .io import atomic_write_json, read_json


class RunClock:
    def __init__(self, path: Path):
        self.path = path
        self._earlier = _recorded_seconds(path) if path.is_file() else 0.0
        self._start = time.time()

    def elapsed(self) -> float:
        """Seconds the run has worked, this session's included."""
        return self._earlier + time.time() - self._start

    def save(self) -> None:
        """Record the time so far: a stop loses no more than the work since this call."""
        atomic_write_json(self.path, {"elapsed_s": round(self.elapsed(), 1)})


def _recorded_seconds(path: Path) -> float:
    value = read_json(path, expect=dict).get("elapsed_s")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{path}: 'elapsed_s' should be a number of seconds, found {value!r} "
                         "(delete the file to count from zero)")
    return float(value)
