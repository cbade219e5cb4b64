"""NYU Depth v2, in the two layouts people have on disk.

* BTS/ZoeDepth "sync" layout: ``<scene>/rgb_XXXXX.jpg`` + ``<scene>/sync_depth_XXXXX.png``
  (uint16 millimetres, 0 = no measurement), scenes possibly nested below the root
  (``sync/``, ``official_splits/test/``).  Frames of one room are near-duplicates, so
  the room is the split group (its sessions ``kitchen_0028a``, ``kitchen_0028b`` merged).
* The official labeled set ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5): datasets
  ``images`` [N,3,W,H] uint8 and ``depths`` [N,W,H] float metres.  h5py sees MATLAB's
  column-major arrays transposed, hence the ``.T`` below to get H x W.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .base import Reader, SampleRef, by_key, walk_folders
from .io import DatasetError, read_png, read_rgb

__all__ = ["NYUv2SyncReader", "NYUv2MatReader", "nyuv2_reader"]

_RGB = re.compile(r"^rgb_(\d+)\.jpg$", re.IGNORECASE)
_DEPTH = re.compile(r"^sync_depth_(\d+)\.png$", re.IGNORECASE)
_SESSION = re.compile(r"(_\d{4})[a-z]$")


def room(scene: str) -> str:
    """NYUv2 names recording sessions of one room with a letter: `kitchen_0028a` and
    `kitchen_0028b` film the same kitchen. Split by room, or one can land in train and
    the other in validation."""
    return _SESSION.sub(r"\1", scene)


class NYUv2SyncReader(Reader):
    kind = "nyuv2"
    layout = ("SCENE/rgb_XXXXX.jpg with SCENE/sync_depth_XXXXX.png (scene folders anywhere "
              "below PATH), or is given the path of nyu_depth_v2_labeled.mat itself")
    path_is = "a folder, or the labeled .mat file (nyu_depth_v2_labeled.mat)"

    def nothing_found(self) -> str:
        mats = sorted(self.root.glob("*.mat")) if self.root.is_dir() else []
        return super().nothing_found() + (f"; {mats[0].name} is here: pass nyuv2:{mats[0]}"
                                          if mats else "")

    def index(self) -> tuple[list[SampleRef], list[str]]:
        self.require_dir(self.root, "dataset")
        refs: list[SampleRef] = []
        problems: list[str] = []
        for d, names in walk_folders(self.root):
            ambiguous: set[str] = set()  # rgb_00000.jpg beside RGB_00000.JPG, say
            rgbs = by_key(((m.group(1), d / n) for n in names if (m := _RGB.match(n))),
                          "image", problems, ambiguous)
            depths = by_key(((m.group(1), d / n) for n in names if (m := _DEPTH.match(n))),
                            "depth", problems, ambiguous)
            problems += [f"image {rgbs[k]} has no depth map (sync_depth_{k}.png)"
                         for k in sorted(rgbs.keys() - depths.keys())]
            problems += [f"depth map {depths[k]} has no image (rgb_{k}.jpg)"
                         for k in sorted(depths.keys() - rgbs.keys())]
            group = room(self.rel(d))
            refs += [SampleRef(id=self.rel(rgbs[k]), image=str(rgbs[k]), depth=str(depths[k]), group=group)
                     for k in sorted((rgbs.keys() & depths.keys()) - ambiguous)]
        return refs, problems

    def read(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = read_rgb(ref.image)
        raw = read_png(ref.depth)
        if raw.dtype != np.uint16:
            raise DatasetError(f"depth map {ref.depth} should be 16-bit millimetres, got {raw.dtype}")
        depth = raw.astype(np.float32) / 1000.0
        return rgb, depth, raw > 0


def _scene_names(f, n: int) -> list[str] | None:
    """The per-frame scene names of the labeled .mat (a MATLAB cell array of strings:
    HDF5 references to uint16 character arrays), or None if absent or malformed."""
    if "scenes" not in f:
        return None
    try:
        refs = np.asarray(f["scenes"]).reshape(-1)
        names = ["".join(map(chr, np.asarray(f[r]).reshape(-1))) for r in refs]
    except (TypeError, ValueError, KeyError, OSError):
        return None
    return names if len(names) == n and all(names) else None


class NYUv2MatReader(Reader):
    """The labeled .mat; the HDF5 handle is opened lazily once per process (h5py handles
    must not cross a fork into DataLoader workers)."""

    kind = "nyuv2"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self._h5 = None
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_h5"], state["_pid"] = None, None  # spawn-based workers reopen the file
        return state

    def _file(self):
        import h5py

        if self._h5 is None or self._pid != os.getpid():
            try:
                self._h5 = h5py.File(self.root, "r")
            except OSError as e:
                raise DatasetError(f"cannot open {self.root} as an HDF5 (MATLAB v7.3) file: {e}") from e
            self._pid = os.getpid()
        return self._h5

    def index(self) -> tuple[list[SampleRef], list[str]]:
        if not self.root.is_file():
            raise DatasetError(f"nyuv2: file not found: {self.root}")
        f = self._file()
        for key in ("images", "depths"):
            if key not in f:
                raise DatasetError(f"{self.root} has no '{key}' dataset (expected the NYUv2 labeled .mat)")
        n_img, n_dep = f["images"].shape, f["depths"].shape
        if len(n_img) != 4 or n_img[1] != 3 or len(n_dep) != 3 or n_img[0] != n_dep[0] or n_img[2:] != n_dep[1:]:
            raise DatasetError(f"{self.root}: 'images' {n_img} and 'depths' {n_dep} do not match "
                               "([N,3,W,H] and [N,W,H] expected)")
        if n_img[2] < n_img[3]:  # C-ordered arrays pass the shape check, every frame turned
            raise DatasetError(f"{self.root}: frames would come out portrait, {n_img[2]}x{n_img[3]} "
                               "(WxH); NYUv2's are landscape, 640x480. The arrays look written "
                               "in C order ([N,3,H,W]): store them as MATLAB does, [N,3,W,H] and "
                               "[N,W,H] as h5py reads them")
        if f["images"].dtype != np.uint8:  # a cast to uint8 made float RGB in [0, 1] black
            raise DatasetError(f"{self.root}: 'images' holds {f['images'].dtype}, not uint8 RGB "
                               "(0-255) as the NYUv2 labeled .mat does; save them as uint8")
        if f["depths"].dtype.kind != "f":
            raise DatasetError(f"{self.root}: 'depths' holds {f['depths'].dtype}, not depth in "
                               "metres as floats as the NYUv2 labeled .mat does")
        name = self.root.name
        scenes = _scene_names(f, n_img[0])
        # Frames of one room are near-duplicates: split by scene when the file says
        # which (the labeled .mat's `scenes`), so no room is in train and val at once.
        groups = [room(s) for s in scenes] if scenes else [f"{name}#{i:05d}" for i in range(n_img[0])]
        refs = [SampleRef(id=f"{name}#{i:05d}", image=str(self.root), depth=f"{self.root}#depths[{i}]",
                          group=groups[i], index=i) for i in range(n_img[0])]
        return refs, []

    def read(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = self._file()
        try:
            rgb = np.ascontiguousarray(f["images"][ref.index].transpose(2, 1, 0)).astype(np.uint8)
            depth = np.ascontiguousarray(f["depths"][ref.index].T).astype(np.float32)
        except (OSError, KeyError) as e:  # a truncated/corrupt HDF5 chunk
            raise DatasetError(f"cannot read sample {ref.index} of {self.root}: {e}") from e
        return rgb, depth, np.ones(depth.shape, bool)


def nyuv2_reader(path: str | Path) -> Reader:
    """The .mat reader for a file path, the sync-layout reader otherwise."""
    return NYUv2MatReader(path) if str(path).lower().endswith(".mat") else NYUv2SyncReader(path)
