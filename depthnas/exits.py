"""How a command ends, on the terminal: a refused input as one plain line (not a
traceback), said once under torchrun rather than by every rank; a search or training
stopped half-way with the command that continues it; the exit code a shell sees. Log
lines take the same plain voice."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shlex
import sys
from pathlib import Path

from .io import WriteError, atomic_write_text
from .launch_env import env_rank, launched
from .runs import holds_run
from .stopping import Terminated


class _PlainFormatter(logging.Formatter):
    """Log lines in the voice of the CLI's own output: information as plain text,
    anything else prefixed with its level, as in 'warning: ...'."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno == logging.INFO else f"{record.levelname.lower()}: {text}"


def log_handler(verbose: bool) -> logging.Handler:
    """--verbose (debug) lines also name their logger."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if verbose
                         else _PlainFormatter("%(message)s"))
    return handler


def plain_message(err: BaseException) -> str:
    """An error raised in a DataLoader worker arrives as "Caught DatasetError in
    DataLoader worker process 1. Original Traceback ...": 30 lines of the worker's
    stack around the one that names the bad file. Keep that one. An error without
    words (an OSError raised bare) is named by its type."""
    text = str(err) or type(err).__name__
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return text
    ends = list(re.finditer(rf"^(?:[\w.]+\.)?{re.escape(type(err).__name__)}: ", text, re.M))
    return text[ends[-1].end():].strip() if ends else text


def say_once(message: str, wait_s: float = 3.0) -> None:
    """Print an error once per machine, not once per rank. Under torchrun every rank
    meets the same refusal (one config, one data set, the same checks): each machine's
    first rank (LOCAL_RANK 0; rank 0 on the first machine) says it and leaves a note in
    the machine's temporary folder; another rank says only what its machine's first
    did not say within `wait_s` (its own fault, such as a bad sample in its share of
    the work). Ranks of other machines cannot read the note: their first ones say it
    too, under their rank."""
    if not launched():
        print(message, file=sys.stderr)
        return
    import tempfile
    import time
    job = re.sub(r"\W", "_", f"{os.environ.get('TORCHELASTIC_RUN_ID', '')}-"
                              f"{os.environ.get('MASTER_ADDR', '')}-{os.environ.get('MASTER_PORT', '')}")
    note = Path(tempfile.gettempdir()) / f"depthnas-error-{job}"
    rank = env_rank()
    if os.environ.get("LOCAL_RANK", str(rank)) == "0":
        print(message if rank == 0 else f"rank {rank}: {message}", file=sys.stderr)
        with contextlib.suppress(OSError):
            atomic_write_text(note, message)  # whole, for a rank reading it meanwhile
        for old in note.parent.glob("depthnas-error-*"):  # earlier jobs': read long since
            with contextlib.suppress(OSError):
                if time.time() - old.stat().st_mtime > 3600:
                    old.unlink()
        return
    deadline = time.time() + wait_s
    while time.time() < deadline:
        with contextlib.suppress(OSError):
            if time.time() - note.stat().st_mtime < 60 and note.read_text() == message:
                return  # rank 0 said it
        time.sleep(0.1)
    print(f"rank {rank}: {message}", file=sys.stderr)


def result_stamp(command: str, out: str | Path) -> tuple[int, int] | None:
    """When and how large the result file of a search or training in `out` is (None:
    there is none), taken as the command starts: the result a resume finds there may
    be the one it is now redoing (its checkpoints or model removed)."""
    name = {"search": "results.json", "train": "result.json"}.get(command)
    try:
        stat = (Path(out) / name).stat() if name else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size) if stat else None


def resume_hint(args: argparse.Namespace) -> str:
    """How to continue a search or training stopped half-way ('' for other commands,
    for --print-config, and for work finished, by this command or before it: a reader
    that left as the last lines were printed stopped nothing)."""
    out = getattr(args, "resolved_out", None) or getattr(args, "out", None)
    if args.command not in ("search", "train") or not out or getattr(args, "print_config", False) \
            or getattr(args, "work_finished", False):
        return ""
    written = result_stamp(args.command, out)
    if written is not None and written != getattr(args, "result_at_start", None):
        return ""
    if not (Path(out) / "config.yaml").is_file():  # stopped before it kept anything
        return "nothing was kept yet: run the same command again, without --resume"
    command = f"depthnas {args.command} --out {shlex.quote(str(out))} --resume"
    if launched():  # by torchrun: relaunch so
        per_node = os.environ.get("LOCAL_WORLD_SIZE") or os.environ["WORLD_SIZE"]
        return (f"continue with: torchrun --nproc_per_node {per_node} -m {command} (another "
                "number of processes resumes it too)")
    return f"continue with: {command}"


def fixed_then(args: argparse.Namespace, err: BaseException) -> str:
    """A bad sample met mid-run (the regularizer's split is first read after every
    landmark has trained), or a file that could not be written (a full disk): the
    work done is kept, so say how to go on once that is fixed. Only for those, in a
    folder that holds work."""
    out = getattr(args, "resolved_out", None)
    if not (out and holds_run(out)):  # first: the rest loads OpenCV and torch
        return ""
    from depthnas.datasets.io import DatasetError
    hint = resume_hint(args) if isinstance(err, (DatasetError, WriteError)) else ""
    if not hint:
        return ""
    fixed = "the data is fixed" if isinstance(err, DatasetError) else "the file can be written"
    return f"\nthe work done so far is kept; once {fixed}, {hint}"


def lost_peers(err: RuntimeError) -> str | None:
    """Under torchrun, a rank whose collective broke because another rank failed gets
    gloo's or NCCL's error ("Connection closed by peer"), a traceback of 35 lines
    after the other rank's own clear message. One line saying so, or None for an
    error that is not a lost peer."""
    import torch.distributed as tdist
    text = str(err)
    if not launched() or not (
            isinstance(err, getattr(tdist, "DistError", ())) or
            any(k in text for k in ("gloo", "NCCL", "Connection closed by peer"))):
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    waited = " (DEPTHNAS_DIST_TIMEOUT_S sets how long ranks wait)" if "imed out" in text else ""
    return (f"rank {env_rank()}: the ranks lost contact ({first[:200]}){waited}; "
            "an error another rank printed above, if any, is the cause")


def stopped_message(args: argparse.Namespace, stop: KeyboardInterrupt) -> str | None:
    """What a stopped search or training prints: once, by rank 0 under torchrun."""
    if env_rank() != 0:
        return None
    hint = resume_hint(args)
    said = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
    return f"\n{said}{'; ' + hint if hint else ''}"


def stopped(args: argparse.Namespace, stop: KeyboardInterrupt) -> int:
    """Say that the run stopped, and how to go on; the exit code a shell reports."""
    message = stopped_message(args, stop)
    if message is not None:
        print(message, file=sys.stderr)
    return 143 if isinstance(stop, Terminated) else 130
