"""Landmark architectures (paper section 4): the store of their stand-alone results and
the pairwise ranking regularizer. Drawing them (Algorithm 1) is `landmark_sampler`."""
from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import random
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from depthnas.spaces import Arch, SearchSpace, get_space

from .config import LandmarkConfig
from .io import atomic_write_json, read_json
from .recipe import same_recipe
from .schedule import landmark_lambda
from .task import Task, move
from .runtime import quiet_on_sigterm, seeded_rng

log = logging.getLogger(__name__)


# ---- the store ---------------------------------------------------------------------
class LandmarkStore:
    """A JSON file of architecture -> stand-alone validation loss with provenance.

    Entries are reused only when their recipe (space, data, resolution, backbone,
    epochs, loss, ...) matches the current run: a loss from another set-up is not
    comparable.
    """

    def __init__(self, path: str | Path, persist: bool = True):
        self.path, self.persist = Path(path), persist  # persist=False: in memory only
        if self.path.is_dir():  # else taken for a new store, and refused at the first write
            raise ValueError(f"landmark store {self.path} is a folder; name a JSON file "
                             f"(e.g. {self.path / 'landmarks.json'})")
        self.entries: list[dict[str, Any]] = self._read()

    def _read(self) -> list[dict[str, Any]]:
        """The entries, checked, each architecture in its space's own spelling: a store
        may be written by hand, and "c3" and "nor_conv_3x3" name one landmark."""
        if not self.path.is_file():
            return []
        shape = "a landmark store is {'version': 1, 'entries': [...]}"
        try:
            data = read_json(self.path, expect=dict)
        except ValueError as err:
            raise ValueError(f"landmark store {err} ({shape})") from None
        if "entries" not in data:  # a search's results.json is the likeliest such file
            hint = ("; this is a search's results.json: its landmarks.json, beside it, is the "
                    "store" if "architectures" in data else "")
            raise ValueError(f"landmark store {self.path} holds no 'entries' ({shape}){hint}")
        entries = data["entries"]
        if not isinstance(entries, list):
            raise ValueError(f"landmark store {self.path}: 'entries' must be a list ({shape})")
        kept: dict[tuple[str, str], dict[str, Any]] = {}  # the last of one arch and recipe
        spaces: dict[str, SearchSpace] = {}
        for i, e in enumerate(entries):
            where = f"landmark store {self.path}: entry {i}"
            problem = _entry_problem(e)
            if problem:
                raise ValueError(f"{where} {problem}")
            try:
                if e["space"] not in spaces:
                    spaces[e["space"]] = get_space(e["space"])
                space = spaces[e["space"]]
                e = dict(e, arch=space.to_string(space.parse(e["arch"])))
            except ValueError as err:
                raise ValueError(f"{where} ({e['arch']!r}, space {e['space']!r}): {err}") from None
            kept[_key(e)] = e
        return list(kept.values())

    def find(self, arch_string: str, recipe: dict[str, Any]) -> dict[str, Any] | None:
        for e in self.entries:
            if e["arch"] == arch_string and same_recipe(e.get("recipe"), recipe) and _trained(e):
                return e
        return None

    def matching(self, space: str, recipe: dict[str, Any]) -> list[dict[str, Any]]:
        return [e for e in self.entries
                if e["space"] == space and same_recipe(e.get("recipe"), recipe) and _trained(e)]

    def model_file(self, entry: dict[str, Any]) -> Path | None:
        """The trained model an entry names. Its path is kept relative to the store's
        folder, so a store read from elsewhere, or moved with its run, still finds it,
        and absolute, for a copy of the store kept elsewhere; stores from before that
        hold paths relative to where their run was started."""
        if not entry.get("model"):
            return None
        path = Path(entry["model"])
        candidates = [self.path.resolve().parent / path] if not path.is_absolute() else []
        candidates += [Path(entry["model_abs"])] if entry.get("model_abs") else []
        # none there: the path as the store means it (beside the store), for messages
        return next((c for c in candidates if c.is_file()), candidates[0] if candidates else path)

    def add(self, arch_string: str, space: str, val_loss: float, recipe: dict[str, Any],
            *, model: str | Path | None = None, **extra: Any) -> dict[str, Any]:
        if model is not None:
            where = Path(model).resolve()
            extra["model"] = os.path.relpath(where, self.path.resolve().parent)
            extra["model_abs"] = str(where)
        entry = {"arch": arch_string, "space": space, "val_loss": float(val_loss),
                 "recipe": recipe, "date": _dt.datetime.now().isoformat(timespec="seconds"),
                 **extra}
        self.entries = [e for e in self.entries
                        if not (e["arch"] == arch_string and same_recipe(e.get("recipe"), recipe))]
        self.entries.append(entry)
        self.save()
        return entry

    def save(self) -> None:
        """Write this run's entries plus what other runs sharing the file added since
        it was read: runs take turns under a lock and merge, where a plain rewrite
        would drop the others' new entries. The entries in memory stay this run's
        own (under DDP every rank must hold the same ones)."""
        if not self.persist:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f".{self.path.name}.lock"), "a") as lock:
            try:
                import fcntl
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            except ImportError:  # not POSIX: no lock; the merge still narrows the window
                pass
            mine = {_key(e) for e in self.entries}
            theirs = [e for e in self._read() if _key(e) not in mine]
            atomic_write_json(self.path, {"version": 1, "entries": theirs + self.entries})


