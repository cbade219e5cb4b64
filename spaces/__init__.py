"""Search spaces, one registry: `get_space("v1-sync")`, `list_spaces()`.

A space knows nothing of training; the trainer sees only the SearchSpace interface.
Spaces of other packages join the registry through the `depthnas.spaces` entry
point group (README: "A search space of your own"), or `register_space` in a script.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable

from .base import Arch, ArchitectureError, SearchSpace

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINTS = "depthnas.spaces"  # [project.entry-points."depthnas.spaces"] name = "module:Space"

_REGISTRY: dict[str, Callable[[], SearchSpace]] = {}
_BUILTIN: set[str] = set()  # filled below, by _register_builtin


def register_space(name: str, factory: Callable[[], SearchSpace]) -> None:
    """Make `factory()` (a SearchSpace subclass, or a function returning a space) the
    space `name` for this process: `get_space`, the CLI run from this script
    (`depthnas.cli.main([...])`) and `depthnas.pipeline.run` see it. A space installed
    with its package is declared as an entry point instead, so `depthnas` itself,
    torchrun and a later --resume, export or demo find it too. Registering a name again
    replaces it, as re-running a notebook cell that edits the space expects. A built-in
    space's name is refused: every run, model file and table that records it would be
    read with another space."""
    if is_builtin(name):
        raise ValueError(f"search space {name!r} is built into depthnas; register yours under "
                         "another name")
    _REGISTRY[name] = factory


def is_builtin(name: str) -> bool:
    """One of depthnas's own spaces (v1-sync, nb201, ...), which its tests cover."""
    return name in _BUILTIN


class SpaceLoadError(ValueError):
    """A space of the user's (installed, or registered by a script) that does not load:
    its own fault. Whatever lists every space (`depthnas spaces`, a table's rows of
    other spaces, `--arch` detection) goes on."""


@functools.cache
def _declared() -> dict[str, list[EntryPoint]]:
    """The spaces installed packages declare, read once, when first asked for (a
    scan of the installed packages at every import would slow every command); each
    name with every distinct declaration of it."""
    from importlib import metadata  # 20 ms of imports, which `depthnas --help` need not wait for
    found: dict[str, list[EntryPoint]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        same = [e for e in found.get(ep.name, []) if e.value == ep.value and _package(e) == _package(ep)]
        if not same:  # (one package found twice on the path declares it once)
            found.setdefault(ep.name, []).append(ep)
    return found


def _installed() -> dict[str, EntryPoint]:
    return {name: eps[0] for name, eps in _declared().items()}


def _package(ep: EntryPoint) -> str:
    return f"package {ep.dist.name}" if ep.dist is not None else "an installed package"


def _names() -> list[str]:
    return [*_REGISTRY, *(name for name in _installed() if name not in _REGISTRY)]


def list_spaces(task_kind: str | None = None) -> list[str]:
    """The registered spaces; with `task_kind` ("depth", "classification") those of it."""
    if task_kind is None:
        return _names()
    kinds = {space.name: space.task_kind for space in loaded_spaces()}
    if task_kind not in kinds.values():  # a typo would list no space, as if none were registered
        raise ValueError(f"unknown task kind {task_kind!r}; available: "
                         f"{', '.join(sorted(set(kinds.values())))}")
    return [name for name, kind in kinds.items() if kind == task_kind]


def loaded_spaces() -> list[SearchSpace]:
    """Every space that loads; one that does not (a SpaceLoadError) is left out here
    and said where it is asked for by name."""
    spaces = []
    for name in _names():
        try:
            spaces.append(get_space(name))
        except SpaceLoadError:
            pass
    return spaces


def get_space(name: str) -> SearchSpace:
    """The search space called `name`: a built-in (`depthnas spaces` lists them), one
    `register_space` registered in this process, or one a package declares under the
    entry-point group `depthnas.spaces`. An unknown name is a ValueError naming those
    there are."""
    if name in _REGISTRY:
        return _built(name, _REGISTRY[name], "registered by register_space")
    if name not in _installed():
        raise ValueError(f"unknown search space {name!r}; available: {', '.join(_names())}")
    declared = _declared()[name]
    if len(declared) > 1:  # which one loads would depend on the order of the path
        raise SpaceLoadError(f"search space {name!r} is declared by " + " and by ".join(
            f"{_package(ep)} as {ep.value!r}" for ep in declared) + ": uninstall one (runs "
            "record the name alone, so either would be read as the other)")
    ep = declared[0]
    return _built(name, lambda: ep.load()(), f"declared by {_package(ep)} as {ep.value!r}")


def _built(name: str, factory: Callable[[], SearchSpace], source: str) -> SearchSpace:
    """`factory()`, or a SpaceLoadError naming the space and where it comes from: a
    space of the user's built wrong (an abstract method left out) is its fault, said
    as such, not a traceback from deep inside the command that first lists spaces."""
    try:
        space = factory()
    except Exception as err:
        raise SpaceLoadError(f"search space {name!r}, {source}, does not load: "
                             f"{type(err).__name__}: {err}") from err
    if not isinstance(space, SearchSpace) or space.name != name:
        raise SpaceLoadError(f"search space {name!r}, {source}, gives {type(space).__name__} "
                             f"{getattr(space, 'name', None)!r}: a SearchSpace named {name!r} "
                             "was expected (its runs record the name)")
    return space


def _register_builtin() -> None:
    from .depth.space import DepthSpace
    for version in (1, 2):
        for sync in (True, False):
            space_name = f"v{version}-{'sync' if sync else 'nonsync'}"
            _REGISTRY[space_name] = lambda v=version, s=sync: DepthSpace(v, s)
    # Classification cell spaces (paper section 5.1-5.2) on the same machinery.
    from .darts.space import DartsSpace
    from .nb201.space import NB201Space
    _REGISTRY["nb201"] = NB201Space
    _REGISTRY["darts"] = DartsSpace
    _BUILTIN.update(_REGISTRY)


_register_builtin()

__all__ = ["Arch", "ArchitectureError", "SearchSpace", "SpaceLoadError", "get_space",
           "is_builtin", "list_spaces", "loaded_spaces", "register_space"]
