"""Checkpoints that survive a crash, and model files that describe themselves.

Training checkpoints: `checkpoints/epoch_0003/{model.safetensors,state.pt}` is
built under a temporary name and renamed into place, then `checkpoints/latest`
is replaced atomically; a killed run resumes from the newest complete epoch.
`state.pt` (optimizer, schedule, counters) is read with weights_only=True.

Model files: one `.safetensors` whose metadata holds everything needed to
rebuild the model (space, architecture string, backbone, features, ...).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .io import atomic_write, atomic_write_text, default_permissions

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"


def save_model(path: str | Path, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    with safe_open(str(path), framework="pt") as fh:
        raw = fh.metadata() or {}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def load_weights(path: str | Path, model: nn.Module) -> None:
    state = load_file(str(path))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes differ: another backbone or width than recorded
        raise ValueError(f"{path}: weights do not fit the model its metadata describes "
                         f"({str(err).splitlines()[-1].strip()})") from err
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match the model "
                         f"(missing {missing[:5]}..., unexpected {unexpected[:5]}...)")


class Checkpointer:
    def __init__(self, folder: str | Path, keep: int = 2):
        self.folder = Path(folder)
        self.keep = keep

    def save(self, epoch: int, model: nn.Module, state: dict[str, Any],
             metadata: dict[str, Any] | None = None) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"epoch_{epoch:04d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".epoch_{epoch:04d}.", dir=self.folder))
        try:
            default_permissions(tmp)
            save_model(tmp / MODEL_FILE, model, metadata)
            atomic_write(tmp / STATE_FILE, lambda p: torch.save(state, p))
            if final.exists():  # a rerun of the same epoch replaces it
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_text(self.folder / "latest", final.name + "\n")
        self._prune()
        return final

    def latest(self) -> Path | None:
        pointer = self.folder / "latest"
        if not pointer.is_file():
            return None
        path = self.folder / pointer.read_text().strip()
        return path if (path / STATE_FILE).is_file() else None

    def load(self, model: nn.Module, path: Path | None = None) -> dict[str, Any]:
        path = path or self.latest()
        if path is None:
            raise FileNotFoundError(f"no checkpoint under {self.folder}")
        load_weights(path / MODEL_FILE, model)
        return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)

    def clear(self) -> None:
        """Remove every checkpoint (a training that starts over must not later resume
        from, or prune its own epochs in favour of, another training's)."""
        if self.folder.is_dir():
            shutil.rmtree(self.folder)

    def _prune(self) -> None:
        epochs = sorted(p for p in self.folder.glob("epoch_*") if p.is_dir())
        for old in epochs[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