def _entry_problem(e: Any) -> str | None:
    """What is wrong with a store entry, or None. Optional fields are checked too: a
    bad one would fail late (the report of a finished search) or with a traceback."""
    if not isinstance(e, dict):
        return "is not an object"
    bad = [k for k, kind in (("arch", str), ("space", str), ("val_loss", (int, float)))
           if not isinstance(e.get(k), kind) or isinstance(e.get(k), bool)]
    if bad:
        return f"lacks or mistypes {', '.join(bad)} (each entry needs arch, space and val_loss)"
    if not math.isfinite(e["val_loss"]) or e["val_loss"] < 0:
        return f"has val_loss {e['val_loss']}; a stand-alone loss is finite and >= 0"
    params = e.get("params")
    if params is not None and (isinstance(params, bool) or not isinstance(params, int) or params < 0):
        return f"has params {params!r}; expected a whole number of parameters"
    for k in ("model", "model_abs"):
        if e.get(k) is not None and not isinstance(e[k], str):
            return f"has {k} {e[k]!r}; expected the path of a model file"
    return None


def _trained(entry: dict[str, Any]) -> bool:
    """Stores written before 2026-11-29 also hold a truth table's values, marked with
    their `source`: those were looked up, not trained under the entry's recipe."""
    return "source" not in entry


def _key(entry: dict[str, Any]) -> tuple[str, str]:
    import json
    return entry["arch"], json.dumps(entry.get("recipe"), sort_keys=True)


# ---- the regularizer ---------------------------------------------------------------
def all_pairs(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def step_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The regularizer-split indices of optimizer step `step`: a function of the step
    alone, so a resumed run draws the same batches."""
    per_cycle = max(n // batch_size, 1)
    cycle, pos = divmod(step, per_cycle)
    order = list(range(n))
    seeded_rng(seed, "regularizer batches", cycle).shuffle(order)
    return order[pos * batch_size:(pos + 1) * batch_size] or order[:batch_size]


class _StepBatches:
    """Batch sampler: the indices of steps start, start + 1, ... (endless)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int):
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start

    def __iter__(self):
        step = self.start
        while True:
            yield step_indices(self.n, self.batch_size, self.seed, step)
            step += 1


