"""Generic folder dataset: ``images/`` and ``depth/`` with matching file stems.

Subfolders are scenes: ``images/walk_01/0001.jpg`` pairs with ``depth/walk_01/0001.png``,
and all frames of ``walk_01`` land in one split, so near-duplicate frames of a video
cannot sit in train and validation at once. Files directly in ``images/`` are
independent samples.

Depth files may be 16-bit PNG, ``.npy`` or ``.pfm``.  ``depth_kind`` says what they hold:

* ``"depth"``: metric depth; PNG integers are millimetres (the common 16-bit export),
  npy/pfm are metres (units cancel in the min-max target anyway).  Values <= 0 or
  infinite are invalid; NaN is an error naming the file (a broken export: write 0
  or inf for unknown pixels).
* ``"disparity"``: disparity-like values, larger = closer (stereo disparity, relative
  inverse depth).  0 and inf are invalid, as in the Middlebury/KITTI exports, and so
  are negative values (some exports write -1 for "no match"; a warning says so once);
  NaN is an error, as for depth.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from depthnas.terminal import listed

from .base import (Reader, SampleRef, files_with_suffix, name_key, pair_by_stem, unread_beside,
                   walk_folders)
from .io import DEPTH_SUFFIXES, IMAGE_SUFFIXES, DatasetError, read_depth_file, read_png, read_rgb
from .settings import check_depth_kind

log = logging.getLogger(__name__)

__all__ = ["FolderReader"]


class FolderReader(Reader):
    kind = "folder"
    layout = ("images/NAME.jpg|png with depth/NAME.png|npy|pfm of the same NAME (subfolders "
              "as scenes: images/SCENE/NAME with depth/SCENE/NAME)")

    def __init__(self, root: str | Path, depth_kind: str = "depth") -> None:
        super().__init__(root)
        self.value_kind = check_depth_kind(depth_kind)
        self._warned_8bit = self._warned_negative = False

    def index(self) -> tuple[list[SampleRef], list[str]]:
        imgs = self.require_dir(self.root / "images", "images")
        deps = self.require_dir(self.root / "depth", "depth")
        refs: list[SampleRef] = []
        problems: list[str] = []
        self.not_read = []  # this listing's, not an earlier one's
        # subfolders by their names as Unicode composes them (as files are paired), each
        # to its spelling on that side: images/ copied from a Mac, depth/ made on Linux
        found: dict[Path, dict[Path, Path]] = {imgs: {}, deps: {}}
        ambiguous: set[Path] = set()
        for top, side in ((imgs, "images"), (deps, "depth")):
            for d, files in walk_folders(top):
                if not files:
                    continue
                rel = d.relative_to(top)
                key = _composed(rel)
                if key in found[top]:  # one name in two Unicode forms: which is the scene?
                    problems.append(f"ambiguous scene folders {side}/{found[top][key].as_posix()}/ "
                                    f"and {side}/{rel.as_posix()}/: their names differ only in "
                                    "Unicode form (NFC, NFD); not read (rename one)")
                    ambiguous.add(key)
                else:
                    found[top][key] = rel
        one_sided = sorted(p for p in found[imgs].keys() ^ found[deps].keys() if p.parts
                           and not ((imgs if p in found[deps] else deps) / p).is_dir())
        if one_sided:  # previews, thumbnails: a scene has both folders
            self.not_read = [f"images/{p.as_posix()}/ (no depth/{p.as_posix()}/)" if p in found[imgs]
                             else f"depth/{p.as_posix()}/ (no images/{p.as_posix()}/)"
                             for p in one_sided]
            both = len({p in found[imgs] for p in one_sided}) == 2
            log.warning("%s: %d subfolder(s) on only one side of images/ and depth/ are not "
                        "read%s: %s", self.root, len(one_sided),
                        " (a scene folder named differently on each side?)" if both else "",
                        listed(self.not_read))
        for key in sorted((found[imgs].keys() | found[deps].keys()) - set(one_sided) - ambiguous):
            scene = found[imgs].get(key, key)
            image_dir, depth_dir = imgs / scene, deps / found[deps].get(key, key)
            try:
                images = files_with_suffix(image_dir, IMAGE_SUFFIXES) if image_dir.is_dir() else []
                depths = files_with_suffix(depth_dir, DEPTH_SUFFIXES) if depth_dir.is_dir() else []
            except PermissionError:
                continue  # one side cannot be listed: walk_folders has warned of it by name
            if not images and not depths:
                continue  # a folder of other files (notes)
            pairs, problems_here = pair_by_stem(
                images, depths, unread_beside(depth_dir, DEPTH_SUFFIXES),
                unread_beside(image_dir, IMAGE_SUFFIXES, "images"))
            problems += problems_here
            # the first-level subfolder is the scene: walk_01/left and walk_01/right too;
            # files directly in images/ are each their own
            scene_group = self.rel(imgs / scene.parts[0]) if scene.parts else None
            refs += [SampleRef(id=self.rel(i), image=str(i), depth=str(d),
                               group=scene_group or self.rel(i)) for i, d in pairs]
        return refs, problems

    def read(self, ref: SampleRef) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = read_rgb(ref.image)
        if ref.depth.lower().endswith(".png"):
            raw = read_png(ref.depth)
            if self.value_kind == "depth":
                self._check_8bit(raw, ref.depth)
            values = raw.astype(np.float32) * np.float32(1e-3 if self.value_kind == "depth" else 1.0)
        else:
            values = read_depth_file(ref.depth)
        if self.value_kind == "depth":
            # the base class drops values <= 0 and inf, and names a file with NaN
            return rgb, values, np.ones(values.shape, bool)
        n = int(np.isnan(values).sum())
        if n:
            raise DatasetError(f"disparity map {ref.depth} contains {n} NaN value{'s' if n > 1 else ''} "
                               "(write 0 or inf for unknown pixels)")
        negative = values < 0
        if negative.any() and not self._warned_negative:
            self._warned_negative = True
            log.warning("%s has %d negative disparities, read as invalid (as is 0, 'no match'); "
                        "if the map is shifted relative inverse depth, shift it to >= 0 first",
                        ref.depth, int(negative.sum()))
        return rgb, values, values > 0

    def _check_8bit(self, raw: np.ndarray, path: str) -> None:
        # Nothing beyond 255 mm: an 8-bit file. 8-bit depth maps are rare; 8-bit
        # pictures of depth often show near as bright.
        # (all zeros is "no valid pixel", an error of its own)
        if not self._warned_8bit and raw.any() and (raw.dtype == np.uint8 or raw.max() <= 255):
            self._warned_8bit = True
            log.warning("%s looks like an 8-bit PNG, read as depth in millimetres (larger = "
                        "farther); if brighter means nearer, pass --depth-kind disparity",
                        path)


def _composed(folder: Path) -> Path:
    return Path(*(name_key(part) for part in folder.parts))
