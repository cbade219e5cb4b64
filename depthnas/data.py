"""From the config's data section to train / regularizer / validation splits."""
from __future__ import annotations

from .config import Config


def load_splits(cfg: Config):
    from depthnas.datasets import build_splits
    d = cfg.data
    return build_splits(d.spec, tuple(d.image_size), seed=cfg.seed,
                        synthetic_samples=d.synthetic_samples, val_fraction=d.val_fraction,
                        reg_fraction=d.reg_fraction, augment=d.augment, skip_bad=d.skip_bad,
                        depth_kind=d.depth_kind)
