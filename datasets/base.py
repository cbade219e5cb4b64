"""Shared machinery of the on-disk loaders: sample references, readers, validation, Dataset.

A *reader* knows one on-disk layout. ``index()`` pairs files by name only (cheap: no
file is opened), ``read()`` loads one sample's arrays, and :meth:`Reader.load` turns
them into the common raw form ``(rgb uint8 HxWx3, disparity float32 HxW, valid bool
HxW)`` after the content checks every format shares.
"""
from __future__ import annotations

import logging
import os
import shlex
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from depthnas.terminal import listed

from .io import DatasetError, exif_orientation, hidden
from .transforms import SampleTransform

__all__ = ["SampleRef", "Reader", "RawSample", "PairedDepthDataset", "logger", "by_key", "pair_by_stem",
           "files_with_suffix", "hidden", "unread_beside", "walk_folders"]

logger = logging.getLogger(__name__)

RawSample = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SampleRef:
    """One sample on disk.

    ``id`` is stable across machines (a path relative to the dataset root, or
    ``file.mat#index``) and is what split manifests record. ``group`` names the scene:
    samples of one group always land in the same split, so near-duplicate video frames
    cannot leak from train into validation.
    """

    id: str
    image: str
    depth: str
    mask: str | None = None
    group: str = ""
    index: int = -1  # position inside a container file (NYUv2 .mat)


class Reader(ABC):
    """One dataset layout rooted at ``root``.

    ``value_kind`` says what ``read`` returns: metric ``"depth"`` (converted to
    1/depth) or ``"disparity"``-like values (larger = closer, used as they are).
    """

    kind: str = ""
    value_kind: str = "depth"
    value_label: str = ""  # what `depthnas data` calls the values read, when not value_kind
    layout: str = ""  # the files it pairs, for "no usable samples" (README's words)
    # which pixels count as measured, for "has no valid pixel" (where the format's rule
    # is not plain "a finite value > 0")
    validity: str = ""
    path_is: str = "a folder"  # what KIND:PATH may name

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        # what `index` left out on purpose and warned of (not bad samples): shown by
        # `depthnas data` beside the samples it read
        self.not_read: list[str] = []

    def require_dir(self, path: Path, what: str) -> Path:
        """`path` if it is a folder, else a DatasetError that says where the data may be:
        a --data pointing one level off (the data set's parent, or its images/ folder)
        is the common slip."""
        if path.is_dir():
            return path
        if self.root.is_file():
            raise DatasetError(f"{self.kind}: {self.root} is a file; {self.kind}:PATH names "
                               f"{self.path_is}")
        if not self.root.is_dir():
            raise DatasetError(f"{self.kind}: data folder not found: {self.root}")
        said = f"{self.kind}: {what} folder not found: {path}"
        if (self.root.parent / path.name).is_dir():  # --data named images/, or depth/ beside it
            inside = (f"the {what} folder itself" if self.root.name == path.name else
                      f"a folder beside the {what} folder")
            said += f" ({self.root} is {inside}: pass {self.root.parent})"
        else:
            below = sorted(d for d in self.root.iterdir() if _is_dir(d / path.name))
            if below:
                said += f" (found in {listed(below)}: pass one of those)"
        layout = self.nothing_found()
        raise DatasetError(said + (f"; {layout}" if layout else ""))

    def rel(self, path: Path) -> str:
        """Path relative to the dataset root, POSIX style (portable manifest ids)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def nothing_found(self) -> str:
        """What to say when `index` finds no sample: the layout it looks for."""
        return f"{self.kind} looks for {self.layout}" if self.layout else ""

    def no_samples(self, where: str, what: str = "usable samples") -> DatasetError:
        """The error for a data set with nothing to read, saying the layout looked for."""
        hint = self.nothing_found()
        return DatasetError(f"{where}: no {what} found" + (f" ({hint})" if hint else ""))

    @abstractmethod
    def index(self) -> tuple[list[SampleRef], list[str]]:
        """Pair files by name. Returns (samples, problems); each problem names a file."""

    @abstractmethod
    def read(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb uint8 HxWx3, values float HxW, format-specific valid mask bool HxW)."""

    def load(self, ref: SampleRef) -> RawSample:
        """Read one sample and check its content; raises DatasetError naming the file."""
        try:
            rgb, values, valid = self.read(ref)
        except DatasetError:
            raise
        except (OSError, ValueError, EOFError, MemoryError, cv2.error) as err:
            # what a decoder raises on a file no check here foresaw: said with the
            # sample's files, and skipped by --skip-bad as any other bad sample
            files = ", ".join(dict.fromkeys(p for p in (ref.image, ref.depth, ref.mask) if p))
            raise DatasetError(f"cannot read sample {ref.id} ({files}): "
                               f"{type(err).__name__}: {err}") from err
        if values.shape != rgb.shape[:2]:
            raise DatasetError(
                f"depth map {ref.depth} is {values.shape[1]}x{values.shape[0]} (WxH) but its image "
                f"{ref.image} is {rgb.shape[1]}x{rgb.shape[0]}"
                + _turned_hint(ref.image, values.shape, rgb.shape)
            )
        values = values.astype(np.float32, copy=False)
        # NaN is not a convention for "unknown" in any of the formats (they use 0, inf or a
        # mask), so NaN where the format says "valid" signals a broken export; under the
        # format's own invalid mask (DIODE's) it is just an unmeasured pixel.
        nan = np.isnan(values)
        if (nan & valid).any():
            n = int((nan & valid).sum())
            raise DatasetError(f"depth map {ref.depth} has {n} NaN value{'s' if n > 1 else ''} "
                               "outside its invalid-pixel mask (write 0 or inf for unknown pixels)")
        valid = valid & np.isfinite(values)
        if self.value_kind == "depth":
            # > 0, and above float32's range's reciprocal: 1 / 1e-39 m (a broken export)
            # is an infinite disparity, which the target's normalisation made NaN
            valid &= values > 1.0 / np.finfo(np.float32).max
        if not valid.any():
            why = self.validity or (f"valid pixels hold a finite {self.value_kind} > 0; 0 or below, "
                                    "inf and NaN mark unknown ones")
            raise DatasetError(f"depth map {ref.depth} has no valid pixel ({why})")
        lo, hi = float(values[valid].min()), float(values[valid].max())
        if lo == hi:  # a placeholder export: a loss of 0 and perfect scores, whatever is predicted
            label = f"{self.value_label} " if self.value_label else ""  # ReDWeb: not the file's RD
            unit = " m" if self.value_kind == "depth" else ""  # read as metres (a PNG's mm too)
            raise DatasetError(f"depth map {ref.depth} is constant ({label}{lo:g}{unit} at every valid pixel): "
                               "it holds no relative depth to train on or to score")
        if self.value_kind == "depth":
            disparity = np.zeros_like(values)
            np.divide(1.0, values, out=disparity, where=valid)
        else:
            disparity = np.where(valid, values, 0.0).astype(np.float32)
        return rgb, disparity, valid


