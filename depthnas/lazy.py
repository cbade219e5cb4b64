"""A package's names imported from its modules when first asked for (PEP 562).

The search spaces' models and the data loaders import torch, timm, OpenCV and
albumentations: seconds of start-up that `depthnas --help`, naming or counting
architectures and checking a configuration do not need."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def exports_on_first_use(package: str, **modules: tuple[str, ...]
                         ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's module `__getattr__` and `__dir__`: each name in `modules[m]` is
    imported from `package.m` on first use, e.g. `model=("DepthNet",)`."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in home:
            return getattr(importlib.import_module(f"{package}.{home[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:  # tab completion lists the names before they load
        return sorted(set(vars(sys.modules[package])) | set(home))
    return __getattr__, __dir__
