"""The file helpers every command uses: atomic writes (a crash mid-write never leaves
a truncated file behind), text, JSON and JSON-lines reads that name the file in every
error, and checks of the paths options name."""
from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, Callable


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def path_arg(text: str) -> str:
    """argparse type of a file or folder option. An empty one is refused: it is
    usually a script's unset variable, and read as "." it would predict the whole
    current folder, or write into it."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path (an unset variable in a script?)")
    return text


def read_text(path: str | Path) -> str:
    """A text file's content; a binary or non-UTF-8 file is named in the error."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "true or false", type(None): "null"}


def read_json(path: str | Path, unique_keys: bool = False, expect: type | None = None) -> Any:
    """A JSON file's content; a damaged or non-JSON file is named in the error.
    unique_keys: an object that repeats a key is an error (JSON itself keeps the
    last one silently), for files people write by hand. expect: dict or list, the
    top level a file must have (a run file of the wrong shape would otherwise raise
    a TypeError or KeyError that names no file)."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"{path}: key {key!r} is listed a second time")
            out[key] = value
        return out
    try:
        data = json.loads(read_text(path), object_pairs_hook=pairs if unique_keys else None)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if expect is not None and not isinstance(data, expect):
        raise ValueError(f"{path}: expected a JSON {_JSON_NAMES[expect]}, found "
                         f"{_JSON_NAMES.get(type(data), type(data).__name__)}")
    return data


def default_permissions(path: str | Path) -> None:
    """Give an owner-only file or folder (`temporary_beside`'s) the permissions
    open()/mkdir() would have given it, before it is renamed into place."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~_UMASK)


def check_parent_folders(path: str | Path, flag: str = "--out") -> None:
    """A path below a file, or a link to nowhere, or in a folder this user may not
    write in, can only fail when it is written, after the work is done: say so
    before it starts."""
    for place in (Path(path), *Path(path).parents):
        if place.is_symlink() and not place.exists():  # mkdir would say "File exists"
            raise ValueError(f"{flag} {path}: {place} is a symbolic link to "
                             f"{os.readlink(place)}, which does not exist")
    if Path(path).is_dir():  # written in, not made: its own parent may be read-only
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{flag} {path}: no permission to write in {path}")
        return
    for parent in Path(path).parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"{flag} {path}: no permission to write in {parent}")
            return


def check_file_to_write(path: str | Path, flag: str) -> None:
    """A file a command writes at the end of its work: a folder there, or a path
    below a file or where this user may not write, fails only then; said before."""
    if Path(path).is_dir():
        raise ValueError(f"{flag} {path} is a folder; name the file to write")
    check_parent_folders(path, flag)


def finite_json(obj: Any) -> Any:
    """NaN/inf -> None throughout (dicts, lists), so the JSON written is valid for
    strict parsers too: json.dumps writes a bare NaN."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def check_out_file(out: str | None, example: str, report_keys: tuple[str, ...] = ()) -> Path | None:
    """--out names a JSON file to write (`example`: its usual name); a folder would fail
    only after the work, when the file is written. A file there already is replaced
    only when it is an earlier report of the command (a JSON object with all of
    `report_keys`): --out model.safetensors or config.yaml wrote over the run's own."""
    if out is None:
        return None
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        raise ValueError(f"--out {out} is a folder; name the JSON file to write "
                         f"(e.g. {path / example})")
    if path.exists():
        st = os.stat(path)  # through a link: a link to an empty file is one
        if not stat.S_ISREG(st.st_mode):  # /dev/null, a pipe: reading it would block
            raise ValueError(f"--out {out} is not a regular file (a device or a pipe): name a "
                             f"JSON file to write (e.g. {example})")
        # an empty file holds nothing to lose (`--out "$(mktemp)"` names one)
        if st.st_size and not _holds_keys(path, report_keys):
            raise ValueError(f"--out {out} exists and is not an earlier {example} report: not "
                             "overwritten (name a new file, or remove it first)")
    check_parent_folders(path)
    return path


def _holds_keys(path: Path, keys: tuple[str, ...]) -> bool:
    try:
        if path.stat().st_size > 64 * 2**20:  # a model, a video: no report is this large
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON
        return False
    return isinstance(data, dict) and all(k in data for k in keys)


