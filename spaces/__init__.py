"""Search spaces, one registry: `get_space("v1-sync")`, `list_spaces()`.

A space knows nothing of training; the trainer sees only the SearchSpace interface.
"""
from __future__ import annotations

from typing import Callable

from .base import Arch, ArchitectureError, SearchSpace

_REGISTRY: dict[str, Callable[[], SearchSpace]] = {}


def register_space(name: str, factory: Callable[[], SearchSpace]) -> None:
    _REGISTRY[name] = factory


def list_spaces(task_kind: str | None = None) -> list[str]:
    """The registered spaces; with `task_kind` ("depth", "classification") those of it."""
    if task_kind is None:
        return list(_REGISTRY)
    kinds = {name: get_space(name).task_kind for name in _REGISTRY}
    if task_kind not in kinds.values():  # a typo would list no space, as if none were registered
        raise ValueError(f"unknown task kind {task_kind!r}; available: "
                         f"{', '.join(sorted(set(kinds.values())))}")
    return [name for name, kind in kinds.items() if kind == task_kind]


def get_space(name: str) -> SearchSpace:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; available: "
                         f"{', '.join(_REGISTRY)}") from None


def _register_builtin() -> None:
    from .depth.space import DepthSpace
    for version in (1, 2):
        for sync in (True, False):
            space_name = f"v{version}-{'sync' if sync else 'nonsync'}"
            register_space(space_name, lambda v=version, s=sync: DepthSpace(v, s))
    # Classification cell spaces (paper section 5.1-5.2) on the same machinery.
    from .darts.space import DartsSpace
    from .nb201.space import NB201Space
    register_space("nb201", NB201Space)
    register_space("darts", DartsSpace)


_register_builtin()

__all__ = ["Arch", "ArchitectureError", "SearchSpace", "get_space", "list_spaces",
           "register_space"]
