"""Run folders: which command made one, whether work has started there, and the
guards a command passes before it works in one (kind, fresh start, one process)."""
from __future__ import annotations

import contextlib
import os
import shlex
from pathlib import Path
from typing import Iterator

from .config import ConfigError
from .io import is_left_by_a_killed_write, read_json
from .terminal import listed

# Once work has started a folder holds one of these. config.yaml, splits.json and the
# drawn initial_landmarks.json alone are a start that failed before any training:
# starting over loses nothing, and must not inherit the failed start's landmarks, nor
# be held to its split (the data may have been fixed since, as its error advised).
# (A search's standalone/ counts once one of its trainings holds a marker: see holds_run.)
RUN_MARKERS = ("checkpoints", "metrics.jsonl", "result.json", "results.json")
FAILED_START_LEFTOVERS = ("initial_landmarks.json", "splits.json", "latency.json")
# The model a run produces: a search's best architecture, trained; a training's own.
SEARCH_MODEL = "best/model.safetensors"
TRAIN_MODEL = "model.safetensors"
# What `depthnas train` trains, written before anything else: a run stopped before its
# first checkpoint still says which architecture `--resume` continues.
ARCH_FILE = "arch.json"
# Files only one command writes.
KIND_MARKERS = {"search": ("standalone", "results.json", "initial_landmarks.json", "best_arch.json"),
                "train": ("result.json", TRAIN_MODEL)}


def run_kind(out: str | Path) -> str | None:
    """'search' or 'train' for a folder one of them has worked in, else None. A training
    stopped before its first result is known by its checkpoints, which name the
    architecture (a super-net's name none), or by the arch.json it starts with."""
    out = Path(out)
    for kind, markers in KIND_MARKERS.items():
        if any((out / m).exists() for m in markers):
            return kind
    try:
        return "train" if trained_arch(out) else None
    except ValueError:  # a damaged checkpoint: the loader names it when it is read
        return None


def check_kind(out: Path, command: str, resume: bool) -> None:
    """A search must not resume (or start in) a training's folder, nor the reverse:
    the wrong command's errors would advise deleting a folder that holds a model."""
    kind = run_kind(out)
    if kind is not None and kind != command:
        hint = (f" (or continue it with `depthnas {kind} --out {shlex.quote(str(out))} --resume`)"
                if resume else "")
        raise ConfigError(f"{out} is a `depthnas {kind}` run, not a {command} run; "
                          f"choose another --out (cfg.out){hint}")


def holds_run(out: str | Path) -> bool:
    """Whether work has started in `out` (more than a failed start's leftovers). A
    search's standalone/ counts once one of its trainings has: a first landmark that
    failed on a bad sample leaves only its config.yaml there."""
    out = Path(out)
    if (out / "standalone").is_dir():
        if any(holds_run(d) for d in (out / "standalone").iterdir() if d.is_dir()):
            return True
    return any((out / m).exists() for m in RUN_MARKERS)


def check_resumable(out: Path) -> None:
    """A resume needs the run's config.yaml, which holds every setting it goes on with."""
    if (out / "config.yaml").is_file():
        return
    if holds_run(out):
        raise ConfigError(f"the run in {out} has lost its config.yaml, which holds every setting "
                          "it resumes with: put it back (from a copy of the run) to resume, or "
                          "start a new run in another --out (cfg.out)")
    raise ConfigError(f"nothing to resume in {out} (no config.yaml): check the folder name, or "
                      "drop --resume (resume=True) to start a run there")


def guard_out(out: Path, resume: bool) -> None:
    """Before the run lock: a fresh start must not take a run's folder, nor any folder
    of other files. It writes config.yaml, splits.json, report.md, ... over files of
    those names, and removes a failed start's leftovers and killed writes'
    temporaries: in a folder no depthnas start has locked, those are the user's.
    (A resume needs the folder's config.yaml, and a run copied without its lock file
    still resumes.)"""
    if resume:
        return
    if holds_run(out):
        raise ConfigError(f"{out} already holds a run; pass --resume (resume=True) to continue "
                          "it, or choose another --out (cfg.out)")
    if out.is_dir() and not (out / ".depthnas.lock").exists():
        # hidden files (.DS_Store, .gitkeep) are no one's work a start could write over
        found = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        if found:
            raise ConfigError(f"{out} holds files of its own ({listed(found)}) "
                              "and no depthnas run; a run writes config.yaml, splits.json, "
                              "report.md and more there, over files of those names: choose a "
                              "new or empty --out (cfg.out)")