class WriteError(OSError):
    """A file that could not be written (a full disk, a quota): its message names the
    file, where the writer's own (safetensors', torch.save's) did not."""

    def __init__(self, path: str | Path, reason: str, code: int | None = None):
        super().__init__(code, reason)  # errno and strerror, as an OSError has them
        self.path = path

    def __str__(self) -> str:
        return f"cannot write {self.path} ({self.strerror})"


# The OS errors of a write that ran out of room, as a writer's own error quotes them
# (safetensors: "... Os { code: 122, ..., message: \"Disk quota exceeded\" }")
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _write_failure(path: Path, err: Exception) -> WriteError | None:
    """`err` of a writer as a WriteError naming the file, if it is one: an OSError, an
    error quoting one of running out of room (a full disk, a cluster's quota, a
    `ulimit -f`), or torch.save's "unexpected pos", a write that stopped short, which
    says nothing more. None for other errors, which are the writer's own."""
    if isinstance(err, OSError) and err.strerror:
        return WriteError(path, err.strerror, err.errno)
    text = str(err)
    for code in _NO_ROOM:
        if os.strerror(code) in text:
            return WriteError(path, os.strerror(code), code)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and free < 2**20:
        return WriteError(path, f"no space left on the device: {free} bytes free", errno.ENOSPC)
    if "unexpected pos" in text:
        return WriteError(path, "the write stopped short: a quota or a file-size limit reached?",
                          errno.EIO)
    return None


# The temporary files a write killed mid-way (kill -9, power loss) leaves: atomic_write's
# own (".model.safetensors.3f9a01c2.tmp"; mkstemp's, before: ".model.safetensors.k3j_x9a1.tmp")
# and the one safetensors writes before it renames (".tmpAb12Cd").
_KILLED_WRITE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$|^\.tmp[A-Za-z0-9]{6}$")


def is_left_by_a_killed_write(name: str) -> bool:
    return _KILLED_WRITE.match(name) is not None


def temporary_beside(path: Path, folder: bool = False, suffix: str = ".tmp") -> Path:
    """A new empty owner-only file (or folder) beside `path`, to be renamed over it.
    Named before it is made: a Ctrl-C or SIGTERM that arrived while mkstemp (mkdtemp)
    made one was raised inside it, before its name reached the caller's cleanup, and
    a stopped training kept it."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            if folder:
                os.mkdir(tmp, 0o700)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return tmp
        except FileExistsError:
            continue
        except OSError as err:  # it named the hidden temporary file, not the one asked for
            raise type(err)(f"cannot write {path} ({err.strerror})") from None
        except BaseException:
            if folder:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            raise


def atomic_write(path: str | Path, write: Callable[[str], None], *, fsync: bool = True) -> Path:
    """Call write(tmp_path) on a temporary file in the target folder, fsync it,
    then rename it over `path` (rename is atomic on one filesystem). The file gets
    the permissions open() would give it (the temporary one is owner-only, 0600).
    fsync=False for outputs that can be made again: a kill still leaves no torn
    file under the name, only a power loss can."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = str(temporary_beside(path))
    try:
        write(tmp)
        default_permissions(tmp)  # after: a writer may replace the file it was given
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except Exception as err:
        failed = _write_failure(path, err)  # asked before the partial file goes
        Path(tmp).unlink(missing_ok=True)
        if failed is None:
            raise
        raise failed from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line. A last line a kill cut short gets its newline first, so
    the new record starts a line of its own instead of gluing onto the torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as fh:
        torn = False
        if fh.seek(0, os.SEEK_END) > 0:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
        fh.write((b"\n" if torn else b"") + (json.dumps(record) + "\n").encode())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log. A line that does not decode (a write cut by a
    kill) is skipped with a warning naming it: the log is a record, not a resume state."""
    records = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            why = str(err)
        else:
            if isinstance(record, dict):
                records.append(record)
                continue
            why = "not an object"
        logging.getLogger(__name__).warning("%s line %d: skipped, not a JSON record (%s)",
                                                 path, number, why)
    return records


def drop_jsonl_records(path: str | Path, stale: Callable[[dict[str, Any]], bool],
                       replacement: dict[str, Any] | None = None) -> int:
    """Rewrite a JSON-lines log (atomically) without the records `stale` picks; lines
    that are not JSON records stay. With `replacement`, it takes the first dropped
    record's place. Returns how many records were dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in read_text(path).splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and stale(record):
            if not dropped and replacement is not None:
                kept.append(json.dumps(replacement))
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        atomic_write_text(path, "".join(line + "\n" for line in kept))
    return dropped
