#!/usr/bin/env python3
"""The paper's central experiment (Table 4) on the depth proxy benchmark: does
landmark regularization raise the super-net's (sparse) Kendall tau?

For each space and seed, SPOS and SPOS + landmarks train a super-net for the same
number of epochs on the same data and configuration as the table
(benchmarks/depth_proxy/table.json). The M landmarks come from the table, by
Algorithm 1 inside it: a random table architecture as the root, and M - 1 drawn
uniformly from the table architectures further than tau from it (`choose_landmarks`),
so their stand-alone losses are the table's means, not new trainings. They are left
out of the evaluation set of both runs of that seed, and so is any table entry that
builds a landmark's model under another string (`function_key`: the super-net trains
that very path against the landmarks). Every other table architecture of the space is then scored by the trained
super-net (`PathEvaluator`: BN recalibration, cached encoder features) and ranked
against the table: Kendall tau, sparse Kendall tau (threshold = the table's median
|seed0 - seed1| in that space: differences below the seed noise count as ties),
Spearman rho, and the table rank of the architecture the search would pick (the
best super-net score, paths at a constant prediction's level last). Only seeds where
both methods finished are compared: mean ± sample std over them, and the per-seed
difference landmarks - SPOS.

    python benchmarks/ranking.py --table benchmarks/depth_proxy/table.json \
        --spaces v1-sync --seeds 0 1 2 --time-budget 150 --json ranking.json
    # Table 4 again from a finished run's saved path scores (no training):
    python benchmarks/ranking.py --table TABLE --resummarize ranking.json --json again.json

The runs go concurrently, one process each. With --time-budget, every run first
trains a few seconds at once to measure the contended step time; the parent then
fixes one epoch count for all runs (the requested one, or fewer if it would not
fit), so SPOS and SPOS + landmarks always get equal epochs. Each run directory
(<work>/ranking/<space>_<method>_s<seed>) holds config.yaml, checkpoints/ and
initial_landmarks.json, so `depthnas rank --run RUN --truth TABLE` re-scores it; its
config.yaml `seed` is the data seed (what `depthnas rank` rebuilds the splits from),
the training seed is in run.json.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import queue
import random
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent / "depth_proxy"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import proxy  # noqa: E402
from depthnas import config as config_mod  # noqa: E402
from depthnas.degenerate import at_constant_level, learned_nothing, search_order  # noqa: E402
from depthnas.scoring import PathEvaluator  # noqa: E402
from depthnas.io import atomic_write_json, atomic_write_text, finite_json, read_json  # noqa: E402
from depthnas.evolution import new_models  # noqa: E402
from depthnas.landmark_sampler import default_tau  # noqa: E402
from depthnas.models import model_kwargs, model_metadata  # noqa: E402
from depthnas.rank_correlation import default_threshold, kendall_tau, ranking_report  # noqa: E402
from depthnas.schedule import SCHEDULES  # noqa: E402
from depthnas.spaces import SearchSpace, get_space  # noqa: E402
from depthnas.task import make_task  # noqa: E402
from depthnas.runtime import resolve_device, seed_everything  # noqa: E402

METHODS = ("spos", "landmarks")
LABEL = {"spos": "SPOS", "landmarks": "SPOS+landmarks"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default=str(proxy.HERE / "table.json"))
    p.add_argument("--spaces", nargs="+", default=["v1-sync"], choices=["v1-sync", "v2-sync"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--num-landmarks", type=int, default=10, help="M")
    p.add_argument("--tau", type=int, default=None, help="landmark Hamming threshold (default: the space's)")
    p.add_argument("--epochs", type=int, default=34,
                   help="super-net epochs (each a pass over the training split: 44 steps at the "
                        "gpu preset); the time budget may lower it, equally for every run")
    p.add_argument("--min-epochs", type=int, default=1)
    p.add_argument("--lambda-max", type=float, default=10.0)
    p.add_argument("--schedule", default="cosine-increasing")
    p.add_argument("--pairs", type=int, default=1, help="m landmark pairs per step")
    p.add_argument("--calib-batches", type=int, default=10)
    p.add_argument("--val-batches", type=int, default=None)
    p.add_argument("--threshold", type=float, default=None,
                   help="sparse Kendall tau bin width (default: the table's median |seed0 - seed1|)")
    p.add_argument("--time-budget", type=float, default=None, help="seconds for the whole script")
    p.add_argument("--warmup-s", type=float, default=6.0, help="timed training per run before planning")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per run (default 1)")
    p.add_argument("--in-process", action="store_true", help="runs one after another in this process")
    p.add_argument("--work", default=str(proxy.HERE / "work"))
    p.add_argument("--json", default=None, help="results JSON (default <work>/ranking.json)")
    p.add_argument("--md", default=None, help="also write the Table 4 text as markdown here")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field after the table's (e.g. supernet.lr=2e-3)")
    p.add_argument("--device", default="auto")
    p.add_argument("--resummarize", metavar="RANKING_JSON", default=None,
                   help="train nothing: recompute Table 4 from the path scores a finished run "
                        "saved in its ranking.json (after a change in how runs are summarised); "
                        "needs --table (the one it ran on) and --json")
    return p.parse_args(argv)


# ---- landmarks from the table ---------------------------------------------------------------
def choose_landmarks(space: SearchSpace, table_archs: list[str], num: int, tau: int,
                     rng: random.Random) -> list[dict[str, Any]]:
    """Algorithm 1 inside the table: a random root, then M - 1 architectures drawn
    uniformly from the table entries further than `tau` from it (the sampler's own
    draws mapped to their nearest entries came out no more spread than random ones).
    With too few that far, the farthest entries make up the rest."""
    # one string per model: two landmarks of one model rank nothing
    pool = new_models(space, map(space.from_string, table_archs), (), len(table_archs))
    root = rng.choice(pool)
    others = [a for a in pool if a != root]
    far = [a for a in others if space.hamming(a, root) > tau]
    picks = rng.sample(far, min(num - 1, len(far)))
    if len(picks) < num - 1:
        rest = sorted((a for a in others if a not in picks), key=lambda a: -space.hamming(a, root))
        picks += rest[:num - 1 - len(picks)]
    return [{"arch": space.to_string(a), "hamming_to_root": space.hamming(a, root)}
            for a in [root, *picks]]


# ---- one run ----------------------------------------------------------------------------------
def run_config(base: dict[str, Any], spec: dict[str, Any], args: argparse.Namespace, epochs: int):
    cfg = config_mod.from_dict(base)
    cfg.space = spec["space"]
    cfg.seed = proxy.DATA_SEED
    cfg.supernet.epochs = epochs
    lm = cfg.landmarks
    lm.enabled = spec["method"] == "landmarks"
    lm.num, lm.tau, lm.pairs = args.num_landmarks, spec["tau"], args.pairs
    lm.lambda_max, lm.schedule = args.lambda_max, args.schedule
    cfg.search.iterations = 1
    cfg.search.calib_batches, cfg.search.val_batches = args.calib_batches, args.val_batches
    cfg.search.sparse_threshold = spec["threshold"]
    cfg.out = spec["run_dir"]
    cfg = config_mod.apply_dotted(cfg, list(args.set))
    return cfg


def build_run(cfg, spec: dict[str, Any], splits, device, out_dir: Path, final_checkpoint: bool):
    space = get_space(spec["space"])
    task = make_task(space, cfg.supernet.loss)
    seed = spec["seed"]
    seed_everything(seed)
    supernet = space.build_supernet(**model_kwargs(cfg.model, space))
    reg = None
    if spec["method"] == "landmarks":
        marks = [(space.from_string(m["arch"]), m["loss"]) for m in spec["landmarks"]]
        reg = proxy.TensorLandmarkRegularizer(marks, splits.reg, task, cfg.landmarks,
                                              batch_size=cfg.data.batch_size, device=device,
                                              seed=seed, total_epochs=cfg.supernet.epochs)
    trainer = proxy.TensorTrainer(
        supernet, task, cfg.supernet, splits.train, out_dir=out_dir,
        total_epochs=cfg.supernet.epochs, seed=seed, device=device, sample_arch=space.sample,
        regularizer=reg, metadata=model_metadata(space, None, cfg.model, cfg.data.image_size, task.name),
        name="supernet", progress=False, batch_size=cfg.data.batch_size,
        final_checkpoint=final_checkpoint, metrics_file=final_checkpoint)
    return space, task, trainer


def make_evaluator(cfg, trainer, task, splits, device) -> PathEvaluator:
    return PathEvaluator(trainer.model, task, splits.train, splits.val, batch_size=cfg.data.batch_size,
                         calib_batches=cfg.search.calib_batches, val_batches=cfg.search.val_batches,
                         device=device, precision=cfg.supernet.precision, seed=proxy.DATA_SEED)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warmup(base, spec, args, splits, device, seconds: float) -> dict[str, float]:
    """Seconds per training step (all runs warm up together) and per scored architecture,
    on a throw-away super-net: the real one is built afterwards from its seed."""
    cfg = run_config(base, spec, args, epochs=1)
    cfg.landmarks.schedule = "constant"  # the landmark passes run from the first step
    space, task, trainer = build_run(cfg, spec, splits, device, Path(spec["run_dir"]) / "warmup", False)
    rng = random.Random(12345)
    batches = trainer._batches(0)

    def step(k: int) -> None:
        nonlocal batches
        try:
            b = next(batches)
        except StopIteration:
            batches = trainer._batches(k)
            b = next(batches)
        trainer.train_step(b, space.sample(rng))
    for k in range(3):
        step(k)
    sync(device)
    t0, n = time.time(), 0
    while time.time() - t0 < seconds or n < 3:
        step(n)
        n += 1
    sync(device)
    step_s = (time.time() - t0) / n
    ev = make_evaluator(cfg, trainer, task, splits, device)
    t0 = time.time()
    ev.refresh()
    refresh_s = time.time() - t0
    t0 = time.time()
    for s in spec["score_archs"][:3]:
        ev.score(space.from_string(s))
    score_s = (time.time() - t0) / max(len(spec["score_archs"][:3]), 1)
    return {"step_s": step_s, "steps_timed": n, "score_s": score_s, "refresh_s": refresh_s}


def train_and_score(base, spec, args, splits, device, epochs: int) -> dict[str, Any]:
    run_dir = Path(spec["run_dir"])
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    cfg = run_config(base, spec, args, epochs)
    config_mod.dump(cfg, run_dir / "config.yaml")
    # The held-out landmarks of this seed, for both methods (SPOS trains without them);
    # `depthnas rank` leaves the architectures listed here out of its evaluation.
    atomic_write_json(run_dir / "initial_landmarks.json", [m["arch"] for m in spec["landmarks"]])
    space, task, trainer = build_run(cfg, spec, splits, device, run_dir, True)
    t0 = time.time()
    trainer.fit(resume=False)
    sync(device)
    train_s = time.time() - t0
    t0 = time.time()
    ev = make_evaluator(cfg, trainer, task, splits, device)
    ev.refresh()
    scores = {s: ev.score(space.from_string(s)) for s in spec["score_archs"]}
    score_s = time.time() - t0
    # a path whose head's final ReLU died outputs a constant: its score is this
    constant = ev.constant_level()  # on the batches the paths were scored on
    epochs_logged = [r for r in trainer.history if "train_loss" in r]
    last = epochs_logged[-1] if epochs_logged else {}
    result = {**{k: v for k, v in spec.items() if k != "score_archs"},
              "training_seed": spec["seed"], "epochs": epochs, "steps": trainer.state.step,
              "train_time_s": round(train_s, 1), "score_time_s": round(score_s, 1),
              "final_train_loss": last.get("train_loss"), "final_reg": last.get("train_reg"),
              "final_reg_violated": last.get("train_reg_violated"),
              "device": proxy.device_name(device), "scores": scores, "constant_score": constant}
    atomic_write_json(run_dir / "run.json", finite_json(result))
    return result


def worker_main(spec, base, args, data_path, device, threads, msgs, go, plan_event, plan_value) -> None:
    torch.set_num_threads(threads)
    try:
        dev = proxy.resolve(device)
        splits = proxy.TensorSplits(data_path, dev)
        msgs.put({"type": "ready", "run": spec["name"]})
        if args.time_budget is not None:
            go.wait()
            rate = warmup(base, spec, args, splits, dev, args.warmup_s)
            if dev.type == "cuda":
                torch.cuda.empty_cache()  # the throw-away super-net is gone
            msgs.put({"type": "rate", "run": spec["name"], **rate})
        plan_event.wait()
        if plan_value.value <= 0:
            return
        result = train_and_score(base, spec, args, splits, dev, plan_value.value)
        msgs.put({"type": "result", "run": spec["name"], "result": result})
    except BaseException:  # noqa: BLE001
        msgs.put({"type": "fatal", "run": spec["name"], "error": traceback.format_exc()})


# ---- statistics and the table -------------------------------------------------------------------
def at_constant(scores: list[float], constant: float | None) -> float | None:
    """The fraction of paths the super-net scores at a constant prediction's loss
    (within 0.1%): paths whose shared head's final ReLU died. Their order is float
    noise, so a run where most paths sit there ranks nothing."""
    if constant is None or not scores:
        return None
    return sum(at_constant_level(x, constant) for x in scores) / len(scores)


def beat_constant(scores: list[float], constant: float | None) -> float | None:
    """The fraction of paths the super-net scores better than a constant prediction,
    by more than 1% (`learned_nothing`, as `depthnas rank` and the search judge a
    super-net): the paths it has learned anything about. A run whose paths are live
    but nearly all no better than a constant is close to collapse."""
    if constant is None or not scores:
        return None
    # a NaN score (a path that diverged) is no path learned: NaN >= level is False
    return sum(math.isfinite(x) and not learned_nothing(x, constant) for x in scores) / len(scores)


def mean_std(values: list[Any]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; None below 2 values) of the finite
    values; tau is undefined (NaN) when one side is all ties."""
    vals = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    return {"mean": float(vals.mean()) if len(vals) else None,
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else None,
            "n": len(vals), "values": list(values)}


