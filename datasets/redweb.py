"""ReDWeb V1 (Xian et al., CVPR 2018): ``Imgs/*.jpg`` with ``RDs/*.png`` of the same stem.

Convention: an RD map is 8-bit relative depth: small values are near, large values
far, and 255 marks invalid pixels (mostly sky).  MiDaS' authors read it as *negative*
disparity (isl-org/MiDaS#16: ``disp = -rd / 255``, then min-max), and so do we: the
disparity target is ``255 - rd`` over the valid values 0..254, so 0 (the nearest
valid value) becomes the largest.  The per-image min-max normalisation of training
targets makes the offset irrelevant there; it is 255, not 254, so the farthest valid
level (RD 254) is a disparity of 1, a finite depth that `evaluate`'s depth metrics
score (a disparity of 0 has none: an object on the farthest level was left out).  (Reading RD as disparity instead
would still train under the plain SSI loss, whose least-squares scale may turn
negative, but the network would learn a depth-like output: "bright = near" in the
demo would be wrong and the trimmed loss, which fits no sign, would fail.)
"""
from __future__ import annotations

import numpy as np

from .base import Reader, SampleRef, files_with_suffix, pair_by_stem, unread_beside
from .io import IMAGE_SUFFIXES, DatasetError, read_png, read_rgb

__all__ = ["ReDWebReader", "REDWEB_INVALID"]

REDWEB_INVALID = 255


class ReDWebReader(Reader):
    kind = "redweb"
    value_kind = "disparity"
    value_label = "disparity (255 - RD)"  # not the RD values the files hold
    layout = "Imgs/NAME.jpg with RDs/NAME.png"
    validity = f"RD {REDWEB_INVALID} marks an unknown pixel, every other value a measured one"

    def index(self) -> tuple[list[SampleRef], list[str]]:
        imgs = self.require_dir(self.root / "Imgs", "Imgs")
        rds = self.require_dir(self.root / "RDs", "RDs")
        pairs, problems = pair_by_stem(files_with_suffix(imgs, IMAGE_SUFFIXES), files_with_suffix(rds, (".png",)),
                                       unread_beside(rds, (".png",)),
                                       unread_beside(imgs, IMAGE_SUFFIXES, "images"))
        # Each ReDWeb image is its own web photo: every sample is its own group.
        refs = [SampleRef(id=self.rel(i), image=str(i), depth=str(d), group=self.rel(i)) for i, d in pairs]
        return refs, problems

    def read(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = read_rgb(ref.image)
        rd = read_png(ref.depth, unknown=REDWEB_INVALID)
        if rd.dtype != np.uint8:  # 255 marks invalid pixels only in the 8-bit maps
            raise DatasetError(f"{ref.depth}: a {rd.dtype} RD map; ReDWeb's RDs are 8-bit")
        valid = rd != REDWEB_INVALID
        return rgb, (REDWEB_INVALID - rd.astype(np.float32)), valid
