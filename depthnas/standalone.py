"""Training one architecture on its own: `depthnas train`, landmarks and top-K.

Writes into its folder: config.yaml, metrics.jsonl, checkpoints/ (removed once it
has finished), the final model.safetensors and result.json (validation loss with
provenance). A folder
whose result.json matches the architecture and recipe is reused, not retrained.

`distributed=True` (`depthnas train` under torchrun) trains the one model
data-parallel over the ranks; rank 0 writes the folder and every rank returns
its result. Inside a search each rank trains its own architectures alone.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import math
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from depthnas.spaces import Arch, SearchSpace

from . import config as config_mod
from . import distributed as dist
from .checkpoint import Checkpointer, read_metadata, save_model
from .config import Config
from .io import atomic_write_json, read_json
from .models import count_parameters, model_kwargs, model_metadata
from .recipe import recipe, recipe_diff, same_recipe
from .runs import TRAIN_MODEL
from .scoring import InvertedShare, constant_score, evaluate_fixed
from .runtime import generators_kept, resolve_device, seed_everything
from .task import make_task
from .terminal import listed
from .trainer import Trainer

if TYPE_CHECKING:
    from depthnas.datasets.splits import SplitSet

log = logging.getLogger(__name__)

def arch_slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    # A file name stops at 255 bytes. Only longer slugs (DARTS genotypes, ~330) are
    # cut, to a readable prefix plus a hash of the whole string; shorter ones (every
    # depth and NB201 architecture) stay as they were, so existing run folders resolve.
    if len(slug) > 200:
        slug = f"{slug[:150]}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return slug


def saved_result(out_dir: Path) -> dict[str, Any]:
    """The folder's result.json, {} if none. A damaged one (cut short by a full disk,
    edited) is set aside as result.json.damaged and said, and its model is trained
    again (or its result read from the landmark store): it stopped every resume."""
    path = out_dir / "result.json"
    if not path.is_file():
        return {}
    try:
        done = read_json(path, expect=dict)
        loss = done.get("val_loss", 0.0)  # NaN, written before such a result was refused
        if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss):
            raise ValueError(f"{path}: val_loss {loss!r} is no finite loss")
        return done
    except FileNotFoundError:  # another rank set it aside since is_file()
        return {}
    except ValueError as err:
        try:
            path.replace(path.with_name("result.json.damaged"))
        except FileNotFoundError:  # another rank set it aside first
            return {}
        log.warning("%s; kept as result.json.damaged, and its result taken from the landmark "
                    "store where it holds one, else its training done again", err)
        return {}


def _own_result(out_dir: Path, arch_string: str, rec: dict[str, Any]) -> dict | None:
    """The folder's result.json if it is of this architecture and recipe."""
    done = saved_result(out_dir)
    return done if done.get("arch") == arch_string and same_recipe(done.get("recipe"), rec) else None


def _model_reads(out_dir: Path) -> bool:
    try:
        read_metadata(out_dir / TRAIN_MODEL)
        return True
    except (OSError, ValueError):
        return False


def finished_training(out_dir: str | Path, arch_string: str, rec: dict[str, Any]) -> dict | None:
    """The folder's result.json if it is of this architecture and recipe and its model
    file reads; else None (not trained, other settings, or the model lost)."""
    done = _own_result(Path(out_dir), arch_string, rec)
    return done if done is not None and _model_reads(Path(out_dir)) else None


def latest_record(out_dir: Path) -> dict[str, Any]:
    """What the folder's training recorded last: its newest checkpoint's metadata (a
    retrain under new settings that was stopped has its own checkpoints beside the old
    result.json), else its result; {} if it holds none."""
    saved = Checkpointer(out_dir / "checkpoints").latest_metadata()
    return saved_result(out_dir) if saved is None else saved


def trains_arch(out_dir: str | Path, arch_string: str) -> bool:
    """Whether a folder holds a training (finished, or checkpointed on the way) of
    `arch_string`, under any recipe."""
    return latest_record(Path(out_dir)).get("arch") == arch_string


def training_changes(out_dir: str | Path, arch_string: str, rec: dict[str, Any]) -> list[str]:
    """How the training a folder holds (its newest checkpoint, else its result) differs
    from `arch_string` under `rec`, as "field: saved X, now Y"; [] if it does not, or
    if the folder holds none (`latest_record`). Checkpoints from before recipes were
    recorded differ only by architecture."""
    saved = latest_record(Path(out_dir))
    if not saved:
        return []
    theirs = saved.get("recipe", rec)
    diff = [f"arch: saved {saved.get('arch')!r}, now {arch_string!r}"] \
        if saved.get("arch") != arch_string else []
    return diff + recipe_diff(theirs, rec, "saved", "now")


