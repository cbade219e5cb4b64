"""The depth proxy benchmark's shared machinery (used by build_table.py and ../ranking.py).

What is the same as `depthnas train` / `depthnas search`, and what is not:

* Models, loss, optimiser, schedule, mixed precision, gradient clipping and every
  training step are depthnas' own: `space.build_fixed` / `build_supernet`,
  `make_task`, and `Trainer.train_step` / `Trainer.fit` (AdamW with the backbone's
  own learning rate, cosine schedule, bf16 autocast). Validation is
  `scoring.evaluate_fixed` (stand-alone) and `PathEvaluator` (super-net paths,
  BN recalibration, cached encoder features); the landmark term is
  `LandmarkRegularizer`.
* Data: the synthetic splits of `build_splits("synthetic", ...)` with
  `augment=False`, rendered once (`render_scene` with the per-index generators
  `SyntheticDepth` uses, then its target/image normalisation) into one tensor file
  and held on the GPU. `TensorTrainer` draws exactly the batches the stock
  trainer's DataLoader would (same permutation per epoch), from those tensors,
  instead of a DataLoader that would copy every batch from host memory. Nothing
  goes through albumentations (the GPU image lacks it): for an image rendered at
  the network size its eval transform is the identity apart from the
  normalisation, which is the same function here (tests check item equality).
* Per-training I/O is cut: no per-epoch checkpoints, no TensorBoard (a
  stand-alone proxy training writes nothing; a super-net writes its final
  checkpoint so `depthnas rank` can load it).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from scipy import stats
from torch.utils.data import DataLoader, Dataset

from depthnas import config as config_mod
from depthnas.run_start import fixed_shape_kernels
from depthnas.config import Config
from depthnas.scoring import evaluate_fixed
from depthnas.evolution import new_models
from depthnas.io import append_jsonl, check_file_to_write, check_parent_folders
from depthnas.landmarks import LandmarkRegularizer, step_indices
from depthnas.models import count_parameters, model_kwargs
from depthnas.spaces import Arch, SearchSpace
from depthnas.task import make_task
from depthnas.runtime import resolve_device, seed_everything
from depthnas.trainer import Trainer, epoch_seed

HERE = Path(__file__).resolve().parent

# The proxy recipe (README.md explains the choices). "gpu" is the one the committed
# table uses; "small" is a CPU-sized table; "cpu" is a tiny smoke-test size.
PRESETS: dict[str, dict[str, Any]] = {
    "gpu": {
        "model": {"backbone": "resnet18", "features": 32},
        "data": {"image_size": [128, 128], "synthetic_samples": 2048, "batch_size": 32,
                 "augment": False},
        "standalone": {"epochs": 8, "lr": 1e-3, "backbone_lr": 1e-4, "precision": "bf16",
                       "log_every": 1000},
        "supernet": {"lr": 1e-3, "backbone_lr": 1e-4, "precision": "bf16", "log_every": 50},
    },
    # The same experiment at a size two CPU cores finish in under an hour (README.md):
    # a smaller backbone, image and batch, and one learning rate for the whole model
    # (264 steps at the backbone's 1e-4 leave a random-init encoder barely trained;
    # at 1e-3 two seeds of one architecture disagreed more than architectures did).
    "small": {
        "model": {"backbone": "mobilenetv3_small_050", "features": 16},
        "data": {"image_size": [64, 64], "synthetic_samples": 1024, "batch_size": 16,
                 "augment": False},
        "standalone": {"epochs": 6, "lr": 3e-3, "backbone_lr": 3e-3, "precision": "fp32",
                       "channels_last": True, "log_every": 1000},
        # At 3e-3, 10 of 24 super-nets (880 steps) ended with the shared head's final
        # ReLU dead for most paths, which makes their rankings noise; 1e-3 did not.
        "supernet": {"lr": 1e-3, "backbone_lr": 1e-3, "precision": "fp32",
                     "channels_last": True, "log_every": 50},
    },
    "cpu": {
        "model": {"backbone": "mobilenetv3_small_050", "features": 16},
        "data": {"image_size": [32, 32], "synthetic_samples": 24, "batch_size": 4,
                 "augment": False},
        "standalone": {"epochs": 1, "steps_per_epoch": 2, "lr": 2e-3, "backbone_lr": 1e-3,
                       "precision": "fp32", "log_every": 1000},
        "supernet": {"lr": 2e-3, "backbone_lr": 1e-3, "precision": "fp32", "log_every": 1},
    },
}
DATA_SEED = 0  # every training, every seed and every super-net sees the same splits


def make_config(preset: str, overrides: Sequence[str] = ()) -> Config:
    """The proxy configuration: depthnas defaults < preset < `section.field=value` overrides."""
    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    cfg = config_mod.apply(Config(), json.loads(json.dumps(PRESETS[preset])))
    cfg = config_mod.apply_dotted(cfg, list(overrides))
    cfg.seed = DATA_SEED
    cfg.data.spec = "synthetic"
    cfg.data.augment = False  # the tensors are the un-augmented splits
    return cfg


def data_key(cfg: Config) -> dict[str, Any]:
    d = cfg.data
    return {"spec": "synthetic", "seed": DATA_SEED, "image_size": list(d.image_size),
            "synthetic_samples": d.synthetic_samples, "val_fraction": d.val_fraction,
            "reg_fraction": d.reg_fraction}


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def standalone_recipe(cfg: Config) -> dict[str, Any]:
    """What makes two proxy losses comparable (the training seed is per entry)."""
    t = cfg.standalone
    return {"data": data_key(cfg), "backbone": cfg.model.backbone,
            "backbone_weights": cfg.model.backbone_weights, "features": cfg.model.features,
            "first_block_input": cfg.model.first_block_input, "batch_size": cfg.data.batch_size,
            "epochs": t.epochs, "steps_per_epoch": t.steps_per_epoch, "lr": t.lr,
            "backbone_lr": t.backbone_lr, "weight_decay": t.weight_decay,
            "grad_clip": t.grad_clip, "loss": t.loss, "precision": t.precision}


# ---- data --------------------------------------------------------------------------
def _render_one(job: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    from depthnas.datasets.render import render_scene
    from depthnas.datasets.transforms import normalize_target
    seed, index, h, w = job
    rgb, depth = render_scene(np.random.default_rng([seed, index]), h, w)
    disparity = (1.0 / depth).astype(np.float32)
    return rgb, normalize_target(disparity, np.ones(depth.shape, bool))


def interrupt_on_sigterm():
    """Make SIGTERM (what `timeout` sends) raise KeyboardInterrupt in this process, so
    the caller's clean-up still writes what finished. Returns the previous handler."""
    import signal

    def on_term(signum, frame):
        # once: GNU timeout's second SIGTERM (to the whole group) follows at once, and
        # raised again it would break off the writing of what finished
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")
    return signal.signal(signal.SIGTERM, on_term)