def clear_failed_start(out: Path, resume: bool, config: str | None = None) -> None:
    """A fresh start in a folder a failed start left: its drawn landmarks go, and its
    config.yaml, which a stop of this start before writing its own would otherwise
    offer to --resume (with the failed start's settings) -- unless it is the
    `--config` this start reads, the user's. Called holding the run lock, so a run
    still starting there keeps its own."""
    from . import distributed
    if not resume and distributed.is_main():
        for leftover in (*FAILED_START_LEFTOVERS, "config.yaml"):
            path = out / leftover
            with contextlib.suppress(OSError):
                if config and path.samefile(config):
                    continue
            path.unlink(missing_ok=True)


def _sweep_temporaries(out: Path) -> None:
    """What writes killed mid-way left (each up to a model's size): nothing else would
    ever remove it."""
    for path in out.rglob(".*"):
        if is_left_by_a_killed_write(path.name) and path.is_file():
            path.unlink(missing_ok=True)


def claim_folder(out: Path) -> tuple[Path, Path]:
    """`out`, or else `out-2`, `out-3`, ...: the first that did not exist, made here;
    and the outermost folder made for it (a parent, where `runs/` was missing), which
    a refused start takes away again. Runs started in the same second (a script's
    seeds, launched together) get one folder name from the clock
    (`config.default_out`); here each gets its own."""
    parent_made = _first_missing(out.parent)
    folder, k = out, 1
    while True:
        try:
            folder.mkdir(parents=True)
            return folder, parent_made or folder
        except FileExistsError:
            k += 1
            folder = out.with_name(f"{out.name}-{k}")


@contextlib.contextmanager
def run_folder(out: Path, resume: bool, *, made_from: Path | None = None,
               config: str | None = None) -> Iterator[Path]:
    """Where a search or a training runs, once every check has passed: a fresh start
    refused a run's folder or one of other files (`guard_out`), the folder locked
    while the work runs in it, a failed start's leftovers cleared (`config`: the
    --config file the start reads, kept), and every rank past these before rank 0
    writes there. `made_from`: the outermost folder made for `out` (see run_lock)."""
    from . import distributed
    guard_out(out, resume)
    with run_lock(out, made_from):
        clear_failed_start(out, resume, config)
        distributed.barrier()
        yield out


@contextlib.contextmanager
def run_lock(out: Path, made_from: Path | None = None) -> Iterator[None]:
    """One process (or one torchrun job, through its rank 0) per run folder: two
    writing the same checkpoints, store and results leave them inconsistent.
    `made_from`: the outermost folder this command made for `out` (default: those
    made here, where `out` or its parents do not exist yet)."""
    from . import distributed
    if not distributed.is_main():
        yield
        return
    import fcntl
    # what a refused start takes away again: the folders it makes (parents too), or in
    # an empty folder the user made, its own files
    made_from = made_from or _first_missing(out)
    was_empty = out.is_dir() and not any(out.iterdir())
    out.mkdir(parents=True, exist_ok=True)
    lock = out / ".depthnas.lock"
    with open(lock, "a+") as fh:
        try:
            # a POSIX lock, not flock: forked DataLoader workers inherit the file but not
            # this lock, so after a kill -9 they no longer hold the folder for seconds
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):  # EAGAIN or EACCES, by platform
            fh.seek(0)
            holder = (fh.read().split() or ["?"])[0]
            raise ConfigError(f"{out} is in use by another depthnas process (pid {holder}); "
                              "wait for it to end, or choose another --out (cfg.out)") from None
        fh.seek(0)
        fh.truncate()
        # the start time beside the pid tells this run from a later process given its pid
        fh.write(f"{os.getpid()} {_process_start(os.getpid()) or ''}".rstrip() + "\n")
        fh.flush()
        _sweep_temporaries(out)  # held: no other process is writing them
        try:
            yield  # the lock goes with the file's closing, also when the process dies
        except Exception:
            # a start refused inside the lock (a budget no architecture meets, data not
            # found) left a folder of its own making with nothing of value in it:
            # removed while held. Not a stopped one (Ctrl-C, SIGTERM, KeyboardInterrupt's
            # kin): its resume command names this folder.
            if made_from is not None or was_empty:
                _remove_failed_start(out, made_from)
            raise


