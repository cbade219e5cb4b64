"""The landmark store: the stand-alone results of trained architectures (landmarks,
a search's picks, ranking samples), kept in one JSON file that runs share and
extend, under a lock, each entry under its training recipe."""
from __future__ import annotations

import datetime as _dt
import math
import os
from pathlib import Path
from typing import Any

from depthnas.spaces import SearchSpace, get_space

from .io import WriteError, atomic_write_json, read_json
from .recipe import same_recipe


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
            data = read_json(self.path, expect=dict, unique_keys=True)
        except ValueError as err:
            raise ValueError(f"landmark store {err} ({shape})") from None
        if "entries" not in data:  # a search's results.json is the likeliest such file
            runs = data.get("architectures")
            hint = ("; this is a search's results.json: its landmarks.json, beside it, is the "
                    "store" if isinstance(runs, list) else
                    "; this is a benchmark's table: give it as --set search.truth_table=FILE, "
                    "whose rows stand in for trainings" if isinstance(runs, dict) else "")
            raise ValueError(f"landmark store {self.path} holds no 'entries' ({shape}){hint}")
        entries = data["entries"]
        if not isinstance(entries, list):
            raise ValueError(f"landmark store {self.path}: 'entries' must be a list ({shape})")
        kept: dict[tuple[str, str], dict[str, Any]] = {}  # one per arch and recipe
        first: dict[tuple[str, str], int] = {}
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
            key = _key(e)
            if key in kept and kept[key]["val_loss"] != e["val_loss"]:
                # one would be taken and the other dropped at the next write, unsaid
                raise ValueError(f"{where} ({entries[i]['arch']!r}, val_loss {e['val_loss']}) is entry "
                                 f"{first[key]}'s architecture under the same recipe, with "
                                 f"val_loss {kept[key]['val_loss']}: keep the one that is right")
            kept[key] = e
            first.setdefault(key, i)
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
        problem = _entry_problem(entry)
        if problem:  # written, every later read of the store (any run's) would refuse it
            raise ValueError(f"landmark store {self.path}: the result of {arch_string} {problem}; "
                             "not stored")
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
        lock_path = lock_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(lock_path, "a")
        except OSError as err:  # made read-only since the start's check, say: named, kept
            raise WriteError(lock_path, f"the landmark store's lock: {err.strerror or err}",
                             err.errno) from err
        with lock:
            try:
                import fcntl
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            except ImportError:  # not POSIX: no lock; the merge still narrows the window
                pass
            mine = {_key(e) for e in self.entries}
            theirs = [e for e in self._read() if _key(e) not in mine]
            atomic_write_json(self.path, {"version": 1, "entries": theirs + self.entries})


def lock_file(store: Path) -> Path:
    """The file runs sharing `store` take turns on (it must be writable too)."""
    return store.with_name(f".{store.name}.lock")


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
