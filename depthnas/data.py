"""From the config's data section to train / regularizer / validation splits."""
from __future__ import annotations

from .config import Config


def load_splits(cfg: Config):
    from depthnas.datasets.classification import build_classification_splits, is_classification_spec
    from depthnas.spaces import get_space
    d = cfg.data
    classifies = getattr(get_space(cfg.space), "task_kind", "depth") == "classification"
    # A mismatch would otherwise fail deep in the first training step (no 'label' / 'target').
    if classifies != is_classification_spec(d.spec):
        if classifies:
            raise ValueError(f"space {cfg.space} classifies images: use --data digits (embedded) "
                             f"or --data cifar10:PATH, not {d.spec!r}")
        raise ValueError(f"{d.spec!r} is a classification dataset; use it with a classification "
                         f"space (nb201, darts), not {cfg.space}")
    if classifies:
        splits = build_classification_splits(d.spec, seed=cfg.seed, val_fraction=d.val_fraction,
                                             reg_fraction=d.reg_fraction, augment=d.augment)
        if splits.num_classes > cfg.model.num_classes:
            raise ValueError(f"{d.spec} has {splits.num_classes} classes but model.num_classes is "
                             f"{cfg.model.num_classes}")
        return splits
    from depthnas.datasets import build_splits
    return build_splits(d.spec, tuple(d.image_size), seed=cfg.seed,
                        synthetic_samples=d.synthetic_samples, val_fraction=d.val_fraction,
                        reg_fraction=d.reg_fraction, augment=d.augment, skip_bad=d.skip_bad,
                        depth_kind=d.depth_kind)