# What a start writes before any work: a folder holding only these lost nothing.
STARTING_FILES = {".depthnas.lock", "config.yaml", ARCH_FILE, *FAILED_START_LEFTOVERS}


def _first_missing(out: Path) -> Path | None:
    """The outermost of `out` and its parents that does not exist: where
    mkdir(parents=True) starts making folders."""
    missing = None
    for folder in (out, *out.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_failed_start(out: Path, made_from: Path | None) -> None:
    """Remove what a refused start wrote in `out`, and the folders it made from
    `made_from` down (None: `out` is the user's, and stays)."""
    files = [p for p in out.rglob("*") if not p.is_dir()]
    if holds_run(out) or any(p.name not in STARTING_FILES for p in files):
        return
    for f in files:
        f.unlink()
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    if made_from is None:
        return
    for folder in (out, *out.parents):
        with contextlib.suppress(OSError):  # something arrived meanwhile: keep it
            folder.rmdir()
        if folder == made_from:
            break


def trained_arch(out_dir: str | Path) -> str | None:
    """The architecture a training folder holds (finished, checkpointed, or named by
    the arch.json `depthnas train` writes as it starts), if any."""
    out_dir = Path(out_dir)
    if (out_dir / "result.json").is_file():
        try:
            return read_json(out_dir / "result.json", expect=dict).get("arch")
        except ValueError:  # damaged: the training sets it aside and says so
            pass
    if (out_dir / "checkpoints").is_dir():  # the reader imports torch: only when there is one
        from .checkpoint import Checkpointer
        meta = Checkpointer(out_dir / "checkpoints").latest_metadata()
        if meta is not None:
            return meta.get("arch")
    if (out_dir / ARCH_FILE).is_file():
        found = read_json(out_dir / ARCH_FILE)
        return found.get("string") if isinstance(found, dict) else None
    return None


def _process_start(pid: int) -> str | None:
    """When `pid` started, in clock ticks since boot (/proc/<pid>/stat's 22nd field),
    where /proc tells: with the pid, it names one process for the machine's uptime."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the name in (...) may hold spaces
    return fields[19] if len(fields) > 19 else None


def running_holder(out: Path) -> int | None:
    """The pid of another process working in `out` now: the one its run lock names,
    if it holds the lock (/proc/locks tells: the file stays when a run ends, and a
    notebook that ran one lives on). Where that is unknown, the pid if alive and
    started when the lock says, or (a lock of an older version: the pid alone) if its
    command is a depthnas. Read, not locked: closing a probe of a POSIX lock would
    drop this process's own locks."""
    lock = out / ".depthnas.lock"
    try:
        recorded = lock.read_text().split()
        pid = int(recorded[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return None
    held = _holds_lock(pid, lock)
    if held is not None:
        return pid if held else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    started = _process_start(pid)
    if started is None:  # no /proc: alive is all there is to know
        return pid
    if len(recorded) > 1:  # pid and start name one process: the lock's, or one given the pid since
        return pid if recorded[1] == started else None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # ended since
        return None
    # `depthnas ...` or `python -m depthnas ...`; a pid reused since the run ended is
    # (mostly) another program. Whole arguments: a python in ~/depthnas/.venv is none.
    return pid if any(Path(os.fsdecode(arg)).name == "depthnas" for arg in command.split(b"\0")) else None


def _holds_lock(pid: int, lock: Path) -> bool | None:
    """Whether `pid` holds a POSIX lock on the file `lock`, from /proc/locks (Linux);
    None where that cannot be read."""
    try:
        inode = str(lock.stat().st_ino)
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in table.splitlines():
        # "1: POSIX  ADVISORY  WRITE 1234 fe:00:2146875 0 EOF" (a waiter's has "->")
        fields = line.split()
        if (len(fields) > 5 and fields[1] == "POSIX" and fields[4] == str(pid)
                and fields[5].rsplit(":", 1)[-1] == inode):
            return True
    return False