def stop_workers(procs: Sequence[Any], wait_s: float = 2.0) -> None:
    """Ignore SIGTERM from here on, then reap the worker processes, ending those that
    have not ended on their own within `wait_s` (together). GNU timeout sends SIGTERM
    twice (to the child, then its group): with the default handler back, the second
    killed the process before it wrote what finished. The caller restores its handler
    once that is written (`restore_sigterm`). A worker terminated while it exits
    skips its clean-up, and the resource tracker then warned of a leaked semaphore at
    the end of every table."""
    import signal
    import time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    deadline = time.time() + wait_s
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.time()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=10)


def restore_sigterm(old_handler: Any) -> None:
    import signal
    signal.signal(signal.SIGTERM, old_handler)


def _default_sigterm() -> None:
    """Pool workers must not inherit a parent's SIGTERM handler (the pool ends them so)."""
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def split_indices(cfg: Config) -> dict[str, list[int]]:
    """Generator indices of each split, as `build_splits("synthetic")` assigns them."""
    from depthnas.datasets.splits import split_counts
    from depthnas.datasets.synthetic import VAL_INDEX_OFFSET
    d = cfg.data
    n_train, n_reg, n_val = split_counts(d.synthetic_samples, d.val_fraction, d.reg_fraction)
    return {"train": list(range(n_train)), "reg": list(range(n_train, n_train + n_reg)),
            "val": [VAL_INDEX_OFFSET + i for i in range(n_val)]}


