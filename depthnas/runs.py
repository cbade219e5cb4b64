"""What a run folder holds: which command made it, and whether work has started there."""
from __future__ import annotations

from pathlib import Path

# Once work has started a folder holds one of these. config.yaml, splits.json and the
# drawn initial_landmarks.json alone are a start that failed before any training:
# starting over loses nothing, and must not inherit the failed start's landmarks.
RUN_MARKERS = ("checkpoints", "standalone", "metrics.jsonl", "result.json", "results.json")
FAILED_START_LEFTOVERS = ("initial_landmarks.json",)
# Files only one command writes.
KIND_MARKERS = {"search": ("standalone", "results.json", "initial_landmarks.json", "best_arch.json"),
                "train": ("result.json", "model.safetensors")}


def run_kind(out: str | Path) -> str | None:
    """'search' or 'train' for a folder one of them has worked in, else None. A training
    stopped before its first result is known by its checkpoints, which name the
    architecture (a super-net's name none)."""
    out = Path(out)
    for kind, markers in KIND_MARKERS.items():
        if any((out / m).exists() for m in markers):
            return kind
    from .standalone import trained_arch
    try:
        return "train" if trained_arch(out) else None
    except ValueError:  # a damaged checkpoint: the loader names it when it is read
        return None