class LandmarkRegularizer:
    """R = sum over pairs (i better than j) of max(0, L(a_i) - L(a_j)) (Eq. 4), or
    over m pairs drawn uniformly per step (Eq. 6), weighted by lambda(step).

    L is the super-net loss on a batch of the regularizer split, disjoint from
    the batches that train L_s. When the model splits into encode/decode, the
    backbone runs once for all landmarks of a step: same losses and gradients as
    separate passes, at the cost of decoder passes only (`share_encoder=False`
    runs a full forward per landmark, for reference and tests).

    Regularizer batches are prefetched by a DataLoader (`num_workers` processes,
    pinned memory on CUDA), so reading the regularizer split does not stall the
    training loop. The split must not be augmented at random (it is not): a batch
    is then the same whichever worker reads it.

    Under data-parallel training every rank evaluates the landmarks on the whole
    step batch: the term, and so its gradient, is then the same on every rank, and
    DDP's average of it is the single process's. (Slices per rank would be cheaper,
    but the mean of hinges taken on slices is another objective: the hinge is not
    linear, and train-mode BatchNorm would see a slice.)
    """

    def __init__(self, landmarks: Sequence[tuple[Arch, float]], reg_set: Dataset, task: Task,
                 cfg: LandmarkConfig, *, batch_size: int, device: torch.device | str,
                 seed: int = 0, total_epochs: int = 1, num_workers: int = 0,
                 share_encoder: bool = True):
        self.task, self.cfg, self.reg_set = task, cfg, reg_set
        self.batch_size, self.device, self.seed = batch_size, torch.device(device), seed
        self.total_epochs = max(total_epochs, 1)
        self.num_workers, self.share_encoder = num_workers, share_encoder
        self.channels_last = False  # set by a Trainer that trains channels-last
        self._batches: Any = None   # iterator of the prefetching loader
        self._next_step: int | None = None
        if len(reg_set) < 1:
            raise ValueError("the regularizer split is empty; raise data.reg_fraction")
        self.set_landmarks(landmarks)

    def set_landmarks(self, landmarks: Sequence[tuple[Arch, float]]) -> None:
        """Landmarks sorted best (lowest stand-alone loss) first."""
        self.landmarks = sorted(landmarks, key=lambda p: p[1])
        # Only pairs where i is strictly better than j: landmarks of equal stand-alone
        # loss (frequent in coarse truth tables) have no order to enforce.
        losses = [loss for _, loss in self.landmarks]
        self.pairs = [(i, j) for i, j in all_pairs(len(losses)) if losses[i] < losses[j]]

    def lam(self, step: int, total_steps: int) -> float:
        progress = step / max(total_steps - 1, 1)
        return landmark_lambda(progress, self.cfg.lambda_max, self.cfg.schedule,
                               warmup=self.cfg.warmup_epochs / self.total_epochs,
                               ramp=self.cfg.ramp_epochs / self.total_epochs)

    def draw_pairs(self, rng: random.Random) -> list[tuple[int, int]]:
        """m pairs uniformly over all pairs, without replacement (the authors'
        sampler favoured high indices); m = 0 or m >= #pairs means all pairs."""
        m = self.cfg.pairs
        if m <= 0 or m >= len(self.pairs):
            return list(self.pairs)
        return rng.sample(self.pairs, m)

    def batch(self, step: int) -> dict[str, Any]:
        """The regularizer batch of `step` (see `step_indices`), on the device."""
        if self._batches is None or step != self._next_step:
            # first call, a resumed run, or steps skipped while lambda was 0
            # Its own generator: drawing the workers' base seed from torch's global
            # generator would shift the training split's augmentation whenever a
            # resumed run re-creates this loader.
            loader = DataLoader(self.reg_set, num_workers=self.num_workers,
                                batch_sampler=_StepBatches(len(self.reg_set), self.batch_size,
                                                           self.seed, step),
                                collate_fn=default_collate,
                                generator=torch.Generator().manual_seed(self.seed * 7_919 + step),
                                worker_init_fn=quiet_on_sigterm,
                                pin_memory=self.device.type == "cuda")
            self._batches = iter(loader)
        batch = next(self._batches)
        self._next_step = step + 1
        return move(batch, self.device)

    def penalty(self, model: nn.Module, batch: dict[str, Any],
                pairs: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, int]:
        """Unweighted hinge sum over `pairs` and the number of violated pairs."""
        needed = sorted({k for p in pairs for k in p})
        x = self.task.inputs(batch)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        split = self.share_encoder and hasattr(model, "encode") and hasattr(model, "decode")
        feats = model.encode(x) if split else None
        losses = {}
        for k in needed:
            arch = self.landmarks[k][0]
            out = model.decode(feats, arch) if split else model(x, arch)
            losses[k] = self.task.loss(out, batch)
        hinge = [torch.relu(losses[i] - losses[j]) for i, j in pairs]
        total = torch.stack(hinge).sum()
        # The count is read back here, a device sync before backward is queued (which
        # the trainer otherwise avoids): it decides whether backward runs through the
        # landmarks' passes at all, which a satisfied pair's step saves (both costs:
        # benchmarks/RESULTS.md, part (b)); a sync costs the GPU the launch of
        # backward's first kernels.
        return total, sum(int(h.detach() > 0) for h in hinge)

    def __call__(self, model: nn.Module, step: int, total_steps: int):
        lam = self.lam(step, total_steps)
        if lam == 0.0 or not self.pairs:
            return None, {"lambda": lam}
        pairs = self.draw_pairs(seeded_rng(self.seed, "landmark pairs", step))
        r, violated = self.penalty(model, self.batch(step), pairs)
        term = lam * r
        if not violated:
            # Every hinge is exactly 0 and so is its gradient: cut the term from the
            # graph, so backward skips the regularizer's encoder and decoder passes.
            # (The only other effect: ops used by the landmarks alone get no
            # gradient, as for any op off the sampled path, instead of a zero one.)
            term = term.detach()
        return term, {"lambda": lam, "reg": float(r.detach()),
                      "reg_violated": violated / len(pairs)}