def render_data(cfg: Config, cache_dir: str | Path, processes: int = 1,
                say=print) -> Path:
    """Render the three splits once into `cache_dir/data_<key>.pt` (reused if present):
    uint8 RGB [N,H,W,3] and float32 targets in [0,1] [N,H,W] per split."""
    cache_dir = Path(cache_dir)
    key = data_key(cfg)
    path = cache_dir / f"data_{digest(key)}.pt"
    if path.is_file():
        return path
    h, w = cfg.data.image_size
    idx = split_indices(cfg)
    jobs = [(DATA_SEED, i, h, w) for name in ("train", "reg", "val") for i in idx[name]]
    start = time.time()
    if processes > 1:
        import multiprocessing as mp
        # fork: the parent has not touched CUDA; rendering is numpy only
        with mp.get_context("fork").Pool(processes, initializer=_default_sigterm) as pool:
            out = pool.map(_render_one, jobs, chunksize=max(1, len(jobs) // (processes * 8)))
    else:
        out = [_render_one(j) for j in jobs]
    data: dict[str, Any] = {"key": key}
    pos = 0
    for name in ("train", "reg", "val"):
        n = len(idx[name])
        part = out[pos:pos + n]
        pos += n
        data[name] = {"rgb": torch.from_numpy(np.stack([p[0] for p in part])),
                      "target": torch.from_numpy(np.stack([p[1] for p in part]))}
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(data, tmp)
    os.replace(tmp, path)
    say(f"rendered {len(jobs)} synthetic scenes at {h}x{w} in {time.time() - start:.1f}s "
        f"({processes} process(es)) -> {path}")
    return path


class TensorDepthSet(Dataset):
    """One split held as device tensors: items and whole batches, as SyntheticDepth
    (augment=False) would give them after collation."""

    def __init__(self, rgb: torch.Tensor, target: torch.Tensor, device: torch.device):
        from depthnas.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32) * 255.0
        inv_std = 1.0 / (torch.tensor(IMAGENET_STD, dtype=torch.float32) * 255.0)
        rgb = rgb.to(device)
        # normalize_image's arithmetic, on the device: (x - mean*255) * 1/(std*255)
        self.image = ((rgb.float() - mean.to(device)) * inv_std.to(device)).permute(0, 3, 1, 2).contiguous()
        self.target = target.to(device)[:, None].contiguous()
        self.mask = torch.ones_like(self.target, dtype=torch.bool)  # synthetic depth is valid everywhere
        self.device = device

    def __len__(self) -> int:
        return self.image.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.image[i], "target": self.target[i], "mask": self.mask[i]}

    def batch(self, indices: torch.Tensor | Sequence[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long).to(self.device)
        return {"image": self.image.index_select(0, idx), "target": self.target.index_select(0, idx),
                "mask": self.mask.index_select(0, idx)}


class TensorSplits:
    def __init__(self, path: str | Path, device: torch.device):
        data = torch.load(path, map_location="cpu", weights_only=True)
        self.key = data["key"]
        for name in ("train", "reg", "val"):
            setattr(self, name, TensorDepthSet(data[name]["rgb"], data[name]["target"], device))


# ---- training ------------------------------------------------------------------------
class TensorTrainer(Trainer):
    """depthnas' Trainer with batches cut from device tensors in the order the stock
    DataLoader would draw them, and no per-epoch I/O (only the final checkpoint when
    `final_checkpoint`; metrics go to `history`, and to metrics.jsonl when `metrics_file`)."""

    def __init__(self, *args: Any, final_checkpoint: bool = False, metrics_file: bool = False,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.final_checkpoint, self.metrics_file = final_checkpoint, metrics_file
        self.history: list[dict[str, Any]] = []

    def _batches(self, epoch: int):
        s = epoch_seed(self.seed, epoch)
        seed_everything(s)
        # The stock loader's own sampler over indices: the same batches in the same order
        # (its iterator also draws a base seed from the generator first), whatever the
        # torch version; only the indices go through it.
        indices = DataLoader(range(len(self.train_set)), batch_size=self.batch_size, shuffle=True,
                             drop_last=True, generator=torch.Generator().manual_seed(s))
        for i, idx in enumerate(indices):
            if i >= self.steps_per_epoch:
                break
            yield self.train_set.batch(idx)

    def save(self) -> None:
        if self.final_checkpoint and self.state.epoch >= self.total_epochs:
            super().save()

    def record_metrics(self, record: dict[str, Any]) -> None:
        record = {"phase": self.name, **record}
        self.history.append(record)
        if self.metrics_file:
            append_jsonl(self.out_dir / "metrics.jsonl", record)


class TensorLandmarkRegularizer(LandmarkRegularizer):
    """The landmark regularizer reading its step's batch (`step_indices`, as the
    stock one) straight from the device tensors of the regularizer split."""

    def batch(self, step: int) -> dict[str, Any]:
        return self.reg_set.batch(step_indices(len(self.reg_set), self.batch_size, self.seed, step))


def train_proxy(cfg: Config, space: SearchSpace, arch: Arch, splits: TensorSplits, seed: int,
                device: torch.device, work_dir: str | Path) -> dict[str, Any]:
    """One stand-alone proxy training, as train_standalone does it (model, task,
    Trainer, evaluate_fixed), with seed `seed` for the initialisation and batch order."""
    seed_everything(seed)  # `depthnas train` seeds before building the model too
    task = make_task(space, cfg.standalone.loss)
    model = space.build_fixed(arch, **model_kwargs(cfg.model, space))
    trainer = TensorTrainer(model, task, cfg.standalone, splits.train, out_dir=work_dir,
                            total_epochs=cfg.standalone.epochs, seed=seed, device=device,
                            name="standalone", progress=False, batch_size=cfg.data.batch_size)
    start = time.time()
    trainer.fit(resume=False)
    train_loss = float(np.mean([r["train_loss"] for r in trainer.history if "train_loss" in r][-1:]))
    val = evaluate_fixed(trainer.model, task, splits.val, batch_size=cfg.data.batch_size,
                         device=device, precision=cfg.standalone.precision)
    return {"arch": space.to_string(arch), "space": space.name, "seed": seed,
            "val_loss": float(val), "train_loss_last_epoch": train_loss,
            "params": count_parameters(trainer.model), "steps": trainer.state.step,
            "train_time_s": round(time.time() - start, 2)}


# ---- architectures and statistics ---------------------------------------------------------
def computation_key(space: SearchSpace, arch: Arch) -> tuple:
    """What a depth model computes, up to its weights: stronger than the space's
    function_key (one key per built model), which keeps apart strings whose models
    differ only in which edge holds an op. A skip edge passes its node's terms on and
    the 3x3 average pool is linear, so `c1,none,none,none,skip` (node 3 = skip of
    node 2 = c1 of node 0) computes what `ap,skip,c1,none,none` (node 3 = c1 of node
    0; node 2 unread) does: trained stand-alone, the same model twice. Each node is
    a multiset of terms; a conv edge (ReLU-conv-BN) makes one term of its input."""
    from depthnas.spaces.depth import DepthSpace
    from depthnas.spaces.depth.space import EDGES, has_output, running_blocks
    if not isinstance(space, DepthSpace):
        return space.function_key(arch)

    def frozen(terms: Counter) -> tuple:
        return tuple(sorted(terms.items(), key=repr))

    def through(op: str, terms: Counter) -> Counter:
        if op == "none":
            return Counter()
        if op == "skip_connect":
            return Counter(terms)
        if op == "avg_pool_3x3":
            return Counter({("ap", t): c for t, c in terms.items()})
        return Counter({(op, frozen(terms)): 1})

    blocks = []
    for block in running_blocks(space.blocks(arch)):
        edges = dict(zip(EDGES, block.edges))
        nodes = {"0": Counter({"n0": 1}), "1": Counter({"n1": 1})}
        for target in "23":
            nodes[target] = sum((through(edges[e], nodes[e[-1]]) for e in EDGES if e[0] == target),
                                Counter())
        blocks.append((frozen(nodes["3"]), block.upsample if has_output(block) else "bilinear"))
    return (space.name, tuple(blocks))


def random_archs(space: SearchSpace, n: int, rng: random.Random) -> list[Arch]:
    """n random architectures without dead cells, each computing what no other one
    does (`computation_key`: two that compute alike would be one training twice).
    Prefix-stable: a longer draw begins with a shorter one's architectures."""
    draws = (space.sample(rng) for _ in range(1000 * max(n, 1)))
    seen: set[tuple] = set()

    def first_of_its_kind(arch: Arch) -> bool:
        key = computation_key(space, arch)
        if key in seen:
            return False
        seen.add(key)
        return True

    live = (a for a in draws if not space.has_dead_cell(a) and first_of_its_kind(a))
    out = new_models(space, live, (), n)
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} distinct live models found in {space.name}")
    return out


def seed_agreement(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Kendall tau between the first two seeds per space and over all, and the
    median |seed0 - seed1| (the noise level: the sparse Kendall tau threshold)."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for arch, e in entries.items():
        s = [v for v in e["seeds"] if v is not None and math.isfinite(v)]
        if len(e["seeds"]) >= 2 and len(s) == len(e["seeds"]):
            groups.setdefault(arch.split(":")[0], []).append((e["seeds"][0], e["seeds"][1]))
    groups["overall"] = [p for k in list(groups) for p in groups[k]]
    tau, diff, n = {}, {}, {}
    for k, pairs in groups.items():
        n[k] = len(pairs)
        if len(pairs) >= 2:
            a, b = np.array(pairs).T
            tau[k] = float(stats.kendalltau(a, b, variant="b").statistic)
            diff[k] = float(np.median(np.abs(a - b)))
        else:
            tau[k] = diff[k] = None
    return {"kendall_tau": tau, "median_abs_diff": diff, "n_pairs": n}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from depthnas.runtime import cpu_model
    return f"cpu ({cpu_model()}, {os.cpu_count()} cores)"


def check_work(work: Path) -> None:
    """--work names a folder (made if missing): a file there failed with a traceback
    once the data was rendered into it."""
    if work.exists() and not work.is_dir():
        raise SystemExit(f"--work {work} is a file; name a folder for the work files")
    try:  # below a file, or where this user may not write: a traceback at the first write
        check_parent_folders(work, "--work")
    except ValueError as err:
        raise SystemExit(str(err)) from None


def check_out_file(path: Path, flag: str) -> None:
    """`depthnas.io.check_file_to_write` as a script's exit: a traceback after all
    the work, otherwise."""
    try:
        check_file_to_write(path, flag)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def check_device(device: str) -> None:
    """In the parent, before the worker processes that would each fail on it: --device
    names a device this machine has (SystemExit naming it, else)."""
    try:
        resolve_device(device)
    except ValueError as err:
        raise SystemExit(f"error: --device {device}: {err}") from None


def resolve(device: str) -> torch.device:
    """The training device of this process; its convolutions are tuned as in
    `depthnas train` (every proxy training runs at one input size)."""
    fixed_shape_kernels()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def worker_threads(requested: int | None, workers: int) -> int:
    """CPU threads per training process: 1 unless asked (the GPU does the work, and on a
    shared CPU OpenMP threads that wait on each other make every op many times slower)."""
    if requested:
        return requested
    return 1 if workers > 1 or (os.cpu_count() or 1) <= 4 else 2