class PairedDepthDataset(Dataset):
    """A map-style Dataset over a reader's samples; items come from ``transform``."""

    def __init__(
        self,
        reader: Reader,
        refs: list[SampleRef],
        transform: SampleTransform,
    ) -> None:
        self.reader = reader
        self.refs = list(refs)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.refs)

    def ids(self) -> list[str]:
        return [r.id for r in self.refs]

    def raw(self, i: int) -> RawSample:
        try:
            return self.reader.load(self.refs[i])
        except DatasetError as err:
            # Content is checked when a sample is first read, mid-run: say the way out.
            spec = shlex.quote(f"{self.reader.kind}:{self.reader.root}") + (
                " --depth-kind disparity" if self.reader.kind == "folder"
                and self.reader.value_kind == "disparity" else "")
            raise DatasetError(f"{err} (`depthnas data --data {spec}` lists every bad sample at "
                               "once; --skip-bad leaves them out)") from err

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.transform(*self.raw(i), index=i)


def _is_dir(path: Path) -> bool:
    """is_dir() that says no where it may not look (a root-only lost+found): a hint's
    search must not replace the error it is for with a PermissionError."""
    try:
        return path.is_dir()
    except OSError:
        return False


def files_with_suffix(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files in ``folder`` (not recursive) with one of ``suffixes`` (case-insensitive),
    sorted, hidden ones left out. A link to nothing (a drive not mounted) is listed, and
    named when it is read: left out, it would shrink the data set without a word."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and not hidden(p.name)
                  and (p.is_file() or (p.is_symlink() and not p.exists())))


