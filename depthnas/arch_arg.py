"""An architecture given on the command line (--arch): its one-line string, its JSON,
or a file holding either (best_arch.json); which space it belongs to; errors that
name the file it came from."""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Iterator

from .io import read_text


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # e.g. "File name too long" for a DARTS Genotype(...) string
        return False


def _is_dir(text: str) -> bool:
    try:
        return Path(text).is_dir()
    except OSError:
        return False


def read_arch_arg(value: str) -> tuple[str, str | None]:
    """An --arch value: a file (best_arch.json, or a file holding the one-line string)
    or the architecture itself. Returns (the architecture's text, the file or None)."""
    from depthnas.spaces import ArchitectureError
    if not _is_file(value):
        if _is_dir(value):  # a run folder: its result is one level down
            best = Path(value) / "best_arch.json"
            hint = f": --arch {best}" if best.is_file() else " (a search run's best_arch.json)"
            raise FileNotFoundError(f"--arch {value} is a folder; name the architecture "
                                    f"file{hint}")
        if value.endswith(".json") or ("/" in value and ":" not in value):
            # a path, not an architecture string (those carry "space:" or no "/")
            raise FileNotFoundError(f"--arch {value}: no such file")
        return value, None
    text = read_text(value).strip()
    try:
        data = json.loads(text)
    except ValueError as err:
        if text.startswith("{"):
            raise ArchitectureError(f"--arch {value}: not valid JSON ({err})") from None
        if len(text.splitlines()) > 1:  # a config.yaml, a log: never an architecture
            raise ArchitectureError(f"--arch {value} holds {len(text.splitlines())} lines: an "
                                    "architecture file is a best_arch.json or holds the one-line "
                                    "string") from None
        return text, value  # the one-line string
    if isinstance(data, str):
        return data, value
    if not isinstance(data, dict):
        raise ArchitectureError(f"--arch {value} holds a JSON {type(data).__name__}; an "
                                "architecture file holds a JSON object (as best_arch.json "
                                "does) or the one-line string")
    return _from_run_file(data, value) or text, value


def _from_run_file(data: dict, value: str) -> str | None:
    """The architecture of a depthnas file that holds one without being an architecture
    JSON (a stand-alone result.json); an error naming the file to use for the files
    that hold many (a search's results, a landmark store). None for anything else."""
    from depthnas.spaces import ArchitectureError
    if "string" in data:
        return None
    if isinstance(data.get("arch"), str) and "val_loss" in data:  # a training's result.json
        return data["arch"]
    best = Path(value).parent / "best_arch.json"
    if isinstance(data.get("best"), dict) or "scores" in data:
        raise ArchitectureError(f"--arch {value} is a search's record of many architectures; "
                                f"its best is in {best}")
    if isinstance(data.get("entries"), list):
        raise ArchitectureError(f"--arch {value} is a landmark store of {len(data['entries'])} "
                                "architectures; pass one of its \"arch\" strings")
    return None


@contextlib.contextmanager
def naming_arch_file(source: str | None) -> Iterator[None]:
    """Errors about an architecture read from a file name that file."""
    from depthnas.spaces import ArchitectureError
    try:
        yield
    except ArchitectureError as err:
        if source is None:
            raise
        raise ArchitectureError(f"--arch {source}: {err}") from None


def _shown(text: str, limit: int = 80) -> str:
    """An architecture quoted in a message: a JSON one by its string, a long one cut
    with "..." (cut silently, an NB201 string read as complete and one edge short)."""
    shown = text.strip()
    if shown.startswith("{"):
        try:
            shown = str(json.loads(shown).get("string", shown))
        except (ValueError, AttributeError):
            pass
    return repr(shown if len(shown) <= limit else shown[:limit - 3] + "...")


def space_of(text: str, explicit: str | None, default: str, named_by: str | None = None) -> str:
    """The space an architecture belongs to: `explicit` if given (`named_by` says how,
    e.g. "--config run/config.yaml: space nb201"; default "--space NAME"), else what
    the text names (JSON "space", a "v1-sync:" prefix), else the one space whose
    parser accepts it (NB201's "|op~0|+..." and DARTS' "Genotype(...)" carry no name)."""
    from depthnas.spaces import ArchitectureError, list_spaces
    if explicit:
        readers = _readers(text.strip())
        if readers and explicit not in readers:
            raise ArchitectureError(f"architecture {_shown(text)} is one of space "
                                    f"{readers[0]}, not of {named_by or f'--space {explicit}'}")
        return explicit
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
            named = data.get("space")  # null names no space, as the spaces read it
            named = None if named is None else str(named)
        except ValueError:  # text from "{" is a JSON object, or no JSON at all
            return default  # parse() says what is wrong with it
        if named is not None:
            if named not in list_spaces():  # said as a string's unknown prefix is
                raise ArchitectureError(f"architecture JSON {_shown(text)}: its \"space\" {named!r} "
                                        f"does not exist (spaces: {', '.join(list_spaces())})")
            return named
        try:
            if "string" not in data:  # spelled out, unnamed: the space whose parser reads it
                accepted = _readers(stripped)
                return accepted[0] if len(accepted) == 1 else default
            stripped = str(data["string"])  # {"string": "v2-sync:..."} names it there
        except (ValueError, AttributeError):
            return default  # parse() says what is wrong with it
    head = stripped.split(":", 1)[0].strip()
    if ":" in stripped and head in list_spaces():
        return head
    if ":" in stripped and re.fullmatch(r"[A-Za-z][\w-]*", head):  # "v9:c3,..."
        raise ArchitectureError(f"architecture {stripped!r} names space {head!r}, which does not "
                                f"exist (spaces: {', '.join(list_spaces())})")
    accepted = _readers(stripped)
    if len(accepted) == 1:
        return accepted[0]
    # None reads it: let the parser of the space it looks like say what is wrong (a
    # depth space's "lacks the space prefix" would mislead about a broken NB201 cell).
    if ("|" in stripped or "~" in stripped) and "nb201" in list_spaces():
        return "nb201"
    if stripped.lower().startswith("genotype(") and "darts" in list_spaces():
        return "darts"
    return default


def _readers(text: str) -> list[str]:
    """The spaces whose parser reads `text` (a string or JSON)."""
    from depthnas.spaces import ArchitectureError, get_space, list_spaces
    accepted = []
    for name in list_spaces():
        try:
            get_space(name).parse(text)
            accepted.append(name)
        except (ArchitectureError, ValueError):
            pass
    return accepted
