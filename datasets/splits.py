"""``build_splits``: a dataset spec -> deterministic train / reg / val Datasets.

Three disjoint splits: ``train`` trains the super-net, ``reg`` is the held-out part
of the training data on which the landmark regulariser scores architectures (the
paper splits the training set in two), ``val`` ranks architectures.
"""
from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch.utils.data import Dataset

from .base import PairedDepthDataset, Reader, SampleRef, logger
from .diode import DIODEReader
from .folder import FolderReader
from .io import DatasetError
from .nyuv2 import nyuv2_reader
from .redweb import ReDWebReader
from .settings import (REG_FRACTION, SYNTHETIC_SAMPLES, VAL_FRACTION, check_depth_kind,
                       check_image_size)
from .spec import parse_spec
from .synthetic import VAL_INDEX_OFFSET, SyntheticDepth
from .transforms import DepthTransform

__all__ = ["Splits", "SplitSet", "build_splits", "KINDS", "open_reader", "split_counts"]

_READERS: dict[str, Callable[[str, str], Reader]] = {
    "redweb": lambda path, depth_kind: ReDWebReader(path),
    "nyuv2": lambda path, depth_kind: nyuv2_reader(path),
    "diode": lambda path, depth_kind: DIODEReader(path),
    "folder": lambda path, depth_kind: FolderReader(path, depth_kind),
}
KINDS: tuple[str, ...] = ("synthetic", *_READERS)

_MAX_LISTED = 5  # problems quoted in one message; the rest are counted


class SplitSet(Protocol):
    """What a run reads of its data, depth (`Splits`) or classification
    (`depthnas.datasets.classification.ClassificationSplits`) alike."""
    train: Dataset
    reg: Dataset
    val: Dataset
    seed: int
    spec: str
    skipped: list[str]  # sample ids left out as unreadable (--skip-bad)

    def manifest(self) -> dict[str, Any]:
        """JSON-able record of which samples each split holds (a run's splits.json)."""


@dataclass
class Splits:
    """The three Datasets plus what is needed to reproduce them.

    A Dataset of one's own (to train on with `depthnas.standalone.train_standalone`)
    gives what depthnas's loaders give: `ids()`, one string per sample (a run records
    them in splits.json), and items {"image": float [3, H, W] ImageNet-normalised,
    "target": float [1, H, W] normalised disparity, "mask": bool [1, H, W]}, as
    `depthnas.datasets.DepthTransform` makes them from an image and its depth."""

    train: Dataset
    reg: Dataset
    val: Dataset
    seed: int
    spec: str = ""
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("train", "reg", "val"):  # else an AttributeError when splits.json is written
            if not callable(getattr(getattr(self, name), "ids", None)):
                raise TypeError(f"Splits.{name}: a {type(getattr(self, name)).__name__} has no "
                                "ids() (one string per sample, recorded in a run's splits.json), "
                                "as depthnas's datasets have")

    def manifest(self) -> dict[str, Any]:
        """JSON-able record for a run directory: sample ids per split, seed, spec, skipped files."""
        return {
            "spec": self.spec,
            "seed": self.seed,
            "train": list(self.train.ids()),
            "reg": list(self.reg.ids()),
            "val": list(self.val.ids()),
            "skipped": list(self.skipped),
        }


def _held_out(n: int, val_fraction: float, reg_fraction: float) -> tuple[int, int]:
    """(val, reg) sizes of n samples; a positive fraction always yields at least one."""
    return (max(1, round(n * val_fraction)) if val_fraction > 0 else 0,
            max(1, round(n * reg_fraction)) if reg_fraction > 0 else 0)


def least_samples(val_fraction: float, reg_fraction: float, more_than: int = 0) -> int | None:
    """The fewest samples above `more_than` that leave one to train on (None: none
    below 10,000 do, the fractions summing to about 1). Rounding makes the count no
    closed form, nor monotone: with 0.5 and 0.45, 5 samples split and 6 do not."""
    return next((n for n in range(more_than + 1, more_than + 10_000)
                 if n - sum(_held_out(n, val_fraction, reg_fraction)) >= 1), None)


