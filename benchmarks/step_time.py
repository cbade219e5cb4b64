"""Step-time benchmark (issue 8): three ratios, measured in one run, on one device.

(a) super-net step on one sampled path  vs  the stand-alone model of that path
    (same weights, same batch; target <= 1.05x)
(b) landmark-regularized step (L_s on a train batch + one landmark pair on a
    regularizer batch, the real LandmarkRegularizer with a shared encoder)
    vs  the plain SPOS step, at equal batch sizes (target <= 1.6x); also the naive
    version (three full forward/backward passes; the paper setup measured 2.06x)
(c) evolutionary-search candidate scoring with cached backbone + lateral features
    (PathEvaluator cache_features=True)  vs  a full forward per candidate
    (cache_features=False) (target >= 5x at the paper's configuration on GPU)

Every step is the real `Trainer.train_step` (autocast, channels-last, AdamW, grad
clipping) on random tensors: images, targets in [0, 1], masks. Timing: warm-up
steps, then rounds in which every variant of a part runs once (interleaved, so
clock, thermal and load drift hit all variants alike), a device sync around each
measured call; a ratio is the median of the per-round ratios. Learning rates are
0: every kernel of the update still runs, but the weights stay fixed, so whether
the landmark pair is violated is decided once and stays so (a violated pair
backpropagates through the regularizer's passes; a satisfied one is cut from the
graph).

Data loading is excluded on both sides of (a) and (b): batches are staged on the
device beforehand (the trainer prefetches its batches, the regularizer its own).
(c) times `PathEvaluator.score` as a search runs it, with and without its cache: the
uncached side also moves each calibration and validation batch to the device per
candidate and runs the whole network to recalibrate, where the cached side keeps its
features on the device and stops after the decoder's last BatchNorm. The ratio is
what caching saves a search, those savings included.

    python benchmarks/step_time.py --preset cpu
    python benchmarks/step_time.py --preset paper --json out.json   # on a GPU
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from depthnas.run_start import fixed_shape_kernels  # noqa: E402
from depthnas.config import LandmarkConfig, TrainConfig  # noqa: E402
from depthnas.scoring import PathEvaluator  # noqa: E402
from depthnas.landmarks import LandmarkRegularizer  # noqa: E402
from depthnas.spaces import get_space  # noqa: E402
from depthnas.stopping import stop_on_signals  # noqa: E402
from depthnas.task import DepthTask  # noqa: E402
from depthnas.runtime import autocast, cpu_model  # noqa: E402
from depthnas.trainer import Trainer, compile_model  # noqa: E402

PRESETS: dict[str, dict[str, Any]] = {
    # < 60 s on 2 CPU cores. resnet18 keeps the backbone the larger part of the
    # step, as resnext101 is at the paper's size (a tiny mobilenet would not).
    # One thread by default: on a shared machine, OpenMP threads waiting on each
    # other under oversubscription made every op ~10x slower (--threads 2 to try).
    "cpu": dict(backbone="resnet18", image_size=64, features=32, batch_size=4,
                precision="fp32", channels_last=False, warmup=2, iters=9,
                calib_batches=3, val_batches=3, candidates=3, device="cpu", threads=1),
    # The paper's depth experiment (section 5.3) on one GPU. Candidate scoring as the
    # search does it: 200 BN recalibration batches (search.calib_batches, SPOS's count)
    # and 40 validation batches (SPOS's tester); a score call is then an average over
    # 240 batches, so one round per candidate after 1 warm-up suffices.
    "paper": dict(backbone="resnext101_32x8d", image_size=384, features=256, batch_size=8,
                  precision="bf16", channels_last=True, warmup=5, iters=20,
                  calib_batches=200, val_batches=40, candidates=5, score_rounds=5,
                  score_warmup=1, device="cuda", threads=None),
}

TARGETS = {"a": ("<=", 1.05), "b": ("<=", 1.6), "c": (">=", 5.0)}

# Dense tensor-core peaks from NVIDIA's data sheets (TFLOP/s). fp32 runs use TF32
# for convolutions (PyTorch's default, torch.backends.cudnn.allow_tf32 = True).
SPEC_PEAKS = {
    "H200": {"bf16": 989.4, "fp32": 494.7},
    "H100 PCIe": {"bf16": 756.0, "fp32": 378.0},
    "H100": {"bf16": 989.4, "fp32": 494.7},      # SXM / HBM3
    "A100": {"bf16": 312.0, "fp32": 156.0},
}


# ---- environment ------------------------------------------------------------------
def driver_version() -> str | None:
    """The NVIDIA driver's version as nvidia-smi reports it (torch does not say), or
    None without one: a figure moves with the driver as much as with torch."""
    import shutil
    import subprocess
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[:1]
    return first[0].strip() if first and first[0].strip() else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} (CPU, {torch.get_num_threads()} threads)"


def spec_peak(name: str, precision: str) -> float | None:
    """The data sheet's peak of the card torch names, or None for a card not in
    SPEC_PEAKS. NVL cards (H100 NVL, H200 NVL) run at a lower power and clock than
    the SXM parts whose names they contain: not guessed, the matmul peak stands."""
    if "NVL" in name:
        return None
    for key, peaks in SPEC_PEAKS.items():
        if key in name:
            return peaks[precision]
    return None


def measured_matmul_peak(device: torch.device, precision: str) -> float | None:
    """Achievable dense peak on this card: an 8192^3 matrix product (bf16, or fp32
    with TF32 allowed as for convolutions), median of 10 after 3 warm-ups."""
    if device.type != "cuda":
        return None
    n = 8192
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        times = []
        for i in range(13):
            torch.cuda.synchronize()
            t = time.perf_counter()
            a @ b
            torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    del a, b
    torch.cuda.empty_cache()
    return 2 * n ** 3 / statistics.median(times) / 1e12


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- data -------------------------------------------------------------------------
def random_batch(n: int, size: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {"image": torch.randn(n, 3, size, size, generator=gen),
            "target": torch.rand(n, 1, size, size, generator=gen),
            "mask": torch.rand(n, 1, size, size, generator=gen) > 0.1}


class ListSet(torch.utils.data.Dataset):
    """Samples of a stacked batch, as a Dataset."""

    def __init__(self, batch: dict[str, torch.Tensor]):
        self.batch = batch

    def __len__(self) -> int:
        return len(next(iter(self.batch.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.batch.items()}


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


class StagedRegularizer(LandmarkRegularizer):
    """The real regularizer, fed one batch already on the device (data loading is
    left out of both sides of ratio (b))."""

    staged: dict[str, torch.Tensor]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        return self.staged


# ---- timing -----------------------------------------------------------------------
def interleaved(variants: dict[str, Callable[[], Any]], warmup: int, iters: int,
                device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each variant: warm-up calls, then `iters` rounds in
    which each variant runs once."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(iters):
        for name, fn in variants.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return times


def tune_kernels(model: torch.nn.Module, x: torch.Tensor, archs: list[Any],
                 device: torch.device, precision: str) -> None:
    """One eval-mode forward of each of `archs` (eval: BN running statistics stay)."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), autocast(device, precision):
        for arch in archs:
            model(x, arch)
    model.train(was_training)
    sync(device)


