"""Depth metrics of a trained model on a data set: the work of `depthnas evaluate`
(its flags and printout are in evaluate_cli.py).

Evaluation follows the MiDaS protocol on the raw samples (original resolution,
the data's own units), not on the normalised training crops: the prediction is
resized back to the image, aligned to the ground-truth disparity by least-squares
scale and shift, and compared there (SSI loss, against the per-image min-max target
as in training) and in depth (AbsRel, delta1 bad pixels, RMSE, with an optional cap
in the data's depth unit, e.g. 10 m for NYU).

Synthetic scenes have no original resolution: they are rendered at the model's
training size, and `--split all` means the held-out validation scenes (the
training scenes are `--split train`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from depthnas.datasets.spec import split_spec
from depthnas.datasets.settings import EVAL_SYNTHETIC_SAMPLES, REG_FRACTION, SYNTHETIC_SAMPLES, VAL_FRACTION
from depthnas.datasets.transforms import check_net_size, net_side

from .config import canonical_spec
from .data import SPLIT_NAMES
from .depth_metrics import MetricAccumulator
from .out_of_memory import said_as_out_of_memory

SPLITS = ("all", *SPLIT_NAMES)


def unseen_scenes(spec: str, split: str) -> bool:
    """Synthetic data's "all": scenes no training run has seen (the validation index
    range), not every sample of a split."""
    return split_spec(spec) == ("synthetic", "") and split == "all"


def raw_samples(spec: str, split: str, *, seed: int = 0, synthetic_samples: int = SYNTHETIC_SAMPLES,
                skip_bad: bool = False, depth_kind: str = "depth",
                image_size: tuple[int, int] = (384, 384),
                val_fraction: float = VAL_FRACTION, reg_fraction: float = REG_FRACTION,
                recorded: str | Path | None = None, skipped: list[str] | None = None
                ) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(id, rgb uint8, target disparity, valid mask) per sample of `split`.
    `image_size` is the rendering size of synthetic scenes; files keep their own.
    `recorded`: a run's splits.json, which the split must still match. `skipped`
    receives the data set's bad samples that skip_bad left out (before any split)."""
    from depthnas.datasets import SyntheticDepth, build_splits
    from depthnas.datasets.synthetic import VAL_INDEX_OFFSET
    from .data import check_recorded_splits
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if unseen_scenes(spec, split):
        chosen = [SyntheticDepth(synthetic_samples, image_size, seed, index_offset=VAL_INDEX_OFFSET)]
    else:
        # "all": no held-out fractions, so every sample lands in one part (a one-image
        # folder is a valid evaluation set).
        fractions = ({"val_fraction": 0.0, "reg_fraction": 0.0} if split == "all" else
                     {"val_fraction": val_fraction, "reg_fraction": reg_fraction})
        splits = build_splits(spec, image_size, seed=seed, synthetic_samples=synthetic_samples,
                              augment=False, skip_bad=skip_bad, depth_kind=depth_kind, **fractions)
        if skipped is not None:
            skipped.extend(splits.skipped)
        if recorded is not None and split != "all":
            check_recorded_splits(splits, recorded, only=split, advice=(
                "restore the data as it was, or score every sample (--split all)"))
        parts = {"train": splits.train, "reg": splits.reg, "val": splits.val}
        chosen = [splits.train] if split == "all" else [parts[split]]
    for ds in chosen:
        ids = ds.ids()  # once: a list of every sample's name (per sample, quadratic work)
        for i in range(len(ds)):
            rgb, disparity, valid = ds.raw(i)
            disparity = disparity.astype(np.float64)
            # Disparity 0 stays in (ReDWeb's farthest level, as in training): the SSI
            # counts it, and the depth metrics skip it themselves (1/0 has no depth).
            valid = valid & np.isfinite(disparity)
            yield ids[i], rgb, disparity, valid


def check_depth_cap(depth_cap: float | None) -> float | None:
    """A depth in the data's unit, or None; 0 means none, as --depth-cap documents."""
    if depth_cap is None:
        return None
    if not math.isfinite(depth_cap) or depth_cap < 0:
        raise ValueError(f"--depth-cap (depth_cap) must be a finite depth >= 0 (0 = no cap), "
                         f"got {depth_cap}")
    return depth_cap if depth_cap > 0 else None


# The settings that decide which samples fall in which split.
SPLIT_SETTINGS = ("seed", "synthetic_samples", "depth_kind", "skip_bad", "val_fraction",
                  "reg_fraction")


def own_split(model_path: str | Path, spec: str) -> dict[str, Any] | None:
    """The split settings of the run `model_path` comes from (`SPLIT_SETTINGS`, and its
    splits.json as `recorded`), when `spec` names that run's data; else None."""
    from . import config as config_mod
    folder = config_folder_of(model_path)
    if folder is None:
        return None
    run = config_mod.load(folder / "config.yaml")
    if canonical_spec(run.data.spec) != canonical_spec(spec):
        return None
    settings = {k: run.seed if k == "seed" else getattr(run.data, k) for k in SPLIT_SETTINGS}
    return {**settings, "recorded": folder / "splits.json"}