def walk_folders(root: Path) -> list[tuple[Path, list[str]]]:
    """(folder, file names) of every folder under ``root``, sorted, following linked-in
    folders (data sets are often put together from links) but reading each real
    folder once: a second name for a folder, or a link back up the tree, would list
    its frames again, in train and val at once. Hidden files and folders are left out,
    and counted in a note."""
    seen: set[tuple[int, int]] = set()
    out, again, nowhere, unreadable = [], [], [], []
    n_hidden = 0
    for folder, dirs, files in os.walk(root, followlinks=True, onerror=unreadable.append):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            again.append(folder)
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        shown = [f for f in files if not hidden(f)]
        n_hidden += len(files) - len(shown) + sum(map(hidden, dirs))
        # sorted: which of two names is read, and which skipped, does not vary
        dirs[:] = sorted(d for d in dirs if not hidden(d))
        files = sorted(shown)
        out.append((Path(folder), files))
        # a link to nothing is listed as a file; one without a suffix is most likely a
        # linked-in folder (a scene on a drive that is not mounted)
        nowhere += [os.path.join(folder, f) for f in files
                    if not Path(f).suffix and os.path.islink(os.path.join(folder, f))
                    and not os.path.exists(os.path.join(folder, f))]
    if again:
        logger.warning("%s: %d folder(s) reached again through links are read once: %s", root,
                       len(again), listed(again))
    if nowhere:
        logger.warning("%s: %d link(s) lead nowhere (a drive not mounted?) and are not read: %s",
                       root, len(nowhere), listed(nowhere))
    if unreadable:
        logger.warning("%s: %d folder(s) cannot be listed and are not read: %s", root, len(unreadable),
                       listed([f"{e.filename} ({e.strerror or e})" for e in unreadable], sep="; "))
    if n_hidden:
        logger.info("%s: %d hidden file(s) or folder(s) (names starting with '.', such as macOS "
                    "'._' copies) are not read", root, n_hidden)
    return sorted(out)


def unread_beside(folder: Path, suffixes: tuple[str, ...], what: str = "depth maps"
                  ) -> dict[str, str]:
    """stem -> why, for the files in a folder of `what` of a format not read as such:
    an image's "no depth map" error then names its `NAME.exr`, a depth map's "no
    image" its `NAME.heic`, and the formats read."""
    if not folder.is_dir():
        return {}
    return {name_key(p.stem): f"{p} is not read: {what} here are {' / '.join(suffixes)}"
            for p in sorted(folder.iterdir(), reverse=True)  # the first name kept per stem
            if p.suffix.lower() not in suffixes and not hidden(p.name) and p.is_file()}


def name_key(stem: str) -> str:
    """A file name as pairing compares it: Unicode-composed (NFC). macOS writes names
    decomposed (NFD), Linux tools composed, so images copied from a Mac and depth
    written on Linux show one name, "café", that two byte strings spell."""
    return unicodedata.normalize("NFC", stem)


def by_key(files: Iterable[tuple[str, Path]], what: str, problems: list[str],
           ambiguous: set[str]) -> dict[str, Path]:
    """Files by the key that pairs them. A key two files share (``a.png`` and
    ``a.PNG``) is a problem, added to ``ambiguous``: which one is meant cannot be
    told, and the one kept would depend on the order the disk lists them in. The
    first stays in the result, so its partner is not also called unpaired."""
    out: dict[str, Path] = {}
    for key, p in files:
        if key in out:
            problems.append(f"ambiguous {what} files for '{key}': {out[key]} and {p}")
            ambiguous.add(key)
        else:
            out[key] = p
    return out


def pair_by_stem(images: list[Path], depths: list[Path], unread: dict[str, str] | None = None,
                 unread_images: dict[str, str] | None = None
                 ) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pair files whose names match up to the suffix. ``unread``: why an image's depth
    map by name was not read (`unread_beside`); ``unread_images``: why a depth map's
    image was not.

    Returns (pairs sorted by stem, problems). A stem with two candidate files (say
    ``a.png`` and ``a.npy``) is a problem too: guessing which one is meant would hide
    a stale export.
    """
    problems: list[str] = []
    ambiguous: set[str] = set()
    img = by_key(((name_key(p.stem), p) for p in images), "image", problems, ambiguous)
    dep = by_key(((name_key(p.stem), p) for p in depths), "depth", problems, ambiguous)
    unread, unread_images = unread or {}, unread_images or {}
    problems += [f"image {img[s]} has no depth map" + (f" ({unread[s]})" if s in unread else "")
                 for s in sorted(img.keys() - dep.keys())]
    problems += [f"depth map {dep[s]} has no image" +
                 (f" ({unread_images[s]})" if s in unread_images else "")
                 for s in sorted(dep.keys() - img.keys())]
    pairs = [(img[s], dep[s]) for s in sorted(img.keys() & dep.keys()) if s not in ambiguous]
    return pairs, problems


def _turned_hint(image: Path, depth_shape: tuple[int, ...], rgb_shape: tuple[int, ...]) -> str:
    """Why sizes that are each other's transpose differ, when the photo says it is
    shown turned: viewers apply its EXIF tag, depthnas reads the stored pixel grid."""
    if depth_shape[::-1] != rgb_shape[:2]:
        return ""
    orientation = exif_orientation(image)
    if orientation not in (5, 6, 7, 8):
        return ""
    return (f" as stored: its EXIF orientation tag ({orientation}) turns it on screen, but "
            "images are read in their stored pixel grid, the one their depth maps are usually "
            "made on (save the photo turned, or the depth map in the stored grid)")
