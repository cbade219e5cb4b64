"""Tables of stand-alone results (architecture string -> loss), for ranking.

Accepted forms: JSON {"arch": loss}, {"arch": {"mean": loss, ...}}, a landmark
store {"entries": [{"arch", "val_loss"}]}, a list of such entries, a benchmark
table {"architectures": {...}}, or CSV with columns arch,val_loss (or arch,mean).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

LOSS_KEYS = ("mean", "val_loss", "loss", "score")


def _value(arch: str, v: Any, path: Path) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, dict):
        for k in LOSS_KEYS:
            if k in v:
                return float(v[k])
    raise ValueError(f"{path}: entry {arch!r} has no loss (expected a number or one of {LOSS_KEYS})")


def load_truth(path: str | Path) -> dict[str, float]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"truth table not found: {path}")
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "arch" not in rows[0]:
            raise ValueError(f"{path}: CSV needs a header with an 'arch' column")
        return {r["arch"]: _value(r["arch"], {k: float(v) for k, v in r.items()
                                              if k in LOSS_KEYS and v}, path) for r in rows}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if isinstance(data, dict) and "architectures" in data:
        data = data["architectures"]
    if isinstance(data, dict) and "entries" in data:
        data = data["entries"]
    if isinstance(data, list):
        return {e["arch"]: _value(e["arch"], e, path) for e in data}
    if isinstance(data, dict):
        return {k: _value(k, v, path) for k, v in data.items()}
    raise ValueError(f"{path}: unrecognised truth table layout")
