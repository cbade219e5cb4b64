"""Generic folder dataset: ``images/`` and ``depth/`` with matching file stems.

Depth files may be 16-bit PNG, ``.npy`` or ``.pfm``.  ``depth_kind`` says what they hold:

* ``"depth"``: metric depth; PNG integers are millimetres (the common 16-bit export),
  npy/pfm are metres (units cancel in the min-max target anyway).  Values <= 0 or
  infinite are invalid; NaN is an error naming the file (a broken export: write 0
  or inf for unknown pixels).
* ``"disparity"``: disparity-like values, larger = closer (stereo disparity, relative
  inverse depth).  0 and inf are invalid, as in the Middlebury/KITTI exports.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .base import DEPTH_KINDS, Reader, SampleRef, files_with_suffix, pair_by_stem
from .io import DEPTH_SUFFIXES, IMAGE_SUFFIXES, read_depth_file, read_rgb

log = logging.getLogger(__name__)

__all__ = ["FolderReader"]


class FolderReader(Reader):
    kind = "folder"

    def __init__(self, root: str | Path, depth_kind: str = "depth") -> None:
        super().__init__(root)
        if depth_kind not in DEPTH_KINDS:
            raise ValueError(f"depth_kind must be one of {DEPTH_KINDS}, got {depth_kind!r}")
        self.value_kind = depth_kind
        self._warned_8bit = False

    def index(self) -> tuple[list[SampleRef], list[str]]:
        imgs = self.require_dir(self.root / "images", "images")
        deps = self.require_dir(self.root / "depth", "depth")
        pairs, problems = pair_by_stem(files_with_suffix(imgs, IMAGE_SUFFIXES), files_with_suffix(deps, DEPTH_SUFFIXES))
        refs = [SampleRef(id=self.rel(i), image=str(i), depth=str(d), group=self.rel(i)) for i, d in pairs]
        return refs, problems

    def read(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = read_rgb(ref.image)
        png_scale = 1e-3 if self.value_kind == "depth" else 1.0  # millimetres -> metres
        values = read_depth_file(ref.depth, png_scale=png_scale)
        if (self.value_kind == "depth" and not self._warned_8bit
                and ref.depth.lower().endswith(".png") and values.max() <= 0.255):
            # nothing beyond 255 mm: an 8-bit file. 8-bit depth maps are rare; 8-bit
            # pictures of depth often show near as bright
            self._warned_8bit = True
            log.warning("%s looks like an 8-bit PNG, read as depth in millimetres (larger = "
                        "farther); if brighter means nearer, pass --set data.depth_kind=disparity",
                        ref.depth)
        # For depth, the base class drops values <= 0; a disparity of 0 means "no match".
        valid = np.ones(values.shape, bool) if self.value_kind == "depth" else values > 0
        return rgb, values, valid
