"""DIODE (Vasiljevic et al., 2019): ``<split>/<indoors|outdoors>/scene_*/scan_*/<name>.png``
with ``<name>_depth.npy`` (metres, HxWx1) and ``<name>_depth_mask.npy`` (1 = valid).

PATH may be the dataset root, a split (``train``/``val``) or any folder below; every
``.png`` found recursively is a sample.  The scan's scene is the split group.
"""
from __future__ import annotations

import numpy as np

from .base import Reader, SampleRef, by_key, walk_folders
from .io import DatasetError, read_npy, read_rgb

__all__ = ["DIODEReader"]

_DEPTH, _MASK = "_depth.npy", "_depth_mask.npy"


class DIODEReader(Reader):
    kind = "diode"
    layout = "NAME.png with NAME_depth.npy and NAME_depth_mask.npy, in any folder below PATH"
    validity = "valid pixels are 1 in its _depth_mask.npy and hold a finite depth > 0"

    def index(self) -> tuple[list[SampleRef], list[str]]:
        self.require_dir(self.root, "dataset")
        refs: list[SampleRef] = []
        problems: list[str] = []
        for d, names in walk_folders(self.root):
            present = set(names)
            by_case = {n.lower(): n for n in names}
            ambiguous: set[str] = set()
            images = by_key(((n[:-4], d / n) for n in names if n.lower().endswith(".png")),  # a.PNG stays a.PNG
                            "image", problems, ambiguous)
            stems = sorted(images)
            expected = {f"{stem}{end}" for stem in stems for end in (_DEPTH, _MASK)}
            for stem in stems:
                if stem in ambiguous:
                    continue
                img, dep, msk = images[stem], d / f"{stem}{_DEPTH}", d / f"{stem}{_MASK}"
                missing = [p.name for p in (dep, msk) if p.name not in present]
                if missing:
                    other_case = [by_case[m.lower()] for m in missing  # not another image's own
                                  if m.lower() in by_case and by_case[m.lower()] not in expected]
                    problems.append(f"image {img} has no {' / '.join(missing)}" +
                                    (f" ({' / '.join(other_case)} here: the name must be the "
                                     f"image's, {stem}, then {_DEPTH} / {_MASK} as written)"
                                     if other_case else ""))
                    continue
                # scene_x/scan_y: the scene is the scan folder's parent.
                group = self.rel(d.parent) if d.name.startswith("scan_") else self.rel(d)
                refs.append(SampleRef(id=self.rel(img), image=str(img), depth=str(dep), mask=str(msk), group=group))
            stem_set = set(stems)
            for n in sorted(names):
                if n.endswith(_MASK):
                    if n[: -len(_MASK)] not in stem_set:
                        problems.append(f"depth mask {d / n} has no image")
                elif n.endswith(_DEPTH) and n[: -len(_DEPTH)] not in stem_set:
                    problems.append(f"depth map {d / n} has no image")
        return refs, problems

    def read(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = read_rgb(ref.image)
        depth = read_npy(ref.depth)
        mask = read_npy(str(ref.mask), allow_bool=True)
        # a depth map of another size than its image is named by load(), not its mask
        if depth.shape == rgb.shape[:2] and mask.shape != depth.shape:
            raise DatasetError(f"mask {ref.mask} is {mask.shape}, its depth map {ref.depth} is {depth.shape}")
        return rgb, depth.astype(np.float32), mask > 0