@generators_kept()  # it seeds per architecture; a library caller's streams stay theirs
def train_standalone(cfg: Config, space: SearchSpace, arch: Arch, splits: SplitSet,
                     out_dir: str | Path, *, progress: bool = True,
                     device: torch.device | None = None,
                     distributed: bool = False) -> dict[str, Any]:
    """Train `arch` on its own with the run's `cfg.standalone` recipe on `splits`
    (`depthnas.data.load_splits`), in `out_dir`, resuming from its checkpoints there;
    a finished training of the same recipe is read back, not repeated. Returns what
    `out_dir/result.json` holds: val_loss (the validation split's score), params, the
    recipe, the constant prediction's loss, train time, device and date."""
    out_dir = Path(out_dir)
    arch_string = space.to_string(arch)
    rec = recipe(cfg, splits)
    result_path = out_dir / "result.json"
    earlier = _own_result(out_dir, arch_string, rec) or {}
    if earlier:
        if _model_reads(out_dir):
            leftover = Checkpointer(out_dir / "checkpoints")
            if leftover.latest() is not None and (not distributed or dist.is_main()):
                # a stop after result.json, before its checkpoints went: gone now, or
                # every resume reads the result and keeps them (about 1 GB an epoch)
                leftover.clear()
            return earlier
        # finished, but its model file is gone or cut: a checkpoint left (a training
        # from before they were removed at the end, or one stopped as it saved) holds it
        resave = Checkpointer(out_dir / "checkpoints").latest() is not None
        log.warning("%s holds no readable model.safetensors; %s", out_dir,
                    "saving it again from the last checkpoint" if resave else "training it again")
        if not resave:
            earlier = {}  # trained again: this session's time and date are the training's
    stale = training_changes(out_dir, arch_string, rec)
    if stale:  # a folder reused under other settings: continuing would mix the two
        log.warning("%s holds a training of other settings (%s): training %s from scratch "
                    "there", out_dir, listed(stale, 4, "; "),
                    arch_string)
    device = device or resolve_device(cfg.device)
    # A stand-alone result depends on the architecture and the seed alone: not on
    # the entry point (`depthnas train`, landmark or top-K training), on which rank
    # trains it, or on what the process trained before.
    seed_everything(zlib.crc32(f"{cfg.seed}:{arch_string}".encode()))
    task = make_task(space, cfg.standalone.loss)
    model = space.build_fixed(arch, **model_kwargs(cfg.model, space))
    meta = dict(model_metadata(space, arch, cfg.model, cfg.data.image_size, task.name), recipe=rec)
    trainer = Trainer(model, task, cfg.standalone, splits.train, out_dir=out_dir,
                      total_epochs=cfg.standalone.epochs, seed=cfg.seed, device=device,
                      metadata=meta, name="standalone", progress=progress,
                      batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers,
                      distributed=distributed)
    if trainer.writes:
        out_dir.mkdir(parents=True, exist_ok=True)
        config_mod.dump(cfg, out_dir / "config.yaml")
    trainer.fit(resume=not stale)
    result = None
    if trainer.writes:  # every replica holds the same weights: rank 0 evaluates
        # near and far swapped scores as well (depth): said, not scored
        flipped = InvertedShare() if task.name == "depth" else None
        val = evaluate_fixed(trainer.model, task, splits.val, batch_size=cfg.data.batch_size,
                             device=device, precision=cfg.standalone.precision, observe=flipped)
        if not math.isfinite(val):  # recorded, every resume would read it back as a result
            raise FloatingPointError(
                f"{arch_string}: stand-alone validation {task.score_name} {val} (the model outputs "
                f"NaN or inf on the validation split): not recorded; its checkpoints in "
                f"{out_dir / 'checkpoints'} are kept. Lower the learning rate, in a new --out")
        save_model(out_dir / TRAIN_MODEL, trainer.model, meta)
        result = {"arch": arch_string, "space": space.name, "val_loss": val,
                  "constant_prediction_loss": constant_score(task, splits.val,
                                                             batch_size=cfg.data.batch_size),
                  "params": count_parameters(trainer.model), "recipe": rec,
                  # every session's epochs (a stop's partial epoch is redone, not counted)
                  "train_time_s": round(trainer.state.train_s, 2), "device": str(device),
                  "date": _dt.datetime.now().isoformat(timespec="seconds"),
                  "architecture": space.to_json(arch)}
        if flipped is not None:
            result["inverted"] = round(flipped.percent, 1)
        if trainer.distributed:
            result["ranks"] = trainer.world
        # the model re-saved: how long it trained, where and when are the first session's
        result.update({k: earlier[k] for k in ("train_time_s", "device", "date", "ranks")
                       if k in earlier})
        atomic_write_json(result_path, result)
        # Done: result.json and the model file are what is kept. Each checkpoint also
        # holds the optimizer state, and a search keeps dozens of trainings: at the
        # paper's size about 1 GB an epoch, two epochs each, some 75 GB in all.
        trainer.checkpoints.clear()
    return dist.broadcast_object(result) if trainer.distributed else result
