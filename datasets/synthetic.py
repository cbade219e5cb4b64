"""The embedded default dataset: procedural scenes (see `render`), rendered on first
use from (seed, index) and cached, so no download is needed."""
from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from .render import render_scene
from .settings import SYNTHETIC_SAMPLES, check_image_size
from .transforms import DepthTransform, SampleTransform

__all__ = ["render_scene", "SyntheticDepth", "SYNTHETIC_SAMPLES", "VAL_INDEX_OFFSET"]

# Validation samples are drawn from indices starting here, so the validation set of
# a seed does not change when the number of training samples does.
VAL_INDEX_OFFSET = 1 << 30


class SyntheticDepth(Dataset):
    """A map-style Dataset of procedural scenes.

    Sample ``i`` is rendered from ``np.random.default_rng([seed, index_offset + i])`` at
    ``image_size`` (H, W) and cached in memory on first access: training revisits
    samples every epoch and rendering dominates the cost on CPU.  A loader's workers
    fill their own caches, lost with them: see :meth:`warm_cache`.

    ``transform(rgb, disparity, valid, index=i) -> item dict`` (a
    :class:`~.transforms.SampleTransform`) is applied on every access (so random
    augmentation differs between epochs); by default the MiDaS-style transform of
    :mod:`.transforms` with ``augment``.
    """

    def __init__(
        self,
        num_samples: int,
        image_size: tuple[int, int],
        seed: int = 0,
        augment: bool = False,
        *,
        index_offset: int = 0,
        transform: SampleTransform | None = None,
    ) -> None:
        self.image_size = check_image_size(image_size)
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.index_offset = int(index_offset)
        self.augment = augment
        self.transform = transform or DepthTransform(self.image_size, augment=augment)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.num_samples

    def sample_id(self, i: int) -> str:
        return f"synthetic:{self.seed}:{self.index_offset + i}"

    def ids(self) -> list[str]:
        return [self.sample_id(i) for i in range(self.num_samples)]

    def rendered(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The rendered (rgb uint8 HxWx3, metric depth float32 HxW) of sample ``i``, cached."""
        if not 0 <= i < self.num_samples:
            raise IndexError(f"sample {i} out of range for {self.num_samples} samples")
        if i not in self._cache:
            rng = np.random.default_rng([self.seed, self.index_offset + i])
            self._cache[i] = render_scene(rng, *self.image_size)
        return self._cache[i]

    def warm_cache(self) -> None:
        """Render every sample now. DataLoader workers are forked afresh for each epoch
        and what they render dies with them: rendered in this process first, the
        scenes are in every worker's cache (inherited, or pickled with the dataset)."""
        for i in range(self.num_samples):
            self.rendered(i)

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb, disparity, valid) of sample ``i``, the form every reader gives."""
        rgb, depth = self.rendered(i)
        valid = np.isfinite(depth) & (depth > 0)  # every pixel: the renderer hits a wall
        return rgb, np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0).astype(np.float32), valid

    def __getitem__(self, i: int) -> dict:
        if i < 0:
            i += self.num_samples
        return self.transform(*self.raw(i), index=self.index_offset + i)