def count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# ---- the benchmark ----------------------------------------------------------------
class Bench:
    """One run's models, batches and timings. Each part adds its rounds to `times` as
    they end, so a run stopped part-way (the GPU script's stages have a time limit)
    still reports, and writes, the rounds it finished."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("error: --device cuda, but torch sees no GPU (use --preset cpu)")
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.cudnn_benchmark:
            fixed_shape_kernels()  # what `depthnas search` / `train` do
        torch.manual_seed(args.seed)
        self.gen = gen = torch.Generator().manual_seed(args.seed)
        self.space = space = get_space(args.space)
        rng = random.Random(args.seed)
        self.path = space.sample_live(rng)
        self.landmark_pair = [space.sample_live(rng), space.sample_live(rng)]
        self.candidates = [space.sample_live(rng) for _ in range(args.candidates)]
        self.model_kw = dict(backbone=args.backbone, features=args.features)
        self.task = DepthTask("ssi")
        self.cfg = TrainConfig(lr=0.0, backbone_lr=0.0, precision=args.precision,
                               channels_last=args.channels_last, compile=False, log_every=10**9)
        B, S = args.batch_size, args.image_size
        self.train_batch = to_device(random_batch(B, S, gen), device)
        self.reg_batch = to_device(random_batch(B, S, gen), device)
        self.tmp = tempfile.TemporaryDirectory(prefix="step_time_")
        self.dummy = ListSet(random_batch(B, 32, gen))
        self.sup_t = self.trainer(space.build_supernet(**self.model_kw), "supernet")
        self.results: dict[str, Any] = {"variants": {}, "ratios": {}}
        self.times: dict[str, list[float]] = {}
        self.flops: dict[str, int] = {}
        self.scores: dict[tuple[str, int], float] = {}  # (c): both modes must score alike
        self.compiled_models, self.compiled = [self.sup_t.model], set()

    def trainer(self, model: torch.nn.Module, name: str) -> Trainer:
        return Trainer(model, self.task, self.cfg, self.dummy, out_dir=Path(self.tmp.name) / name,
                       total_epochs=1, device=self.device, progress=False,
                       batch_size=self.args.batch_size, name=name)

    def measure(self, variants: dict[str, Callable[[], Any]],
                rounds_hook: Callable[[int], None] | None = None, iters: int | None = None,
                warmup: int | None = None, say_rounds: bool = False) -> None:
        """`say_rounds`: print each round's times as it ends, so a run cut short by a
        time limit (the GPU script's stages have one) still leaves them in its log."""
        args = self.args
        if not args.no_flops:  # eager, before any compilation
            for name, fn in variants.items():
                self.flops[name] = count_flops(fn)
        if args.compile:
            for m in self.compiled_models:
                if id(m) not in self.compiled:
                    compile_model(m)
                    self.compiled.add(id(m))
        warmup = args.warmup if warmup is None else warmup
        for i in range(warmup + (iters or args.iters)):
            if rounds_hook is not None:
                rounds_hook(i)
            t = interleaved(variants, 0, 1, self.device)
            if i >= warmup:
                for k, v in t.items():
                    self.times.setdefault(k, []).extend(v)
            if say_rounds:
                kind = "warm-up" if i < warmup else "round"
                print(f"  {kind} {i + 1}/{warmup + (iters or args.iters)}: " +
                      ", ".join(f"{k} {v[0] * 1e3:.1f} ms" for k, v in t.items()), flush=True)
        # each part's medians as soon as it ends: a run its time limit cuts short (the GPU
        # script's stages have one) still leaves the parts it finished in the log
        print("  medians: " + ", ".join(f"{k} {statistics.median(self.times[k]) * 1e3:.1f} ms"
                                         for k in variants if k in self.times), flush=True)

    def free(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ---- (a) super-net path vs stand-alone model, same weights and batch --------------
    def part_a(self) -> None:
        sup_t, path = self.sup_t, self.path
        fixed = self.space.build_fixed(path, **self.model_kw)
        sup_sd = sup_t.model.state_dict()
        fixed.load_state_dict({k: sup_sd[k].cpu() for k in fixed.state_dict()})
        del sup_sd
        fix_t = self.trainer(fixed, "standalone")
        self.compiled_models.append(fix_t.model)
        self.measure({"supernet_path": lambda: sup_t.train_step(self.train_batch, path),
                      "standalone": lambda: fix_t.train_step(self.train_batch, None)},
                     iters=2 * self.args.iters)  # the cheapest part and the tightest target
        self.compiled_models.pop()
        fix_t = fixed = None  # the model's memory goes back to the card before the next part
        self.free()

    # ---- (b) landmark-regularized step vs plain SPOS step ------------------------------
    def part_b(self) -> None:
        args, sup_t, task, pair = self.args, self.sup_t, self.task, self.landmark_pair

        def regularizer(share: bool) -> StagedRegularizer:
            lcfg = LandmarkConfig(pairs=1, lambda_max=10.0, schedule="constant")
            reg = StagedRegularizer([(a, float(i)) for i, a in enumerate(pair)],
                                    ListSet(random_batch(1, 32, self.gen)), task, lcfg,
                                    batch_size=args.batch_size, device=self.device,
                                    share_encoder=share)
            reg.staged = self.reg_batch
            reg.channels_last = args.channels_last
            return reg

        # the super-net's loss of each landmark on the regularizer batch (fixed: lr = 0)
        sup_t.model.train()
        with torch.no_grad(), autocast(self.device, args.precision):
            x = self.reg_batch["image"]
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            feats = sup_t.model.encode(x)
            pair_losses = [float(task.loss(sup_t.model.decode(feats, a), self.reg_batch))
                           for a in pair]
            del feats, x
        # landmark 0 is the "better" one (stand-alone loss 0.0 < 1.0): the pair is
        # violated when its super-net loss is the higher
        if pair_losses[0] <= pair_losses[1]:
            pair.reverse()
            pair_losses.reverse()
        self.results["pair_losses"] = pair_losses
        regs = {"shared_violated": regularizer(True), "naive_violated": regularizer(False),
                "shared_satisfied": regularizer(True)}
        regs["shared_satisfied"].set_landmarks([(pair[0], 1.0), (pair[1], 0.0)])

        # The pair's two losses can lie within bf16 noise of each other (8e-6 apart on
        # an H200): each timed step's own verdict is kept, so a flip that would move
        # (b) shows in the results instead of passing unseen.
        verdicts: dict[str, set[float]] = {}
        self.results["reg_violated_seen"] = verdicts  # sorted lists in `summary`

        def step_with(name, reg):
            def fn():
                sup_t.regularizer = reg
                logs = sup_t.train_step(self.train_batch, self.path)
                if reg is not None:
                    verdicts.setdefault(name, set()).add(logs.get("reg_violated", 0.0))
            return fn

        self.measure({"spos_plain": step_with("spos_plain", None)} |
                     {f"landmark_{k}": step_with(f"landmark_{k}", reg) for k, reg in regs.items()})
        flipped = [k for k, v in verdicts.items() if v != {0.0 if k.endswith("satisfied") else 1.0}]
        if flipped:
            print(f"  WARNING: the pair's verdict flipped during timing in {', '.join(flipped)} "
                  f"(seen: { {k: sorted(v) for k, v in verdicts.items()} }): (b) mixes "
                  "violated and satisfied steps", flush=True)
        sup_t.regularizer = None
        del regs
        self.free()

    # ---- (c) candidate scoring: cached encoder features vs a full forward --------------
    def part_c(self) -> None:
        args, device, candidates = self.args, self.device, self.candidates
        B, S = args.batch_size, args.image_size
        calib = ListSet(random_batch(args.calib_batches * B, S, self.gen))
        val = ListSet(random_batch(args.val_batches * B, S, self.gen))
        ev_kw = dict(batch_size=B, calib_batches=args.calib_batches, val_batches=args.val_batches,
                     device=device, precision=args.precision, seed=args.seed)
        model = self.sup_t.model
        cached = PathEvaluator(model, self.task, calib, val, cache_features=True, **ev_kw)
        full = PathEvaluator(model, self.task, calib, val, cache_features=False, **ev_kw)
        # cuDNN tunes a conv shape the first time it runs (fixed_shape_kernels): one
        # forward of every candidate pays that here, not inside whichever timed call
        # meets a shape first (the cached side, which runs first in each round). In a
        # search, super-net training has tuned them all before the first score.
        tune_kernels(model, self.train_batch["image"], candidates, device, args.precision)
        if not args.no_flops:
            self.flops["refresh_cache"] = count_flops(cached.refresh)
        sync(device)
        t0 = time.perf_counter()
        cached.refresh()
        sync(device)
        self.times["refresh_cache"] = [time.perf_counter() - t0]
        cand = {"i": 0}  # the candidate of a round, the same for both variants
        timed: set[int] = set()
        self.results["candidates_timed"] = timed  # indices into archs.candidates

        def set_round(i):  # timed rounds start at candidate 0, so each is timed in turn
            if i > args.score_warmup:  # the round before was timed, to its end
                timed.add(cand["i"])
            cand["i"] = max(0, i - args.score_warmup) % len(candidates)

        def scorer(evaluator: PathEvaluator, mode: str) -> Callable[[], None]:
            def fn():
                self.scores[mode, cand["i"]] = evaluator.score(candidates[cand["i"]])
            return fn

        self.measure({"score_cached": scorer(cached, "cached"),
                      "score_full_forward": scorer(full, "full")},
                     rounds_hook=set_round, iters=args.score_rounds, warmup=args.score_warmup,
                     say_rounds=True)
        timed.add(cand["i"])  # the last round's (a stop ends measure before this line)
        del cached, full
        self.free()

    def summary(self) -> dict[str, Any]:
        """What `report` prints and --json writes, of the rounds measured so far."""
        results, times, space = self.results, self.times, self.space
        for key in ("reg_violated_seen", "candidates_timed"):  # sets, as parts leave them
            if isinstance(results.get(key), dict):
                results[key] = {k: sorted(v) for k, v in results[key].items()}
            elif key in results:
                results[key] = sorted(results[key])
        # compared on the rounds' own scores: at the paper's size another score of each
        # mode would take as long as a round
        both = [(v, self.scores["cached", i]) for (mode, i), v in self.scores.items()
                if mode == "full" and ("cached", i) in self.scores]
        if both:
            results["score_rel_diff_max"] = max(abs(c - f) / max(abs(f), 1e-12) for f, c in both)
        if self.device.type == "cuda":
            results["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        for name, ts in times.items():
            med = statistics.median(ts)
            rec = {"median_ms": med * 1e3, "min_ms": min(ts) * 1e3, "n": len(ts)}
            if name in self.flops:
                rec["gflop"] = self.flops[name] / 1e9
                rec["tflops"] = self.flops[name] / med / 1e12
            results["variants"][name] = rec

        def ratio(num: str, den: str) -> tuple[float | None, float | None]:
            """(median of per-round ratios, ratio of medians); the first pairs calls made
            back to back, so load that drifts over the run cancels."""
            if num not in times or den not in times:
                return None, None
            paired = statistics.median(a / b for a, b in zip(times[num], times[den]))
            return paired, statistics.median(times[num]) / statistics.median(times[den])

        results["ratios_of_medians"] = {}
        for key, num, den in (("a_supernet_over_standalone", "supernet_path", "standalone"),
                              ("b_landmark_shared_over_plain", "landmark_shared_violated", "spos_plain"),
                              ("b_landmark_shared_satisfied_over_plain", "landmark_shared_satisfied",
                               "spos_plain"),
                              ("b_naive_over_plain", "landmark_naive_violated", "spos_plain"),
                              ("c_full_over_cached", "score_full_forward", "score_cached")):
            results["ratios"][key], results["ratios_of_medians"][key] = ratio(num, den)
        results["archs"] = {"path": space.to_string(self.path),
                            "landmarks": [space.to_string(a) for a in self.landmark_pair],
                            "candidates": [space.to_string(a) for a in self.candidates]}
        return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The parts `args.parts` asks for, in order. Stopped by SIGTERM (`timeout`, as the
    GPU script's stages are) or Ctrl-C, it returns the rounds measured so far, with
    the part it stopped in as `stopped_in_part`."""
    bench = Bench(args)
    part, signalled = None, []
    try:
        with stop_on_signals(signalled):
            for part in (p for p in "abc" if p in args.parts):
                getattr(bench, f"part_{part}")()
    except KeyboardInterrupt:
        bench.results["stopped_in_part"] = part
        print(f"  STOPPED in part ({part}) by {signal.Signals(signalled[-1]).name if signalled else 'Ctrl-C'}:"
              " what follows holds only the rounds measured until then", flush=True)
    finally:
        bench.tmp.cleanup()
    return bench.summary()


def report(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    device = torch.device(args.device)
    name = device_name(device)
    spec = spec_peak(name, args.precision) if device.type == "cuda" else None
    # a stopped run is short of time: its rounds are written first, not a matmul timed
    measured = measured_matmul_peak(device, args.precision) \
        if args.peak and "stopped_in_part" not in results else None
    try:
        import timm
        timm_version = timm.__version__
    except ImportError:  # pragma: no cover
        timm_version = None
    meta = {
        "device": name, "torch": torch.__version__, "timm": timm_version,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "driver": driver_version() if device.type == "cuda" else None,
        "python": platform.python_version(),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "preset": args.preset, "space": args.space, "backbone": args.backbone,
        "image_size": args.image_size, "features": args.features, "batch_size": args.batch_size,
        "precision": args.precision, "channels_last": args.channels_last,
        "compile": args.compile, "cudnn_benchmark": args.cudnn_benchmark,
        "warmup": args.warmup, "iters": args.iters, "score_rounds": args.score_rounds,
        "score_warmup": args.score_warmup,
        "calib_batches": args.calib_batches, "val_batches": args.val_batches,
        "peak_spec_tflops": spec, "peak_spec_note":
            "dense tensor-core peak from NVIDIA's data sheet (fp32 runs: TF32)" if spec else None,
        "peak_measured_matmul_tflops": measured,
    }
    out = {"meta": meta, **results}
    prec = args.precision + ("+channels_last" if args.channels_last else "") + \
        ("+compile" if args.compile else " eager") + \
        ("" if args.cudnn_benchmark or device.type != "cuda" else ", cudnn heuristics")
    stack = "".join(f" | {k} {meta[k]}" for k in ("cuda", "cudnn", "driver") if meta.get(k))
    print(f"\nstep_time: {name} | torch {torch.__version__}{stack} | {prec}")
    rounds = ", ".join(r for r, part in ((f"{2 * args.iters} for (a)", "a"),
                                           (f"{args.score_rounds} after {args.score_warmup} for (c)", "c"))
                       if part in args.parts)
    print(f"  {args.backbone} {args.image_size}x{args.image_size}, features {args.features}, "
          f"batch {args.batch_size}, space {args.space}; median of {args.iters} rounds"
          + (f" ({rounds})" if rounds else "") + f" after {args.warmup} warm-up" +
          (f"; (c) scores with {args.calib_batches} calibration + {args.val_batches} validation "
           "batches" if "c" in args.parts else ""))
    if spec or measured:
        parts = []
        if spec:
            parts.append(f"spec {spec:.0f} TFLOP/s (dense {'bf16' if args.precision == 'bf16' else 'TF32'})")
        if measured:
            parts.append(f"measured 8192^3 matmul {measured:.0f} TFLOP/s")
        print("  peak: " + "; ".join(parts))
    labels = {
        "supernet_path": "(a) super-net step, one path",
        "standalone": "(a) stand-alone step, same path",
        "spos_plain": "(b) plain SPOS step",
        "landmark_shared_violated": "(b) + landmark pair, shared encoder (violated)",
        "landmark_shared_satisfied": "(b) + landmark pair, shared encoder (satisfied)",
        "landmark_naive_violated": "(b) + landmark pair, 3 full passes (violated)",
        "score_cached": "(c) candidate score, cached features",
        "score_full_forward": "(c) candidate score, full forward",
        "refresh_cache": "(c) cache refresh (once per search)",
    }
    head = f"  {'variant':50s} {'median ms':>10s} {'GFLOP':>9s} {'TFLOP/s':>8s}"
    if spec:
        head += f" {'%spec':>6s}"
    if measured:
        head += f" {'%mm':>6s}"
    if "stopped_in_part" in out:  # the header's round counts were the plan
        rounds = ", ".join(f"{k} {rec['n']}" for k, rec in out["variants"].items())
        print(f"  part ({out['stopped_in_part']}) cut short: " +
              (f"medians of the rounds measured, {rounds}" if rounds else "no round finished"))
    print(head)
    for key, rec in out["variants"].items():
        line = f"  {labels.get(key, key):50s} {rec['median_ms']:10.2f}"
        if "gflop" in rec:
            line += f" {rec['gflop']:9.1f} {rec['tflops']:8.2f}"
            rec["frac_spec_peak"] = rec["tflops"] / spec if spec else None
            rec["frac_measured_peak"] = rec["tflops"] / measured if measured else None
            if spec:
                line += f" {100 * rec['tflops'] / spec:5.1f}%"
            if measured:
                line += f" {100 * rec['tflops'] / measured:5.1f}%"
        print(line)
    r = out["ratios"]
    verdicts = {}

    def verdict(part: str, value: float | None) -> str:
        if value is None:
            return "not measured"
        op, goal = TARGETS[part]
        ok = value <= goal if op == "<=" else value >= goal
        verdicts[part] = ok
        # the part a stop cut short: a median of the few rounds it measured, said as such
        short = " on the rounds measured before the stop" if part == out.get("stopped_in_part") else ""
        return f"target {op} {goal}x: {'met' if ok else 'NOT met'}{short}"

    if "max_memory_allocated_gib" in out:
        print(f"  peak GPU memory allocated {out['max_memory_allocated_gib']:.1f} GiB")
    print(f"  device: {name}; ratios are medians of per-round ratios (calls made back to back)")
    if r["a_supernet_over_standalone"] is not None:
        print(f"RATIO (a) super-net path / stand-alone step = "
              f"{r['a_supernet_over_standalone']:.3f}x  ({verdict('a', r['a_supernet_over_standalone'])})")
    if r["b_landmark_shared_over_plain"] is not None:
        print(f"RATIO (b) landmark step (shared encoder, pair violated) / plain SPOS = "
              f"{r['b_landmark_shared_over_plain']:.3f}x  ({verdict('b', r['b_landmark_shared_over_plain'])}); "
              f"pair satisfied {r['b_landmark_shared_satisfied_over_plain']:.3f}x; "
              f"naive 3 passes {r['b_naive_over_plain']:.3f}x (paper setup: 2.06x)")
    if r["c_full_over_cached"] is not None:
        print(f"RATIO (c) candidate score full forward / cached features = "
              f"{r['c_full_over_cached']:.2f}x  ({verdict('c', r['c_full_over_cached'])}"
              f"{'; the target is set for the paper config on GPU' if device.type != 'cuda' else ''});"
              f" scores agree to {out['score_rel_diff_max']:.1e} (relative)")
    out["targets_met"] = verdicts
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--device", help="cpu | cuda | cuda:N (default: the preset's)")
    p.add_argument("--space", default="v2-nonsync")
    p.add_argument("--backbone")
    p.add_argument("--image-size", type=int)
    p.add_argument("--features", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--precision", choices=("fp32", "bf16"))
    cl = p.add_mutually_exclusive_group()
    cl.add_argument("--channels-last", dest="channels_last", action="store_true", default=None)
    cl.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbones")
    p.add_argument("--no-cudnn-benchmark", dest="cudnn_benchmark", action="store_false",
                   help="keep cuDNN's heuristic algorithm choice (the CLI times them)")
    p.add_argument("--warmup", type=int)
    p.add_argument("--iters", type=int)
    p.add_argument("--calib-batches", type=int)
    p.add_argument("--val-batches", type=int)
    p.add_argument("--candidates", type=int, help="architectures cycled in part (c)")
    p.add_argument("--score-rounds", type=int,
                   help="measured rounds of part (c) (default: --iters, at least one per candidate)")
    p.add_argument("--score-warmup", type=int, help="warm-up rounds of part (c) (default: --warmup)")
    p.add_argument("--parts", default="abc", help="which ratios to measure, e.g. 'ab'")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--no-peak", dest="peak", action="store_false",
                   help="skip the matmul peak measurement (GPU)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    rounds_given = args.score_rounds is not None
    for k, v in PRESETS[args.preset].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.score_rounds is None:
        args.score_rounds = args.iters
    if not rounds_given:  # the preset's (or --iters'): at least one round per candidate
        args.score_rounds = max(args.score_rounds, args.candidates)
    if args.score_warmup is None:
        args.score_warmup = args.warmup
    if args.compile:  # the first calls compile
        args.warmup, args.score_warmup = max(2, args.warmup), max(2, args.score_warmup)
    check_args(p, args)
    return args


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One line per mistake before any work: some ran to an empty table with exit 0,
    others to a traceback, --json to one after the whole run."""
    from depthnas.spaces import list_spaces
    depth = list_spaces("depth")
    if args.space not in depth:
        p.error(f"--space {args.space}: one of {', '.join(depth)} (the decoder search spaces)")
    if not args.parts or set(args.parts) - set("abc"):
        p.error(f"--parts {args.parts!r}: letters of 'abc', e.g. 'ab'")
    # (--calib-batches 0 passed, then part (c) failed on an empty calibration set;
    # --threads 0 was skipped, -1 a traceback)
    for name in ("iters", "score_rounds", "candidates", "batch_size", "features", "val_batches",
                 "calib_batches", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("warmup", "score_warmup"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.image_size < 32 or args.image_size % 32:  # 0 and -32 were tracebacks
        p.error(f"--image-size must be a positive multiple of 32, got {args.image_size}")
    import timm
    if not timm.is_model(args.backbone):
        p.error(f"--backbone {args.backbone}: no timm model of that name (see timm.list_models())")
    try:
        torch.device(args.device)
    except RuntimeError:
        p.error(f"--device {args.device}: cpu, cuda or cuda:N")
    if "c" in args.parts and args.score_rounds < args.candidates:  # 3 of 5 timed an unfair 3
        p.error(f"--score-rounds {args.score_rounds} would time {args.score_rounds} of the "
                f"{args.candidates} --candidates; give at least {args.candidates}")
    if args.json:  # a folder, below a file, unwritable: a traceback after the whole run
        from depthnas.io import check_file_to_write
        try:
            check_file_to_write(args.json, "--json")
        except ValueError as err:
            p.error(str(err))


def main(argv: list[str] | None = None) -> int:
    from depthnas.io import atomic_write_json
    args = parse(argv)
    start = time.time()
    results = run(args)
    if args.json:  # the rounds at once: a stop during report()'s nvidia-smi or matmul kept none
        atomic_write_json(args.json, {"rounds_only": "report() did not finish", **results})
    out = report(args, results)
    out["meta"]["wall_s"] = round(time.time() - start, 1)
    print(f"  wall time {out['meta']['wall_s']} s")
    if args.json:
        atomic_write_json(args.json, out)
        print(f"  wrote {args.json}")
    return 3 if "stopped_in_part" in out else 0  # 3: stopped; what it measured is written


if __name__ == "__main__":
    sys.exit(main())