def split_counts(n: int, val_fraction: float, reg_fraction: float) -> tuple[int, int, int]:
    """(train, reg, val) sizes; a positive fraction always yields at least one sample."""
    for name, frac in (("val_fraction", val_fraction), ("reg_fraction", reg_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {frac}")
    n_val, n_reg = _held_out(n, val_fraction, reg_fraction)
    n_train = n - n_val - n_reg
    if n_train < 1:
        least = least_samples(val_fraction, reg_fraction, more_than=n)
        raise DatasetError(f"{n} samples are too few for val_fraction={val_fraction}, "
                           f"reg_fraction={reg_fraction}" +
                           (f": the splits need at least {least}" if least else ""))
    return n_train, n_reg, n_val


def open_reader(spec: str, depth_kind: str = "depth") -> tuple[Reader, str]:
    """The reader of an on-disk spec (KIND:PATH) and the spec as messages name it."""
    kind, path = parse_spec(spec, depth_kind)
    if kind == "synthetic":
        raise ValueError("synthetic data is rendered, not read: there is no file to check")
    return _READERS[kind](path, depth_kind), f"{kind}:{Path(path).expanduser()}"


def _report(problems: list[str], skip_bad: bool, total: int, where: str, depth_kind: str) -> None:
    """Raise on bad samples, or (skip_bad) warn how many were skipped -- never silently."""
    if not problems:
        return
    listed = "; ".join(problems[:_MAX_LISTED]) + (f"; ... ({len(problems) - _MAX_LISTED} more)"
                                                  if len(problems) > _MAX_LISTED else "")
    if not skip_bad:
        # only what the file listing shows is known here: each file's content is read when
        # a batch first needs it, so a corrupt one would stop the run after these are fixed
        kind = " --depth-kind disparity" if depth_kind == "disparity" else ""
        raise DatasetError(f"{where}: {len(problems)} bad sample(s): {listed} (found without "
                           f"reading the files; `depthnas data --data {shlex.quote(where)}{kind}` reads every "
                           "file too and lists every bad one; --skip-bad, or data.skip_bad: "
                           "true, leaves them out)")
    logger.warning("%s: skipped %d of %d samples with bad input: %s", where, len(problems), total, listed)


def assign_groups(refs: list[SampleRef], seed: int, val_fraction: float, reg_fraction: float,
                  *, warn: bool = True
                  ) -> tuple[list[SampleRef], list[SampleRef], list[SampleRef], bool]:
    """Shuffle whole groups with the seed and fill val, then reg; the rest trains.
    Returns (train, reg, val, whether every scene stayed in one split).

    With only a handful of scenes, whole groups overshoot the held-out sizes and starve
    train; below half the intended train size we fall back to a per-sample split (and
    log it, if `warn`): a slightly leaky split beats an unusable one.
    """
    n_train, n_reg, n_val = split_counts(len(refs), val_fraction, reg_fraction)
    groups: dict[str, list[SampleRef]] = {}
    for r in sorted(refs, key=lambda r: r.id):
        groups.setdefault(r.group or r.id, []).append(r)
    names = sorted(groups)
    order = np.random.default_rng([seed, 0x5EED]).permutation(len(names))
    val: list[SampleRef] = []
    reg: list[SampleRef] = []
    train: list[SampleRef] = []
    for k in order:
        g = groups[names[k]]
        if len(val) < n_val:
            val += g
        elif len(reg) < n_reg:
            reg += g
        else:
            train += g
    if len(train) >= max(1, n_train // 2):
        return train, reg, val, True
    if warn:
        logger.warning("too few scene groups (%d) for a scene-level split; splitting per sample, "
                       "so frames of one scene may sit in two splits (near-duplicates in train "
                       "and val)", len(names))
    # the shuffled scenes, each one's frames in order: cut in three, a scene's
    # near-duplicate frames sit in two splits only where a cut falls
    flat = [r for k in order for r in groups[names[k]]]
    return flat[n_val + n_reg:], flat[n_val:n_val + n_reg], flat[:n_val], False


def _synthetic_splits(image_size: tuple[int, int], seed: int, n: int, val_fraction: float,
                      reg_fraction: float, augment: bool) -> Splits:
    # train and reg are disjoint index ranges of one stream; val has its own index range
    # far away, so it stays the same when synthetic_samples changes.
    n_train, n_reg, n_val = split_counts(n, val_fraction, reg_fraction)
    return Splits(
        train=SyntheticDepth(n_train, image_size, seed, augment),
        reg=SyntheticDepth(n_reg, image_size, seed, False, index_offset=n_train),
        val=SyntheticDepth(n_val, image_size, seed, False, index_offset=VAL_INDEX_OFFSET),
        seed=seed,
        spec="synthetic",
    )


def build_splits(
    spec: str,
    image_size: tuple[int, int],
    seed: int = 0,
    *,
    synthetic_samples: int = SYNTHETIC_SAMPLES,
    val_fraction: float = VAL_FRACTION,
    reg_fraction: float = REG_FRACTION,
    augment: bool = True,
    skip_bad: bool = False,
    depth_kind: str = "depth",
) -> Splits:
    """Build deterministic train / reg / val splits for ``spec``.

    ``spec`` is ``"synthetic"`` or ``"KIND:PATH"`` with KIND in redweb, nyuv2, diode,
    folder.  ``depth_kind`` ("depth" or "disparity") applies to ``folder``; the other
    formats have fixed conventions.  Only ``train`` is augmented.  Bad inputs raise
    :class:`DatasetError` naming the file; with ``skip_bad`` every sample is loaded and
    checked here so broken ones are skipped (and counted in a warning) up front.
    """
    image_size = check_image_size(image_size)
    check_depth_kind(depth_kind)
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    kind, _ = parse_spec(spec, depth_kind)
    if kind == "synthetic":
        return _synthetic_splits(image_size, seed, synthetic_samples, val_fraction, reg_fraction, augment)

    reader, where = open_reader(spec, depth_kind)
    refs, problems = reader.index()
    total = len(refs) + len(problems)
    if skip_bad:  # load everything now, so the skip count is known before training starts
        good: list[SampleRef] = []
        for ref in refs:
            try:
                reader.load(ref)
            except DatasetError as e:
                problems.append(str(e))
            else:
                good.append(ref)
        refs = good
    _report(problems, skip_bad, total, where, depth_kind)
    if not refs and total:  # the layout was right: every sample it found was bad
        raise DatasetError(f"{where}: no usable samples: all {total} found have bad input "
                           f"(the first: {problems[0]})")
    if not refs:
        raise reader.no_samples(where)

    train, reg, val, _ = assign_groups(refs, seed, val_fraction, reg_fraction)
    evaluate = DepthTransform(image_size, augment=False)
    return Splits(
        train=PairedDepthDataset(reader, train, DepthTransform(image_size, augment=augment)),
        reg=PairedDepthDataset(reader, reg, evaluate),
        val=PairedDepthDataset(reader, val, evaluate),
        seed=seed,
        spec=spec,
        skipped=problems if skip_bad else [],
    )