@torch.no_grad()
def evaluate(model_path: str | Path, spec: str, *, split: str = "all", depth_cap: float | None = None,
             net_size: int | None = None, device: str | torch.device = "auto", progress: bool = True,
             **data_kw: Any) -> dict[str, Any]:
    """Depth metrics (aligned SSI, AbsRel, delta1, RMSE, inverted) of the model at
    `model_path` (a model file, or a training or search run folder) on `split` of the
    data `spec`, beside a constant prediction's on the same pixels; `data_kw` goes to
    `raw_samples`. The model's own run's data is read with that run's settings
    (`SPLIT_SETTINGS`), and its train, reg or val split is the run's, as its
    splits.json records it, unless `data_kw` sets one of them; other data is split
    with seed 0 and 0.15 fractions by default. `depth_cap` is the caller's: the CLI's
    10 m for NYUv2 is its own default."""
    from depthnas.datasets import prepare_image
    from .models import load_depth_model, trained_image_size
    from .runtime import resolve_device
    check_net_size(net_size)
    depth_cap = check_depth_cap(depth_cap)
    device = resolve_device(str(device))  # a GPU that is not there: a clear error, not torch's
    model, meta = load_depth_model(model_path, device)
    trained_at = trained_image_size(meta, model_path)
    # the side it runs at: --net-size 50 runs it at 64, and the report says so
    size = net_side(net_size) if net_size is not None else max(trained_at)
    acc = MetricAccumulator(depth_cap=depth_cap)
    # the level of a model that learned nothing (one value everywhere), on the same
    # pixels: a score means something only against it
    constant = MetricAccumulator(depth_cap=depth_cap)
    skipped: list[str] = []
    if not set(data_kw) & {*SPLIT_SETTINGS, "recorded"}:
        # the run's data as it read it (re-split with defaults, its training samples
        # would be scored as val); "all" has no split to hold to
        own = own_split(model_path, spec) or {}
        if split == "all":
            own.pop("recorded", None)
        data_kw = {**own, **data_kw}
    # a model of no run (or on other data) is scored on as many scenes as the CLI draws
    data_kw.setdefault("synthetic_samples", EVAL_SYNTHETIC_SAMPLES)
    samples = raw_samples(spec, split, image_size=trained_at, skipped=skipped, **data_kw)
    for name, rgb, disparity, valid in tqdm(samples, desc="evaluating", disable=not progress):
        with said_as_out_of_memory(f"not enough memory to run the network at net size {size} on "
                                   f"{device} ({rgb.shape[1]}x{rgb.shape[0]} image): pass a "
                                   "smaller --net-size"):
            x = prepare_image(rgb, size).to(device)
            pred = F.interpolate(model(x), size=disparity.shape, mode="bilinear", align_corners=False)
        if not bool(torch.isfinite(pred).all()):  # NaN compares false: delta1 read it as 0%
            raise ValueError(f"{model_path}: the model outputs NaN or inf on sample {name} (a "
                             "damaged model file, or a training that diverged): nothing to score")
        target, mask = torch.from_numpy(disparity).float()[None], torch.from_numpy(valid)[None]
        acc.update(pred[:, 0].float().cpu(), target, mask)
        constant.update(torch.ones_like(target), target, mask)
    if acc.count == 0:
        raise ValueError(f"{spec}: no sample with valid depth to evaluate (three valid pixels or "
                         "more, not all at one depth; within --depth-cap, where one is set)")
    level = {k: v for k, v in constant.compute().items() if k != "inverted"}  # it has no sign
    # the model as a path that means something from anywhere (the report lies in its run)
    return {"model": str(Path(model_path).resolve()), "arch": meta.get("arch"), "data": spec,
            "split": split, "depth_kind": data_kw.get("depth_kind", "depth"),
            # what drew the samples (synthetic scenes, a split): another seed, others
            "seed": data_kw.get("seed", 0), "samples": acc.count,
            "left_out": acc.left_out, "skipped": skipped,
            "depth_cap": depth_cap, "net_size": size, **acc.compute(),
            "constant_prediction": level}


def config_folder_of(model_path: str | Path) -> Path | None:
    """The folder (with its config.yaml) of the search run or training a model comes
    from, if any. Unlike `model_files.run_of_model`, a search's own stand-alone
    trainings (standalone/<arch>/) count: their config.yaml names the data and split
    they trained on, which is what evaluate asks."""
    p = Path(model_path)
    for folder in ([p] if p.is_dir() else []) + [p.parent, p.parent.parent]:
        if (folder / "config.yaml").is_file():
            return folder
    return None
