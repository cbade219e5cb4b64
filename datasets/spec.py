"""A data spec, `KIND` or `KIND:PATH`, read without torch or OpenCV. The loaders and
the configuration check share this one reader, so a typo in a kind or a path is said
before the seconds those imports take, and in the loaders' own words."""
from __future__ import annotations

from pathlib import Path

__all__ = ["CLASSIFICATION_KINDS", "DEPTH_DATA_KINDS", "KINDS_READ_FROM_A_PATH",
           "data_path_problem", "is_classification_spec", "parse_spec", "split_spec"]

DEPTH_DATA_KINDS = ("synthetic", "redweb", "nyuv2", "diode", "folder")
CLASSIFICATION_KINDS = ("digits", "cifar10")
_EMBEDDED = ("synthetic", "digits")  # rendered or shipped with depthnas: no path
KINDS_READ_FROM_A_PATH = tuple(k for k in DEPTH_DATA_KINDS + CLASSIFICATION_KINDS
                               if k not in _EMBEDDED)
# read from a folder (NYUv2's path may be its labelled .mat file)
_FOLDER_KINDS = ("redweb", "diode", "folder", "cifar10")


def split_spec(spec: str) -> tuple[str, str]:
    """A spec's kind (lower case) and path ("" for none), unchecked:
    `Folder: x/` -> ("folder", "x/")."""
    kind, _, path = spec.partition(":")
    return kind.strip().lower(), path.strip()


def is_classification_spec(spec: str) -> bool:
    return split_spec(spec)[0] in CLASSIFICATION_KINDS


def parse_spec(spec: str, depth_kind: str = "depth", *,
               classification: bool = False) -> tuple[str, str]:
    """(kind, path) of depth data or, with `classification`, of labelled images; a
    ValueError names what is wrong with the spec."""
    kind, path = split_spec(spec)
    if classification:
        if kind not in CLASSIFICATION_KINDS:
            raise ValueError(f"unknown classification dataset {spec!r}; expected 'digits' or "
                             "'cifar10:PATH'")
    elif kind in CLASSIFICATION_KINDS:  # build_splits("digits") from Python, say
        raise ValueError(f"{spec!r} is classification data (labelled images), not depth data: "
                         "depthnas.datasets.classification.build_classification_splits reads it")
    elif kind not in DEPTH_DATA_KINDS:
        raise ValueError(f"unknown dataset kind {spec.partition(':')[0].strip()!r} in spec "
                         f"{spec!r}; known kinds: "
                         f"{', '.join(DEPTH_DATA_KINDS)} (use 'synthetic' or 'KIND:PATH'"
                         + (f"; a folder of your own is 'folder:{spec}')" if _a_bare_path(spec) else ")"))
    elif depth_kind != "depth" and kind != "folder":  # it would be ignored, silently
        held = "synthetic scenes hold" if kind == "synthetic" else f"{kind}: files hold"
        raise ValueError(f"depth kind {depth_kind!r} applies to folder: data; {held} a known "
                         "kind (leave --depth-kind / data.depth_kind unset)")
    if kind in _EMBEDDED and path:
        raise ValueError(f"{kind!r} is embedded and takes no path, got spec {spec!r}")
    if kind not in _EMBEDDED and not path:
        needs = ("the folder of the CIFAR-10 python batches" if kind == "cifar10"
                 else "a path")
        raise ValueError(f"spec {spec!r} needs {needs}: '{kind}:PATH'")
    return kind, path


def _a_bare_path(spec: str) -> bool:
    """A spec that is a path given without its kind (`data/mine`, `~/mine`, or `mine`
    where a folder of that name is): no colon, and a slash or a folder there."""
    return ":" not in spec.strip() and ("/" in spec or "\\" in spec or Path(spec).expanduser().is_dir())


def data_path_problem(spec: str) -> str | None:
    """What is wrong with the path a KIND:PATH spec names: nothing there (a typo), or a
    file where the kind reads a folder; else None. Said before the loaders and their
    imports, and before a run folder is made. An unknown kind, or a path given to a kind
    that takes none, is parse_spec's to name."""
    kind, path = split_spec(spec)
    if kind not in KINDS_READ_FROM_A_PATH or not path:
        return None
    found = Path(path).expanduser()
    if not found.exists():
        return f"no such file or folder {path}"
    if kind in _FOLDER_KINDS and not found.is_dir():
        return f"{path} is a file; {kind} data is read from a folder"
    return None