PAIRED = ("sparse_kendall_tau", "kendall_tau", "spearman_rho", "best_found_table_rank")


def summarize(runs: list[dict[str, Any]], truth: dict[str, dict[str, float]],
              thresholds: dict[str, float]) -> dict[str, Any]:
    per_run = []
    for r in sorted(runs, key=lambda r: (r["space"], METHODS.index(r["method"]), r["seed"])):
        space = r["space"]
        searched = get_space(space)
        key, parse = searched.function_key, searched.parse
        held = {key(parse(m["arch"])) for m in r["landmarks"]}  # and their twins (see top)
        ev = [a for a in truth[space] if key(parse(a)) not in held]
        t = [truth[space][a] for a in ev]
        p = [r["scores"][a] for a in ev]
        rep = ranking_report(t, p, thresholds[space])
        # what `depthnas search` would pick: paths whose output ignores the input rank last
        order = search_order(searched, r.get("constant_score"))
        best = min(ev, key=lambda a: order(parse(a), r["scores"][a]))
        full_rank = sorted(truth[space], key=truth[space].get)
        lm_order = [m["arch"] for m in r["landmarks"]]
        lm_tau = (kendall_tau([truth[space][a] for a in lm_order], [r["scores"][a] for a in lm_order])
                  if len(lm_order) >= 2 else None)
        eval_rank = sorted(ev, key=truth[space].get)
        per_run.append({"space": space, "method": r["method"], "seed": r["seed"], **rep,
                        "best_found": best, "best_found_loss": truth[space][best],
                        # the table rank counts the landmarks too; the rank among the
                        # evaluated architectures does not
                        "best_found_table_rank": full_rank.index(best) + 1,
                        "best_found_eval_rank": eval_rank.index(best) + 1,
                        "table_size": len(full_rank), "landmark_kendall_tau": lm_tau,
                        "at_constant": at_constant(p, r.get("constant_score")),
                        "beat_constant": beat_constant(p, r.get("constant_score")),
                        "epochs": r["epochs"], "steps": r["steps"]})
    summary: dict[str, Any] = {}
    for space in sorted({r["space"] for r in per_run}):
        for method in METHODS:
            rows = [r for r in per_run if r["space"] == space and r["method"] == method]
            if not rows:
                continue
            agg = {key: mean_std([r[key] for r in rows])
                   for key in (*PAIRED, "best_found_eval_rank", "best_found_loss",
                               "top_percentile", "landmark_kendall_tau", "beat_constant")}
            summary.setdefault(space, {})[method] = {"n_runs": len(rows), **agg,
                                                     # per seed: its landmarks' twins left out
                                                     "n_eval": _span(r["n"] for r in rows),
                                                     "table_size": rows[0]["table_size"]}
        # Each seed's arms share landmarks and evaluation set: the per-seed difference
        # is the statistic that compares the methods.
        by_seed = {(r["method"], r["seed"]): r for r in per_run if r["space"] == space}
        seeds = sorted({seed for m, seed in by_seed if ("spos", seed) in by_seed
                        and ("landmarks", seed) in by_seed})
        summary[space]["landmarks_minus_spos"] = {
            key: mean_std([by_seed["landmarks", seed][key] - by_seed["spos", seed][key]
                           for seed in seeds]) for key in PAIRED}
    return {"per_run": per_run, "summary": summary}


