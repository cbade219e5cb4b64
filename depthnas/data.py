"""From the config's data section to train / regularizer / validation splits."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from depthnas.datasets.spec import is_classification_spec, split_spec
from depthnas.spaces import get_space

from .config import Config
from .io import read_json
from .terminal import listed

if TYPE_CHECKING:
    from depthnas.datasets.splits import SplitSet


def check_data_fits_space(cfg: Config) -> None:
    """Depth data for a depth space, images with labels for a classification one:
    checked with the configuration (a mismatch would fail deep in the first training
    step, with no 'label' or 'target')."""
    d = cfg.data
    classifies = get_space(cfg.space).task_kind == "classification"
    if classifies and not is_classification_spec(d.spec):
        raise ValueError(f"space {cfg.space} classifies images: use --data digits (embedded) "
                         "or --data cifar10:PATH, not " +
                         ("the default, synthetic depth scenes" if d.spec == "synthetic"
                          else repr(d.spec)))
    if not classifies and is_classification_spec(d.spec):
        raise ValueError(f"{d.spec!r} is a classification dataset; use it with a classification "
                         f"space (nb201, darts), not {cfg.space}")


def skip_bad_unused(cfg: Config) -> str | None:
    """Why data.skip_bad does nothing for this data, or None. Said, not refused: runs
    saved with it (a script that always passes --skip-bad) must still resume."""
    d = cfg.data
    if d.skip_bad and (is_classification_spec(d.spec) or split_spec(d.spec)[0] == "synthetic"):
        # a CIFAR-10 batch file is read whole, scenes are rendered: no sample to leave out
        return (f"--skip-bad (data.skip_bad) leaves out bad files of depth data read from "
                f"disk; {d.spec!r} has none to skip, so it does nothing here (a damaged "
                "CIFAR-10 batch is named: replace it)")
    return None


def warn_unused_settings(cfg: Config) -> None:
    """Said where a run starts (a search, a training) and is given its settings, not
    where one is read back (rank): those were given to the run."""
    note = skip_bad_unused(cfg)
    if note:
        logging.getLogger(__name__).warning(note)


def load_splits(cfg: Config) -> SplitSet:
    """The splits `cfg` names."""
    from depthnas.datasets.classification import build_classification_splits
    d = cfg.data
    check_data_fits_space(cfg)
    if is_classification_spec(d.spec):
        splits = build_classification_splits(d.spec, seed=cfg.seed, val_fraction=d.val_fraction,
                                             reg_fraction=d.reg_fraction, augment=d.augment)
        if splits.num_classes != cfg.model.num_classes:  # more logits than classes: some never right
            raise ValueError(f"{d.spec} has {splits.num_classes} classes but model.num_classes is "
                             f"{cfg.model.num_classes}; they must be equal")
        if len(splits.val) == 0:  # said before training, not after it as "nothing to score"
            raise ValueError(f"data.val_fraction={d.val_fraction:g} (each class's share of it rounds "
                             "to no sample) leaves nothing to score models on; raise it")
        return splits
    from depthnas.datasets import build_splits
    return build_splits(d.spec, tuple(d.image_size), seed=cfg.seed,
                        synthetic_samples=d.synthetic_samples, val_fraction=d.val_fraction,
                        reg_fraction=d.reg_fraction, augment=d.augment, skip_bad=d.skip_bad,
                        depth_kind=d.depth_kind)


SPLIT_NAMES = ("train", "reg", "val")


def check_recorded_splits(splits: SplitSet, path: str | Path, *, only: str | None = None,
                          advice: str = "restore the data as it was, or start a new run "
                                        "(another --out)") -> None:
    """Refuse when the data no longer splits as `path` (a run's splits.json) recorded
    at the run's start. The split is drawn from the files found, so a data set that
    gained or lost files splits differently: a resumed run would train on its own
    validation samples, and an evaluation of its split would score training ones.
    `only`: the one split that must match (an evaluation of it needs no more)."""
    from depthnas.datasets.io import DatasetError
    path = Path(path)
    if not path.is_file():
        return
    recorded, now = read_json(path), splits.manifest()
    # ids: file names for depth data, indices into the training images for classification
    if not (isinstance(recorded, dict) and all(
            isinstance(recorded.get(k), list) and all(
                isinstance(i, (str, int)) and not isinstance(i, bool) for i in recorded[k])
            for k in SPLIT_NAMES)):
        raise DatasetError(f"{path} is not a record of splits (a JSON object with lists of "
                           f"sample ids under {', '.join(SPLIT_NAMES)}); restore the run's own")
    if all(set(recorded[k]) == set(now[k]) for k in ([only] if only else SPLIT_NAMES)):
        return
    was = {i: k for k in SPLIT_NAMES for i in recorded[k]}
    is_ = {i: k for k in SPLIT_NAMES for i in now[k]}
    added = sorted(i for i in is_ if i not in was)
    gone = sorted(i for i in was if i not in is_)
    moved = sorted(f"{i}: {was[i]} -> {is_[i]}" for i in is_ if i in was and was[i] != is_[i])

    def counted(items: list[str], what: str) -> str:
        shown = f" ({listed(items)})" if items else ""
        return f"{len(items)} {what}{shown}"
    raise DatasetError(
        f"{now.get('spec') or 'the data'} no longer splits as {path} recorded when the run "
        f"started: {counted(added, 'sample(s) added')}, {counted(gone, 'gone')}, "
        f"{counted(moved, 'moved between splits')}. Using it would mix the run's training "
        f"and validation samples; {advice}.")
