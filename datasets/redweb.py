"""ReDWeb V1 (Xian et al., CVPR 2018): ``Imgs/*.jpg`` with ``RDs/*.png`` of the same stem.

Convention: an RD map is 8-bit *relative* depth derived from stereo disparity, so we
treat it as disparity-like -- larger values are closer -- and use the values directly
as the disparity target (no inversion).  255 marks invalid pixels (mostly sky), so
valid values are 0..254; 0 is the farthest valid value, not "unknown".  The per-image
min-max normalisation downstream makes the 8-bit scale irrelevant.
"""
from __future__ import annotations

import numpy as np

from .base import Reader, SampleRef, files_with_suffix, pair_by_stem
from .io import IMAGE_SUFFIXES, read_png, read_rgb

__all__ = ["ReDWebReader", "REDWEB_INVALID"]

REDWEB_INVALID = 255


class ReDWebReader(Reader):
    kind = "redweb"
    value_kind = "disparity"

    def index(self) -> tuple[list[SampleRef], list[str]]:
        imgs = self.require_dir(self.root / "Imgs", "Imgs")
        rds = self.require_dir(self.root / "RDs", "RDs")
        pairs, problems = pair_by_stem(files_with_suffix(imgs, IMAGE_SUFFIXES), files_with_suffix(rds, (".png",)))
        # Each ReDWeb image is its own web photo: every sample is its own group.
        refs = [SampleRef(id=self.rel(i), image=str(i), depth=str(d), group=self.rel(i)) for i, d in pairs]
        return refs, problems

    def read(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = read_rgb(ref.image)
        rd = read_png(ref.depth)
        return rgb, rd.astype(np.float32), rd != REDWEB_INVALID