def _span(values) -> int | str:
    """One number, or "lo-hi" where they differ."""
    values = sorted(set(values))
    return values[0] if len(values) == 1 else f"{values[0]}-{values[-1]}"


def table4(summary: dict[str, Any], rules: dict[str, str], thresholds: dict[str, float],
           per_run: list[dict[str, Any]]) -> str:
    def ms(d: dict[str, Any], fmt: str) -> str:
        if d["mean"] is None:
            return "n/a"
        short = f" ({d['n']} of {len(d['values'])} defined)" if d["n"] < len(d["values"]) else ""
        spread = (f" ± {d['std']:{fmt.lstrip('+')}}" if d["std"] is not None
                  else f" (n = {d['n']})")
        return f"{d['mean']:{fmt}}{spread}{short}"
    seeds = sorted({r["seed"] for r in per_run})
    lines = [f"Table 4 (depth proxy, synthetic scenes): mean ± sample std (ddof=1) over seeds {seeds}",
             "| space | method | S-KdT | KdT | Spearman | best-found table rank | best-found loss | n eval |",
             "|---|---|---|---|---|---|---|---|"]
    for space, methods in summary.items():
        for method in METHODS:
            if method not in methods:
                continue
            s = methods[method]
            lines.append(f"| {space} | {LABEL[method]} | {ms(s['sparse_kendall_tau'], '.3f')} | "
                         f"{ms(s['kendall_tau'], '.3f')} | {ms(s['spearman_rho'], '.3f')} | "
                         f"{ms(s['best_found_table_rank'], '.1f')} of {s['table_size']} | "
                         f"{ms(s['best_found_loss'], '.5f')} | {s['n_eval']} |")
    for space, methods in summary.items():
        d = methods["landmarks_minus_spos"]
        lines.append(f"{space}, landmarks - SPOS per seed: S-KdT {ms(d['sparse_kendall_tau'], '+.3f')}, "
                     f"KdT {ms(d['kendall_tau'], '+.3f')}, best-found table rank "
                     f"{ms(d['best_found_table_rank'], '+.1f')}")
    lines.append("S-KdT thresholds: " + ", ".join(f"{k} {v:.3g} ({rules[k]})"
                                                  for k, v in thresholds.items()))
    collapsed = [f"{r['space']} {LABEL[r['method']]} seed {r['seed']} ({r['at_constant']:.0%})"
                 for r in per_run if (r.get("at_constant") or 0) > 0.5]
    if collapsed:
        lines.append("Collapsed super-nets (more than half of the paths score a constant "
                     "prediction's loss, so their order is noise): " + ", ".join(collapsed))
    weak = [f"{r['space']} {LABEL[r['method']]} seed {r['seed']} ({r['beat_constant']:.0%})"
            for r in per_run if r.get("beat_constant") is not None and r["beat_constant"] < 0.25]
    if weak:
        lines.append("Near collapse (fewer than a quarter of the paths score more than 1% "
                     "better than a constant prediction): " + ", ".join(weak))
    return "\n".join(lines)


