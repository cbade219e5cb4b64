"""Checkpoints that survive a crash, and model files that describe themselves.

Training checkpoints: `checkpoints/epoch_0003/{model.safetensors,state.pt}` is
built under a temporary name and renamed into place, then `checkpoints/latest`
(its name, for people and tools) is replaced atomically; a killed run resumes from
the newest complete epoch folder.
`state.pt` (optimizer, schedule, counters) is read with weights_only=True.

Model files: one `.safetensors` whose metadata holds everything needed to
rebuild the model (space, architecture string, backbone, features, ...).
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .io import atomic_write, atomic_write_text, default_permissions, temporary_beside
from .terminal import listed

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"


def save_model(path: str | Path, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _unreadable(path: Path, err: Exception) -> ValueError:
    """The error for a file that is no safetensors model file (truncated, empty, or of
    another format), with a hint for the most common one, a torch.save file."""
    return ValueError(f"{path}: not a readable safetensors model file ({err})"
                      f"{_torch_save_hint(path)}")


def _torch_save_hint(path: Path) -> str:
    """What a torch.save file (a zip, or a pickle before torch 1.6) is told: its
    header read as a safetensors length gives "header too large"."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return ""
    if head[8:9] == b"{":  # a safetensors header (a damaged file of the right kind)
        return ""
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        return ("; it looks like a torch.save file: depthnas reads the model.safetensors "
                "its runs write (with the architecture in its metadata), or their .onnx export")
    return ""


def read_metadata(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except Exception as err:  # SafetensorError, OSError: truncated, empty, not safetensors
        raise _unreadable(path, err) from err
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def load_weights(path: str | Path, model: nn.Module,
                 unused: Callable[[str], bool] | None = None) -> list[str]:
    """Load `path` into `model`; every tensor must fit. Tensors the model lacks that
    `unused(name)` says are weights of ops it never runs are left out and returned."""
    try:
        state = load_file(str(path))
    except Exception as err:  # SafetensorError, OSError
        raise _unreadable(Path(path), err) from err
    model_keys = set(model.state_dict())
    dropped = sorted(k for k in state if k not in model_keys and unused is not None and unused(k))
    for k in dropped:
        del state[k]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes differ: another backbone or width than recorded
        raise ValueError(f"{path}: weights do not fit the model its metadata describes "
                         f"({str(err).splitlines()[-1].strip()})") from err
    if missing or unexpected:
        parts = [f"{what} {len(keys)}: {listed(keys)}"
                 for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise ValueError(f"{path}: weights do not match the model its metadata describes "
                         f"({'; '.join(parts)})")
    return dropped


def in_checkpoint(path: str | Path) -> bool:
    """Whether `path` lies in a training's `checkpoints/epoch_NNNN/`, which the training
    removes as it goes on (it keeps the newest two) or starts over: an export or a
    report written there beside its model goes with it."""
    return any(re.fullmatch(r"epoch_\d+", a.name) and a.parent.name == "checkpoints"
               for a in Path(path).resolve().parents)  # resolved: `..` leads out of one


def checkpoint_note(out: Path, out_given: bool) -> str | None:
    """What export and evaluate say of an output they write into a checkpoint folder."""
    if not in_checkpoint(out):
        return None
    return (f"note: {out} lies in a checkpoint folder, which its training removes as it goes "
            f"on; copy it elsewhere{'' if out_given else ', or pass --out'}")


class Checkpointer:
    def __init__(self, folder: str | Path, keep: int = 2):
        self.folder = Path(folder)
        self.keep = keep
        self.loaded: Path | None = None  # the epoch the last load() read
        self.saved: Path | None = None   # the epoch the last save() wrote

    def save(self, epoch: int, model: nn.Module, state: dict[str, Any],
             metadata: dict[str, Any] | None = None) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(".epoch_*"):  # a save killed mid-way: a full model copy
            shutil.rmtree(stale, ignore_errors=True)
        final = self.folder / f"epoch_{epoch:04d}"
        tmp = temporary_beside(final, folder=True, suffix="")  # .epoch_NNNN.xxxxxxxx
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
        self.saved = final
        return final

    def latest(self) -> Path | None:
        """The newest complete epoch folder. An epoch folder appears whole (renamed into
        place), so it is the truth; the `latest` file, written after the rename for
        people and tools, lags one epoch behind after a stop between the two (and a
        resume that trusted it lost that epoch), or may be damaged."""
        epochs = self._epochs()
        return epochs[-1] if epochs else None

    def load(self, model: nn.Module) -> dict[str, Any]:
        """Load the newest epoch that can be read: one damaged on disk after it was
        written (a full disk, a copy cut short) is named and skipped for the one
        before, so resuming costs an epoch, not the run."""
        candidates = self._newest_first()
        if not candidates:
            raise FileNotFoundError(f"no checkpoint under {self.folder}")
        errors = []
        for p in candidates:
            try:
                state = self._load(model, p)
            except ValueError as err:
                errors.append(str(err))
                log.warning("skipping an unreadable checkpoint: %s", err)
                continue
            self.loaded = p
            return state
        raise ValueError(f"no readable checkpoint under {self.folder}: " + "; ".join(errors)
                         + f" (delete {self.folder} to train this model from the start; the "
                         "rest of the run folder, such as stand-alone results, is kept and reused)")

    def latest_metadata(self) -> dict[str, Any] | None:
        """The model metadata (architecture, recipe) of the newest checkpoint whose
        metadata reads, skipping a damaged one as load() does; None without any."""
        for p in self._newest_first():
            try:
                return read_metadata(p / MODEL_FILE)
            except ValueError:
                continue
        return None

    def _newest_first(self) -> list[Path]:
        """latest(), then the complete epochs before it, newest first."""
        newest = self.latest()
        if newest is None:
            return []
        return [newest] + [p for p in reversed(self._epochs()) if p.name < newest.name]

    def _load(self, model: nn.Module, path: Path) -> dict[str, Any]:
        load_weights(path / MODEL_FILE, model)
        try:
            return torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            # torch's text advises weights_only=False, i.e. running what the file says
            raise ValueError(f"{path / STATE_FILE}: unreadable training state (damaged, or it "
                             "holds objects a training state does not: it is not loaded)") from err
        except Exception as err:  # truncated zip, EOF
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{path / STATE_FILE}: unreadable training state ({first})") from err

    @staticmethod
    def _complete(path: Path) -> bool:
        return (path / STATE_FILE).is_file() and (path / MODEL_FILE).is_file()

    def _epochs(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("epoch_*") if p.is_dir() and self._complete(p))

    def clear(self) -> None:
        """Remove every checkpoint (a training that starts over must not later resume
        from, or prune its own epochs in favour of, another training's)."""
        if self.folder.is_dir():
            shutil.rmtree(self.folder)

    def _prune(self) -> None:
        epochs = sorted(p for p in self.folder.glob("epoch_*") if p.is_dir())
        for old in epochs[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def keep_latest_only(self) -> None:
        """Once training has finished: the epoch before the last was kept in case the
        last was damaged mid-write; now it is only disk (about 1 GB at the paper's size,
        with its optimizer state). Kept unless this process wrote or read the latest."""
        latest = self.latest()
        if latest is not None and latest in (self.loaded, self.saved):
            for other in self.folder.glob("epoch_*"):  # by name, not by number: a higher
                if other.is_dir() and other != latest:  # one may be incomplete
                    shutil.rmtree(other, ignore_errors=True)
