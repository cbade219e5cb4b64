"""Read every sample of a data set once: every bad one named at once, and what
training will see (sizes, valid pixels, value range).

A run reads samples lazily, so without --skip-bad a bad file stops it when first
met, one file per run; on data of one's own, this check comes first."""
from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .io import DatasetError
from .settings import REG_FRACTION, VAL_FRACTION
from .splits import assign_groups, open_reader, split_counts

__all__ = ["DataCheck", "check_data"]


@dataclass
class DataCheck:
    where: str
    value_kind: str                  # what the files hold: "depth" (metres) or "disparity"
    value_label: str = ""            # what the values shown are, when not value_kind
    samples: int = 0                 # readable samples
    groups: int = 0                  # scenes kept in one split
    scenes_whole: bool = True        # the split keeps each scene whole (enough of them)
    unsplittable: str = ""           # why the readable samples cannot be split, if they cannot
    train_samples: int = 0           # the training split's share of the readable samples
    batch_size: int = 0              # the batch a run would train with
    problems: list[str] = field(default_factory=list)
    not_read: list[str] = field(default_factory=list)  # left out on purpose (Reader.not_read)
    sizes: Counter = field(default_factory=Counter)   # (W, H) -> images
    valid: list[float] = field(default_factory=list)  # fraction of valid pixels, per image
    low: float = float("inf")        # smallest and largest valid value, in the files' kind
    high: float = float("-inf")

    def lines(self) -> list[str]:
        kept = ("scenes stay in one split" if self.scenes_whole else
                "too few to keep each in one split: the split will be per sample, so frames "
                "of one scene may sit in train and validation")
        grouped = f" in {self.groups} group(s) ({kept})" if self.samples and not self.unsplittable else ""
        out = [f"{self.where}: {self.samples} readable sample(s){grouped}, {len(self.problems)} bad"]
        if self.unsplittable:
            out.append(f"too few for a run: {self.unsplittable}")
        elif self.batch_starved:
            out.append(f"too few for a run: the training split holds {self.train_samples} "
                       f"sample(s), fewer than the batch size {self.batch_size} (search or "
                       f"train with --batch-size {self.train_samples} or lower, or add data)")
        if self.samples:
            common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in self.sizes.most_common(3))
            more = f", {len(self.sizes) - 3} other sizes" if len(self.sizes) > 3 else ""
            out.append(f"image sizes (WxH): {common}{more}")
            v = np.asarray(self.valid) * 100
            out.append(f"valid pixels per image: mean {v.mean():.0f}%, least {v.min():.0f}%")
            unit = " m" if self.value_kind == "depth" else ""
            out.append(f"{self.value_label or self.value_kind} over valid pixels: "
                       f"{self.low:.4g}{unit} to {self.high:.4g}{unit}")
        out += [f"not read: {p}" for p in self.not_read]
        out += [f"bad: {p}" for p in self.problems]
        return out

    @property
    def usable(self) -> bool:
        """A run can train on it as it is: no bad sample, and enough to split."""
        return not self.problems and not self.unsplittable and not self.batch_starved

    @property
    def batch_starved(self) -> bool:
        """Split, but the training split holds no whole batch: a run refuses it."""
        return bool(self.samples) and not self.unsplittable and self.train_samples < self.batch_size


def check_data(spec: str, depth_kind: str = "depth", progress: bool = False, *,
               val_fraction: float = VAL_FRACTION, reg_fraction: float = REG_FRACTION,
               batch_size: int = 1, seed: int = 0) -> DataCheck:
    """Index and read every sample of `spec` (KIND:PATH). A data set that cannot be
    indexed at all (a wrong path) raises DatasetError, as a run would. The fractions
    batch size and seed are the run's (data.val_fraction, data.reg_fraction,
    data.batch_size, seed), for whether its split can keep each scene whole and leaves
    training a batch (scenes of unequal sizes split otherwise under another seed)."""
    from tqdm.auto import tqdm
    reader, where = open_reader(spec, depth_kind)
    refs, problems = reader.index()
    check = DataCheck(where=where, value_kind=reader.value_kind, value_label=reader.value_label,
                      problems=list(problems), not_read=list(reader.not_read),
                      batch_size=batch_size)
    groups, good = set(), []
    for ref in tqdm(refs, desc="reading", disable=not progress):
        try:
            rgb, disparity, valid = reader.load(ref)
        except DatasetError as err:
            check.problems.append(str(err))
            continue
        check.samples += 1
        groups.add(ref.group)
        good.append(ref)
        check.sizes[(rgb.shape[1], rgb.shape[0])] += 1
        check.valid.append(float(valid.mean()))
        # metric depth back to metres (load() turned it into 1/depth); disparity as read
        values = 1.0 / disparity[valid] if reader.value_kind == "depth" else disparity[valid]
        check.low, check.high = min(check.low, float(values.min())), max(check.high, float(values.max()))
    check.groups = len(groups)
    if good:  # none at all: every sample is bad, and said so
        try:
            split_counts(len(good), val_fraction, reg_fraction)
        except DatasetError as err:
            check.unsplittable = str(err)
        else:
            with contextlib.suppress(DatasetError):
                train, _, _, check.scenes_whole = assign_groups(good, seed, val_fraction,
                                                                reg_fraction, warn=False)
                check.train_samples = len(train)
    if not refs and not check.problems:
        raise reader.no_samples(where, "samples")
    return check