def markdown(out: dict[str, Any], table: dict[str, Any]) -> str:
    """Table 4 plus per-run numbers and provenance, ready for benchmarks/RESULTS.md."""
    plan = out["plan"]
    lines = [out["table4"], "",
             f"Device {out['device']}; {out['date']}; torch {out['torch']}; command `{out['command']}`.",
             *([f"Re-summarised {out['resummarized']['date']} by `{out['resummarized']['command']}` "
                "from the runs' saved path scores (no training)."] if out.get("resummarized") else []),
             f"Table: {out['table']} ({table.get('device')}, {table.get('date')}; counts {table.get('counts')}; "
             f"seed-to-seed Kendall tau {table.get('seed_kendall_tau')}).",
             f"Super-nets: {plan['epochs']} epochs x {plan['steps_per_epoch']} steps each (requested "
             f"{plan['requested_epochs']}); landmarks M = {out['settings']['num_landmarks']}, "
             f"tau {out['settings']['tau']}, lambda_max {out['settings']['lambda_max']}, "
             f"{out['settings']['schedule']}, {out['settings']['pairs']} pair(s) per step; "
             f"{out['settings']['landmark_choice']}.", "",
             "| space | method | seed | S-KdT | KdT | Spearman | best-found (table rank) | landmark KdT "
             "| paths at constant | paths better than constant |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    for r in out["per_run"]:
        lines.append(f"| {r['space']} | {LABEL[r['method']]} | {r['seed']} | {shown(r['sparse_kendall_tau'])} | "
                     f"{shown(r['kendall_tau'])} | {shown(r['spearman_rho'])} | `{r['best_found']}` "
                     f"({r['best_found_table_rank']}/{r['table_size']}, {r['best_found_loss']:.5f}) | "
                     f"{shown(r['landmark_kendall_tau'])} | {shown(r.get('at_constant'), '.0%')} | "
                     f"{shown(r.get('beat_constant'), '.0%')} |")
    if out["missing_runs"]:
        lines.append(f"\nMissing runs: {', '.join(out['missing_runs'])}")
    if out.get("unpaired_runs"):
        lines.append(f"Left out (the other arm of their seed did not finish): "
                     f"{', '.join(out['unpaired_runs'])}")
    return "\n".join(lines)


def load_table(path: str | Path) -> dict[str, Any]:
    """A table written by build_table.py; anything else is refused with the file named."""
    try:
        table = read_json(path)
    except (OSError, ValueError) as err:  # missing, unreadable, not JSON: one line, not a traceback
        raise SystemExit(f"--table: {err}") from None
    if not isinstance(table, dict) or "architectures" not in table \
            or "depthnas_config" not in (table.get("config") or {}):
        raise SystemExit(f"{path}: not a depth proxy table (build_table.py writes one: it holds "
                         "'architectures' and 'config.depthnas_config')")
    for arch, e in table["architectures"].items():
        if not isinstance(e, dict) or "space" not in e or "mean" not in e:
            raise SystemExit(f"{path}: entry {arch!r} lacks 'space' or 'mean'")
    return table


def shown(v: Any, fmt: str = "+.3f") -> str:
    """A metric as the tables print it: "n/a" for none or NaN (a tau of no order), not "+nan"."""
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


# ---- main -----------------------------------------------------------------------------------------
def check_args(args: argparse.Namespace) -> None:
    """Before the table is read and any run starts: these ran to a "landmarks" arm
    without a penalty, untrained super-nets, or a traceback after the runs."""
    if args.num_landmarks < 2:
        raise SystemExit(f"--num-landmarks {args.num_landmarks}: the penalty needs at least 2 "
                         "landmarks (a pair)")
    if args.threshold is not None and not args.threshold > 0:
        raise SystemExit(f"--threshold {args.threshold}: the S-KdT bin width must be > 0")
    if len(set(args.seeds)) != len(args.seeds):  # one run counted twice, one folder written twice
        raise SystemExit(f"--seeds {' '.join(map(str, args.seeds))}: a seed given twice")
    if len(set(args.spaces)) != len(args.spaces):  # likewise, each run trained twice at once
        raise SystemExit(f"--spaces {' '.join(args.spaces)}: a space given twice")
    if args.in_process and args.time_budget is not None:
        # the budget plans the epochs from the concurrent runs' timed warm-up
        raise SystemExit("--time-budget plans the epochs of concurrent runs; with --in-process "
                         "give --epochs instead")
    proxy.check_work(Path(args.work))
    # (--calib-batches 0 reset the decoder's BatchNorm statistics and estimated none:
    # every path scored with mean 0, variance 1; `depthnas search` refuses it)
    for name, least in (("pairs", 1), ("epochs", 1), ("min_epochs", 1), ("calib_batches", 1),
                        ("lambda_max", 0), ("tau", 0), ("threads", 1), ("time_budget", 0),
                        ("warmup_s", 0)):
        value = getattr(args, name)
        if value is not None and not value >= least:  # NaN too; None: the default
            raise SystemExit(f"--{name.replace('_', '-')} must be >= {least}, got {value}")
    if any(not 0 <= s < 2**32 for s in args.seeds):  # numpy's bound, said in each run otherwise
        raise SystemExit(f"--seeds {' '.join(map(str, args.seeds))}: each from 0 to 2**32 - 1")
    if args.min_epochs > args.epochs:  # the budget's plan would then train more than asked
        raise SystemExit(f"--min-epochs {args.min_epochs} is more than --epochs {args.epochs}")
    proxy.check_device(args.device)  # each run's process failed on it, after the runs started
    if args.val_batches is not None and args.val_batches < 1:
        raise SystemExit(f"--val-batches must be >= 1 (or left out: the whole split), got {args.val_batches}")
    if args.schedule not in SCHEDULES:
        raise SystemExit(f"--schedule {args.schedule}: one of {', '.join(SCHEDULES)}")
    try:
        config_mod.apply_dotted(config_mod.Config(), list(args.set))
    except config_mod.ConfigError as err:
        raise SystemExit(f"--set: {err}") from None
    for flag, path in (("--json", args.json), ("--md", args.md)):
        if path:
            proxy.check_out_file(Path(path), flag)
    if args.resummarize and not args.json:
        raise SystemExit("--resummarize needs --json: the file to write")


def truth_and_thresholds(table: dict[str, Any], args: argparse.Namespace,
                         say: Callable[[str], None]) -> tuple[dict, dict, dict]:
    """Per space: the table's mean losses (architectures every seed of which diverged
    left out), the S-KdT threshold, and the rule that set it."""
    truth: dict[str, dict[str, float]] = {}
    thresholds: dict[str, float] = {}
    rules: dict[str, str] = {}
    for space_name in args.spaces:
        entries = {a: e["mean"] for a, e in table["architectures"].items()
                   if e["space"] == space_name and e["mean"] is not None}
        if len(entries) < args.num_landmarks + 2:
            raise SystemExit(f"{args.table}: {len(entries)} {space_name} architectures; need at least "
                             f"{args.num_landmarks + 2} ({args.num_landmarks} landmarks + 2 to rank)")
        truth[space_name] = entries
        if args.threshold is not None:
            thr, rule = args.threshold, "given (--threshold)"
        else:
            thr = (table.get("seed_median_abs_diff") or {}).get(space_name)
            rule = "median |seed0 - seed1| of the table"
        if not thr:
            thr, rule = default_threshold(list(entries.values())), "1% of the range (no seed noise in the table)"
            say(f"{space_name}: no seed noise in the table; S-KdT threshold = 1% of the range")
        thresholds[space_name], rules[space_name] = float(thr), rule
    return truth, thresholds, rules


def run_specs(args: argparse.Namespace, truth: dict[str, dict[str, float]],
              thresholds: dict[str, float], work: Path) -> list[dict[str, Any]]:
    """One run per space, seed and method; both methods of a seed share its landmarks."""
    specs = []
    for space_name in args.spaces:
        space = get_space(space_name)
        tau = args.tau if args.tau is not None else default_tau(space)
        for seed in args.seeds:
            marks = choose_landmarks(space, sorted(truth[space_name]), args.num_landmarks, tau,
                                     random.Random(seed))
            for m in marks:
                m["loss"] = truth[space_name][m["arch"]]
            for method in METHODS:
                name = f"{space_name}_{method}_s{seed}"
                specs.append({"name": name, "space": space_name, "method": method, "seed": seed,
                              "tau": tau, "landmarks": marks, "threshold": thresholds[space_name],
                              "run_dir": str(work / "ranking" / name),
                              "score_archs": sorted(truth[space_name])})
    return specs


def plan_epochs(args: argparse.Namespace, specs: list[dict[str, Any]], rates: dict[str, dict],
                seconds_left: float, steps_per_epoch: int) -> dict[str, Any]:
    """One epoch count for every run, from their contended step and scoring times (with
    10-20% to spare) and the seconds left in the budget: the requested count, fewer
    if it would not fit, and never fewer than --min-epochs."""
    step_s = 1.1 * max(r["step_s"] for r in rates.values())
    n_score = max(len(s["score_archs"]) for s in specs)
    score_s = 1.2 * max(r["refresh_s"] + n_score * r["score_s"] for r in rates.values())
    left = seconds_left - score_s - 10.0
    fit = int(left // (step_s * steps_per_epoch))
    return dict(epochs=max(args.min_epochs, min(args.epochs, fit)), step_s=step_s,
                score_s_estimate=score_s, seconds_left_for_training=left, epochs_that_fit=fit)


class Runs:
    """The runs, one process each, and what they report: `results` grows as they end,
    so a stop (Ctrl-C, SIGTERM, the budget) keeps those that finished."""

    def __init__(self, specs: list[dict[str, Any]], base: dict[str, Any], args: argparse.Namespace,
                 data_path: Path, steps_per_epoch: int, start: float, say: Callable[[str], None]):
        self.specs, self.base, self.args, self.data_path = specs, base, args, data_path
        self.steps_per_epoch, self.start, self.say = steps_per_epoch, start, say
        self.results: list[dict[str, Any]] = []
        self.plan: dict[str, Any] = {"requested_epochs": args.epochs, "epochs": args.epochs,
                                     "steps_per_epoch": steps_per_epoch}
        self.procs: list[Any] = []
        # what the runs have said (concurrent): ready to time, their rates, failed
        self.ready: set[str] = set()
        self.rates: dict[str, dict] = {}
        self.failed: set[str] = set()

    def clock(self) -> str:
        return f"[{time.time() - self.start:6.1f}s]"

    def in_process(self) -> None:
        args = self.args
        torch.set_num_threads(proxy.worker_threads(args.threads, 1))
        dev = proxy.resolve(args.device)
        splits = proxy.TensorSplits(self.data_path, dev)
        for spec in self.specs:
            r = train_and_score(self.base, spec, args, splits, dev, args.epochs)
            self.results.append(r)
            self.say(f"{self.clock()} {spec['name']}: {r['steps']} steps, "
                     f"train {r['train_time_s']}s, scoring {r['score_time_s']}s")

    def concurrent(self) -> None:
        """Every run in a process of its own. With a time budget, each first times its
        steps while all train; then the epoch count that fits is sent to all."""
        import multiprocessing as mp
        args, specs, say = self.args, self.specs, self.say
        ctx = mp.get_context("spawn")
        msgs, go, plan_event = ctx.Queue(), ctx.Event(), ctx.Event()
        plan_value = ctx.Value("i", 0)
        threads = proxy.worker_threads(args.threads, len(specs))
        for spec in specs:
            p = ctx.Process(target=worker_main, daemon=True,
                            args=(spec, self.base, args, str(self.data_path), args.device, threads,
                                  msgs, go, plan_event, plan_value))
            p.start()
            self.procs.append(p)
        say(f"started {len(self.procs)} processes ({threads} CPU thread(s) each)")
        planned = False
        deadline = (self.start + args.time_budget) if args.time_budget is not None else None
        while len(self.results) + len(self.failed) < len(specs):
            try:
                self.take(msgs.get(timeout=1.0))
            except queue.Empty:
                self.note_silent_deaths(msgs)
            alive = len(specs) - len(self.failed)
            if args.time_budget is None and not planned:
                plan_value.value = args.epochs
                plan_event.set()
                planned = True
            elif not planned and not go.is_set() and len(self.ready) >= alive:
                say(f"{self.clock()} all {alive} runs ready; timing {args.warmup_s:.0f}s "
                    "of concurrent training")
                go.set()
            elif not planned and go.is_set() and len(self.rates) >= alive:
                self.plan.update(plan_epochs(args, specs, self.rates, deadline - time.time(),
                                             self.steps_per_epoch))
                epochs, steps = self.plan["epochs"], self.plan["epochs"] * self.steps_per_epoch
                say(f"{self.clock()} plan: {epochs} epochs ({steps} steps) per run; "
                    f"{self.plan['step_s'] * 1000:.1f} ms/step contended, "
                    f"{self.plan['seconds_left_for_training']:.0f}s left for training, scoring "
                    f"~{self.plan['score_s_estimate']:.0f}s"
                    + ("" if epochs == args.epochs else f" (requested {args.epochs}: cut to fit)"))
                plan_value.value = epochs
                plan_event.set()
                planned = True
            if deadline is not None and time.time() > deadline + 10:
                say("time budget exceeded by 10s: stopping the remaining runs")
                break

    def take(self, msg: dict[str, Any]) -> None:
        """One message of a run: ready, its contended rates, its result, or its error."""
        kind, say = msg["type"], self.say
        if kind == "ready":
            self.ready.add(msg["run"])
        elif kind == "rate":
            self.rates[msg["run"]] = msg
            say(f"{self.clock()} {msg['run']}: {1000 * msg['step_s']:.1f} ms/step "
                f"contended ({msg['steps_timed']} steps), {msg['score_s']:.2f} s/arch scoring")
        elif kind == "result":
            r = msg["result"]
            self.results.append(r)
            say(f"{self.clock()} {r['name']}: {r['steps']} steps in "
                f"{r['train_time_s']}s, scored {len(r['scores'])} archs in {r['score_time_s']}s")
        elif kind == "fatal":
            self.failed.add(msg["run"])
            say(f"{msg['run']} failed:\n{msg['error']}")

    def note_silent_deaths(self, msgs: Any) -> None:
        """Runs whose process ended without a message (killed, out of memory): no
        result will come, so none is waited for."""
        dead = {s["name"] for s, p in zip(self.specs, self.procs) if not p.is_alive()}
        silent = dead - {r["name"] for r in self.results} - self.failed
        if silent and msgs.empty():
            time.sleep(1.0)  # a result sent just before the process ended may still be on its way
            if msgs.empty():
                for name in sorted(silent):
                    self.say(f"{name}: process ended without a result")
                    self.failed.add(name)


def main(argv: list[str] | None = None) -> int:
    start = time.time()
    args = parse_args(argv)
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    check_args(args)
    table = load_table(args.table)
    if args.resummarize:
        return resummarize(args, argv, table, say)
    base = table["config"]["depthnas_config"]
    base_cfg = config_mod.from_dict(base)
    work = Path(args.work)
    truth, thresholds, threshold_rules = truth_and_thresholds(table, args, say)
    specs = run_specs(args, truth, thresholds, work)
    data_path = proxy.render_data(base_cfg, work, processes=min(16, os.cpu_count() or 1), say=say)
    steps_per_epoch = len(proxy.split_indices(base_cfg)["train"]) // base_cfg.data.batch_size
    if base_cfg.supernet.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, base_cfg.supernet.steps_per_epoch)
    say(f"{len(specs)} super-net runs ({', '.join(args.spaces)}; seeds {args.seeds}; "
        f"{args.num_landmarks} landmarks from the table); requested {args.epochs} epochs x "
        f"{steps_per_epoch} steps")
    if resolve_device(args.device).type == "cpu" and args.time_budget is None:
        # run without arguments, the GPU experiment started on a laptop for hours, unsaid
        say("note: on the CPU without --time-budget every run trains all its epochs (hours at "
            "the defaults); a short try: --table benchmarks/depth_proxy/small/table.json "
            "--seeds 0 --epochs 1" + ("" if args.in_process else ", or --time-budget SECONDS"))

    runs = Runs(specs, base, args, data_path, steps_per_epoch, start, say)
    old_term = proxy.interrupt_on_sigterm()
    try:
        if args.in_process:
            runs.in_process()
        else:
            runs.concurrent()
    except KeyboardInterrupt as err:
        say(f"interrupted ({err}); writing what finished")
    finally:
        proxy.stop_workers(runs.procs)  # SIGTERM ignored until the results are written
    results = runs.results

    out: dict[str, Any] = {
        "description": "SPOS vs SPOS + landmarks on the depth proxy table (benchmarks/ranking.py)",
        "table": str(args.table), "table_date": table.get("date"), "table_device": table.get("device"),
        "device": results[0]["device"] if results else None,
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "torch": torch.__version__,
        "command": _command(argv),
        "settings": {"spaces": args.spaces, "seeds": args.seeds, "num_landmarks": args.num_landmarks,
                     "tau": {s["space"]: s["tau"] for s in specs}, "lambda_max": args.lambda_max,
                     "schedule": args.schedule, "pairs": args.pairs, "calib_batches": args.calib_batches,
                     "val_batches": args.val_batches, "iterations": 1,
                     "landmark_choice": "Algorithm 1 inside the table: a random root and M - 1 "
                                        "entries drawn uniformly from those further than tau "
                                        "from it",
                     "sparse_threshold": thresholds, "sparse_threshold_rule": threshold_rules},
        "plan": runs.plan, "wall_s": round(time.time() - start, 1),
        "missing_runs": sorted({s["name"] for s in specs} - {r["name"] for r in results}),
    }
    landmarks = {f"{s['space']}_s{s['seed']}": s["landmarks"] for s in specs
                 if s["method"] == "landmarks"}
    complete = report(out, results, landmarks, truth, thresholds, threshold_rules, table, args, say)
    json_path = Path(args.json) if args.json else work / "ranking.json"
    atomic_write_json(json_path, finite_json(out))
    proxy.restore_sigterm(old_term)
    say(f"wrote {json_path} in {time.time() - start:.0f}s")
    return 0 if complete else 1  # no paired seed: no comparison, no Table 4


def report(out: dict[str, Any], results: list[dict[str, Any]], landmarks: dict[str, Any],
           truth: dict[str, dict[str, float]], thresholds: dict[str, float], rules: dict[str, str],
           table: dict[str, Any], args: argparse.Namespace, say: Callable[[str], None]) -> bool:
    """Summarise the runs into `out` (Table 4, per-run figures), print it and write --md;
    whether any seed finished both arms."""
    # Both arms of a seed share its landmarks and evaluation set: only paired seeds
    # are compared (a run the budget cut or that diverged takes its pair out).
    complete = [r for r in results
                if any(o["space"] == r["space"] and o["seed"] == r["seed"] and o["method"] != r["method"]
                       for o in results)]
    unpaired = sorted(r["name"] for r in results if r not in complete)
    if unpaired:
        say(f"left out, their other arm did not finish: {', '.join(unpaired)}")
    out["unpaired_runs"] = unpaired
    if not complete:
        say("no seed finished both runs")
        return False
    out.update(summarize(complete, truth, thresholds))
    out["paired_runs"] = len(complete) // 2
    out["landmarks"] = landmarks
    out["runs"] = [{k: v for k, v in r.items() if k != "landmarks"} for r in results]
    text = table4(out["summary"], rules, thresholds, out["per_run"])
    out["table4"] = text
    say("\n" + text)
    for r in out["per_run"]:
        say(f"  {r['space']} {LABEL[r['method']]:15s} seed {r['seed']}: S-KdT {shown(r['sparse_kendall_tau'])} "
            f"KdT {shown(r['kendall_tau'])} best-found rank {r['best_found_table_rank']}/{r['table_size']}"
            f" ({r['epochs']} epochs, {r['steps']} steps)")
    if args.md:
        atomic_write_text(args.md, markdown(out, table) + "\n")
    return True


def resummarize(args: argparse.Namespace, argv: list[str] | None, table: dict[str, Any],
                say: Callable[[str], None]) -> int:
    """Table 4 again from a finished ranking.json's saved path scores, with today's
    summary (no training): for a change in how runs are summarised."""
    path = args.resummarize
    try:
        old = read_json(path, expect=dict)
    except (OSError, ValueError) as err:
        raise SystemExit(f"--resummarize: {err}") from None
    if not {"runs", "landmarks", "settings"} <= set(old):
        raise SystemExit(f"{path}: no runs to summarise (a ranking.json of a paired run holds "
                         "'runs', 'landmarks' and 'settings')")
    settings = old["settings"]
    truth = {space: {a: e["mean"] for a, e in table["architectures"].items()
                     if e["space"] == space and e["mean"] is not None} for space in settings["spaces"]}
    runs = []
    for r in old["runs"]:
        marks = old["landmarks"].get(f"{r.get('space')}_s{r.get('seed')}")
        if r.get("space") not in truth or marks is None or not isinstance(r.get("scores"), dict):
            raise SystemExit(f"{path}: run {r.get('name')!r} lacks its space's settings, its "
                             "landmarks or its scores: not a file this script wrote")
        if set(r["scores"]) != set(truth[r["space"]]):  # the losses may have been updated since
            raise SystemExit(f"{path}: run {r['name']} scored other {r['space']} architectures "
                             f"than --table {args.table} holds: pass the table it ran on")
        runs.append({**r, "landmarks": marks})
    out = {k: v for k, v in old.items() if k not in SUMMARY_KEYS}
    out["resummarized"] = {"date": _dt.datetime.now().isoformat(timespec="seconds"),
                           "command": _command(argv), "from": str(path)}
    # files of the first runs hold one threshold (and rule) for every space
    thresholds, rules = settings["sparse_threshold"], settings.get("sparse_threshold_rule")
    thresholds = thresholds if isinstance(thresholds, dict) else dict.fromkeys(truth, thresholds)
    rules = rules if isinstance(rules, dict) else dict.fromkeys(truth, rules or "as the run set it")
    complete = report(out, runs, old["landmarks"], truth, thresholds, rules, table, args, say)
    out.setdefault("runs", old["runs"])  # no pair to summarise: the scores are kept all the same
    out.setdefault("landmarks", old["landmarks"])
    atomic_write_json(args.json, finite_json(out))
    say(f"wrote {args.json}")
    return 0 if complete else 1


# what `report` writes: left out of a re-summarised file's copy of the old one
SUMMARY_KEYS = ("unpaired_runs", "per_run", "summary", "paired_runs", "landmarks", "runs", "table4")


def _command(argv: list[str] | None) -> str:
    return " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
