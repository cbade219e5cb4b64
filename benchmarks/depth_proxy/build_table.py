#!/usr/bin/env python3
"""Build the depth ranking benchmark: stand-alone proxy losses of random V1-sync and
V2-sync decoders on the synthetic data, 2 seeds each (README.md beside this file).

    # on one H100/H200 (all 180 trainings: 10-20 minutes, more than one device call;
    # a budget stops it cleanly and a rerun continues; see README.md)
    python benchmarks/depth_proxy/build_table.py --workers 12 --time-budget 250
    # tiny smoke test on a CPU
    python benchmarks/depth_proxy/build_table.py --preset cpu --v1 4 --v2 2 --workers 1 \
        --work /tmp/dp --out /tmp/dp/table.json

Several trainings run at once (`--workers` processes, each pulling the next
(architecture, seed) job from one queue, arch-major, so a partial table holds both
seeds of nearly every architecture). The synthetic splits are rendered once into a
tensor file and held on the GPU by every worker. Every finished training is appended
to `<work>/trainings.jsonl`: a killed run continues where it stopped. With
`--time-budget` no training starts that would end past the budget (judged from the
median training time so far); the table is then written from what finished.
"""
from __future__ import annotations

import argparse
import collections
import datetime as _dt
import math
import os
import queue
import random
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import proxy  # noqa: E402
from depthnas import config as config_mod  # noqa: E402
from depthnas.io import append_jsonl, atomic_write_json, finite_json, read_json, read_jsonl  # noqa: E402
from depthnas.spaces import get_space  # noqa: E402

SPACES = ("v1-sync", "v2-sync")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # not the committed table by default: a CPU smoke run replaced the H200 one
    p.add_argument("--out", default=None, help="table JSON to write (default WORK/table.json; one "
                   "of another recipe is refused)")
    p.add_argument("--work", default=str(proxy.HERE / "work"),
                   help="data cache and trainings.jsonl, the resume state (default "
                        "benchmarks/depth_proxy/work, which git ignores)")
    p.add_argument("--v1", type=int, default=60, help="V1-sync architectures")
    p.add_argument("--v2", type=int, default=30, help="V2-sync architectures")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds per architecture")
    p.add_argument("--arch-seed", type=int, default=0, help="seed of the architecture draw")
    p.add_argument("--workers", type=int, default=12,
                   help="training processes at once (0: train in this process, for debugging)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per training process (default 1)")
    p.add_argument("--render-processes", type=int, default=min(16, os.cpu_count() or 1))
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds from start after which no training is started (and none "
                        "that would end past it, by the median training time)")
    p.add_argument("--grace", type=float, default=30.0,
                   help="seconds past the budget that trainings in flight may take (trainings "
                        "are stopped at the budget plus this, or this after the stop if later)")
    p.add_argument("--preset", default="gpu", choices=sorted(proxy.PRESETS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a depthnas config field, e.g. --set standalone.epochs=10")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):  # seed 0 twice: a seed-to-seed tau of +1
        p.error(f"--seeds {' '.join(map(str, args.seeds))}: each seed once")
    for name in ("v1", "v2"):
        if getattr(args, name) < 0:
            p.error(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.v1 == args.v2 == 0:  # wrote an empty table and exited 0
        p.error("--v1 0 --v2 0: no architecture to train")
    # (a time budget of 0 starts no training: the table rebuilt from trainings.jsonl)
    for flag, value, least in (("--time-budget", args.time_budget, 0), ("--grace", args.grace, 0),
                               ("--workers", args.workers, 0), ("--threads", args.threads, 1),
                               ("--render-processes", args.render_processes, 1)):
        if value is not None and not value >= least:  # NaN too
            p.error(f"{flag} must be >= {least}, got {value}")
    args.out = args.out or str(Path(args.work) / "table.json")
    return args


def check_out(out: Path, key: str) -> None:
    """Before any training: `out` must not be a folder, nor a table of another recipe
    (another preset, other --set), which it would replace. (Its folder is made.)"""
    proxy.check_out_file(out, "--out")
    if out.is_file():
        try:
            table = read_json(out)
        except ValueError:  # a damaged table is written again from trainings.jsonl
            table = {"architectures": {}} if out.suffix == ".json" else None
        if not (isinstance(table, dict) and "architectures" in table):
            # a README named as --out was replaced by the table, and its text lost
            raise SystemExit(f"error: {out} is no table this script wrote; choose another "
                             "--out, or move it away")
        theirs = (table.get("config") or {}).get("recipe_key")
        if theirs is not None and theirs != key:
            raise SystemExit(f"error: {out} holds a table of another recipe ({theirs}, this build "
                             f"{key}); choose another --out, or move it away")


def planned_jobs(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Architectures per space (a prefix-stable draw) and the jobs, arch-major, the
    spaces interleaved in proportion (2 V1 per V2 at the defaults)."""
    counts = {"v1-sync": args.v1, "v2-sync": args.v2}
    archs: dict[str, list[str]] = {}
    for k, name in enumerate(SPACES):
        space = get_space(name)
        archs[name] = [space.to_string(a) for a in
                       proxy.random_archs(space, counts[name], random.Random(args.arch_seed * 1009 + k))]
    order = sorted(((i / max(len(archs[name]), 1), k, s) for k, name in enumerate(SPACES)
                    for i, s in enumerate(archs[name])))
    jobs = [{"space": s.split(":")[0], "arch": s, "seed": seed}
            for _, _, s in order for seed in args.seeds]
    for i, j in enumerate(jobs):
        j["id"] = i
    return jobs, archs


def is_done(rec: dict[str, Any]) -> bool:
    """A training's line that needs no retry: a result, or a divergence (it would
    diverge again); other errors are retried."""
    return rec.get("val_loss") is not None or rec.get("error_kind") == "diverged"


def read_done(path: Path, key: str, say=print) -> dict[tuple[str, int], dict[str, Any]]:
    """Finished trainings of this recipe (`is_done`). Lines of other recipes are counted."""
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.is_file():
        return done
    others: collections.Counter[str] = collections.Counter()
    for rec in read_jsonl(path):  # a line cut by a kill is skipped
        if rec.get("recipe_key") != key:
            others[str(rec.get("recipe_key"))] += 1
            continue
        if is_done(rec):
            done[(rec["arch"], rec["seed"])] = rec
    if others:  # a resume that starts from nothing must say why
        say(f"note: {sum(others.values())} line(s) of {path} are of another recipe "
            f"({', '.join(f'{k}: {n}' for k, n in sorted(others.items()))}; this one {key}): "
            "not used")
    return done


def table_device(done: dict[tuple[str, int], dict[str, Any]], previous: str | None) -> str | None:
    """The devices the table's trainings ran on, from their own lines: a table resumed
    over several sessions may hold more than one card (a line from before lines named
    theirs ran on the one the previous table names)."""
    names = {r.get("device") or previous or "unrecorded" for r in done.values()}
    return " + ".join(sorted(names)) or None


def finished(result: dict[str, Any], key: str) -> dict[str, Any]:
    """A training's line in trainings.jsonl. `trained` (UTC) tells which code trained
    it: the recipe key covers settings, not changes to the model or loss code, and a
    table resumed across such a change holds trainings of both."""
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    return finite_json({**result, "recipe_key": key, "trained": when})


def run_job(cfg, job: dict[str, Any], splits, device, work: Path) -> dict[str, Any]:
    space = get_space(job["space"])
    arch = space.from_string(job["arch"])
    on = {"device": proxy.device_name(device)}  # a diverged training counts as done too
    try:
        return {**proxy.train_proxy(cfg, space, arch, splits, job["seed"], device,
                                    work / "scratch" / f"job{job['id']}"), **on}
    except FloatingPointError as err:
        return {"arch": job["arch"], "space": job["space"], "seed": job["seed"], "val_loss": None,
                "error_kind": "diverged", "error": str(err), **on}


MAX_FAILURES = 3  # in a row: a set-up every training fails under is not tried to the end


def attempt(cfg, job: dict[str, Any], splits, device, work: Path) -> dict[str, Any]:
    """A job's line: its result with `job_wall_s` (build + train + evaluate), or the
    error it raised (recorded, and retried on the next run)."""
    t0 = time.time()
    try:
        rec = run_job(cfg, job, splits, device, work)
    except Exception as err:  # noqa: BLE001
        return {"arch": job["arch"], "space": job["space"], "seed": job["seed"], "val_loss": None,
                "error_kind": type(err).__name__, "error": traceback.format_exc(limit=3)}
    return {**rec, "job_wall_s": round(time.time() - t0, 2)}


def worker_main(rank: int, cfg_dict: dict[str, Any], data_path: str, device: str, threads: int,
                work: str, jobs, results, stop, deadline: float | None = None) -> None:
    """Train jobs until none are left, `stop` is set, or (`deadline`, a time.time()) the
    next one would end past the deadline by this worker's last training time: the
    main process sets `stop` only once a second, and a job taken just before is lost."""
    torch.set_num_threads(threads)
    failures, last_wall, out_of_time = 0, None, False
    parent = os.getppid()  # a parent killed -9 leaves its workers training for nothing
    try:
        cfg = config_mod.from_dict(cfg_dict)
        dev = proxy.resolve(device)
        splits = proxy.TensorSplits(data_path, dev)
        results.put({"type": "ready", "worker": rank, "device": proxy.device_name(dev)})
        while not stop.is_set() and os.getppid() == parent:
            if deadline is not None and last_wall is not None \
                    and time.time() + 1.05 * last_wall > deadline:
                out_of_time = True
                break
            try:
                job = jobs.get(timeout=1.0)
            except queue.Empty:
                break
            if job is None:
                break
            results.put({"type": "start", "worker": rank, "job": job})  # named if this dies
            rec = attempt(cfg, job, splits, dev, Path(work))
            failures = 0 if "job_wall_s" in rec else failures + 1
            last_wall = rec.get("job_wall_s", last_wall)
            results.put({"type": "result", "worker": rank, "job": job["id"], **rec})
            if failures >= MAX_FAILURES:
                results.put({"type": "fatal", "worker": rank,
                             "error": f"{MAX_FAILURES} failures in a row; stopping"})
                break
    except BaseException:  # noqa: BLE001
        results.put({"type": "fatal", "worker": rank, "error": traceback.format_exc()})
    finally:
        results.put({"type": "exit", "worker": rank, "out_of_time": out_of_time})


def death_note(rank: int, exitcode: int, job: dict[str, Any] | None) -> str:
    """What is said of a worker killed from outside (the out-of-memory killer, a crash)."""
    how = f"signal {-exitcode}" if exitcode < 0 else f"exit code {exitcode}"
    lost = f"; {job['arch']} seed {job['seed']} was lost and runs on the next build" if job else ""
    return f"worker {rank} died ({how}){lost}"


def grace_over(now: float, stop_at: float, budget: float, grace: float) -> bool:
    """Whether trainings still in flight are given up. The stop comes up to a median
    training before the budget, and trainings started before it may end by the budget
    itself: the grace counts from the budget (or from a later stop)."""
    return now > max(stop_at, budget) + grace


class Progress:
    def __init__(self, total: int, already: int, start: float):
        self.total, self.already, self.start = total, already, start
        self.walls: list[float] = []
        self.first: float | None = None

    def add(self, rec: dict[str, Any]) -> str:
        now = time.time()
        self.first = self.first or now
        if rec.get("train_time_s"):
            self.walls.append(rec.get("job_wall_s") or rec["train_time_s"])
        n = len(self.walls)
        rate = 60.0 * n / max(now - self.start, 1e-6)
        loss = rec.get("val_loss")
        reason = (rec.get("error") or "").strip().splitlines()[-1:]  # the exception's own line
        what = f"val {loss:.5f}" if loss is not None else \
            f"FAILED ({reason[0] if reason else rec.get('error_kind')})"
        return (f"[{now - self.start:6.1f}s] {self.already + n}/{self.total} done | "
                f"{rate:5.1f} trainings/min overall | {rec['arch']} seed {rec['seed']} {what} "
                f"({rec.get('train_time_s', 0):.1f}s, worker {rec.get('worker')})")

    def median_wall(self) -> float | None:
        return statistics.median(self.walls) if self.walls else None


def build_table(cfg, args, archs: dict[str, list[str]], done: dict[tuple[str, int], dict[str, Any]],
                meta: dict[str, Any]) -> dict[str, Any]:
    entries: dict[str, dict[str, Any]] = {}
    failed = []
    for name in SPACES:
        for s in archs[name]:
            recs = [done.get((s, seed)) for seed in args.seeds]
            seeds = [r["val_loss"] if r else None for r in recs]
            finite = [v for v in seeds if v is not None and math.isfinite(v)]
            if any(r is not None and r.get("val_loss") is None for r in recs):
                failed.append({"arch": s, "seeds": args.seeds,
                               "errors": [r.get("error_kind") if r else None for r in recs]})
            if not finite:
                continue
            params = next(r["params"] for r in recs if r and r.get("params"))
            entries[s] = {"space": name, "seeds": seeds, "mean": sum(finite) / len(finite),
                          "n_seeds": len(finite), "params": params,
                          "train_time_s": [r.get("train_time_s") if r else None for r in recs]}
    agreement = proxy.seed_agreement(entries)
    d = cfg.data
    sizes = {k: len(v) for k, v in proxy.split_indices(cfg).items()}
    steps = cfg.standalone.epochs * min(sizes["train"] // d.batch_size,
                                        cfg.standalone.steps_per_epoch or 10**9)
    return {
        "description": "Stand-alone proxy validation SSI loss (lower is better) of random "
                       "dead-cell-free depth decoders on depthnas' synthetic scenes; "
                       "benchmarks/depth_proxy/README.md",
        "config": {"preset": args.preset, "overrides": args.set, "recipe": proxy.standalone_recipe(cfg),
                   "recipe_key": proxy.digest(proxy.standalone_recipe(cfg)),
                   "seeds": args.seeds, "arch_seed": args.arch_seed,
                   "requested": {"v1-sync": args.v1, "v2-sync": args.v2},
                   "data_seed": proxy.DATA_SEED, "augment": False, "split_sizes": sizes,
                   "steps_per_training": steps, "depthnas_config": config_mod.to_dict(cfg)},
        "device": meta.get("device"), "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__, "timing": meta.get("timing", {}),
        "seed_kendall_tau": agreement["kendall_tau"],
        "seed_median_abs_diff": agreement["median_abs_diff"],
        "seed_pairs": agreement["n_pairs"],
        "counts": {name: sum(1 for e in entries.values() if e["space"] == name) for name in SPACES},
        "failed": failed,
        "architectures": entries,
    }


class TableBuild:
    """The pending trainings, in this process or in worker processes, and what they
    report. Every result is appended to trainings.jsonl as it arrives, so a stop
    (Ctrl-C, SIGTERM, the budget) keeps each training that finished."""

    def __init__(self, cfg, args: argparse.Namespace, key: str, log_path: Path,
                 done: dict[tuple[str, int], dict[str, Any]], progress: Progress, start: float,
                 say: Callable[[str], None]):
        self.cfg, self.args, self.key, self.log_path = cfg, args, key, log_path
        self.done, self.progress, self.start, self.say = done, progress, start, say
        self.device: str | None = None
        self.stopped_by_budget = False
        self.ran = self.finished_ok = 0  # trainings run, and those that gave a result
        self.workers_lost = 0  # (concurrent) by an error, or killed from outside
        self.procs: list[Any] = []
        self.exited: set[int] = set()  # (concurrent) workers gone
        self.in_flight: dict[int, dict[str, Any]] = {}  # (concurrent) worker -> its job

    def record(self, rec: dict[str, Any]) -> None:
        append_jsonl(self.log_path, rec)
        if is_done(rec):
            self.done[(rec["arch"], rec["seed"])] = rec
            self.finished_ok += 1
        self.ran += 1
        self.say(self.progress.add(rec))

    def in_process(self, pending: list[dict[str, Any]], data_path: Path, work: Path) -> None:
        args = self.args
        torch.set_num_threads(proxy.worker_threads(args.threads, 1))
        dev = proxy.resolve(args.device)
        self.device = proxy.device_name(dev)
        splits = proxy.TensorSplits(data_path, dev)
        failures = 0
        for job in pending:
            # the concurrent rule: no training that the median one says would end past it
            # (a budget of 0 starts none)
            m, now = self.progress.median_wall(), time.time() - self.start
            if args.time_budget is not None and (
                    now >= args.time_budget or (m is not None and now + 1.05 * m > args.time_budget)):
                self.stopped_by_budget = True
                self.say(f"[{now:6.1f}s] time budget: no new trainings (median training {m or 0:.1f}s)")
                break
            rec = attempt(self.cfg, job, splits, dev, work)
            failures = 0 if "job_wall_s" in rec else failures + 1
            self.record(finished({**rec, "worker": 0}, self.key))
            if failures >= MAX_FAILURES:
                self.say(f"{MAX_FAILURES} failures in a row; stopping")
                break

    def concurrent(self, pending: list[dict[str, Any]], data_path: Path, work: Path) -> None:
        """`args.workers` processes take jobs from one queue. With a time budget, no
        job starts once the median training would not end by it, and those in flight
        get `args.grace` seconds past it."""
        import multiprocessing as mp
        args = self.args
        ctx = mp.get_context("spawn")  # CUDA cannot be forked
        job_q, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
        for j in pending:
            job_q.put(j)
        k = min(args.workers, len(pending))
        for _ in range(k):
            job_q.put(None)
        job_q.cancel_join_thread()  # jobs left unread at a stop must not block our exit
        threads = proxy.worker_threads(args.threads, k)
        deadline = None if args.time_budget is None else self.start + args.time_budget
        for rank in range(k):
            p = ctx.Process(target=worker_main, daemon=True,
                            args=(rank, config_mod.to_dict(self.cfg), str(data_path), args.device,
                                  threads, str(work), job_q, results, stop, deadline))
            p.start()
            self.procs.append(p)
        self.say(f"started {k} worker processes ({threads} CPU thread(s) each)")
        stop_at = None
        while len(self.exited) < k:
            try:
                self.take(results.get(timeout=1.0))
            except queue.Empty:
                # killed from outside (the OOM killer, a crash); looked for once the queue
                # is read, so a result it sent before it died is not named as lost
                self.note_deaths()
            now = time.time() - self.start
            if args.time_budget is not None and not stop.is_set():
                m = self.progress.median_wall()
                if now > args.time_budget or (m is not None and now + 1.05 * m > args.time_budget):
                    stop.set()
                    stop_at = now
                    self.stopped_by_budget = True
                    self.say(f"[{now:6.1f}s] time budget: no new trainings (median training "
                             f"{m or 0:.1f}s); waiting up to {args.grace:.0f}s for those in flight")
            if stop_at is not None and grace_over(now, stop_at, args.time_budget, args.grace):
                self.say(f"[{now:6.1f}s] grace period over: stopping the workers")
                break

    def take(self, msg: dict[str, Any]) -> None:
        """One message of a worker: ready, a job started, its result, its error, or its exit."""
        kind = msg.pop("type")
        if kind == "ready":
            self.device = self.device or msg["device"]
        elif kind == "start":
            self.in_flight[msg["worker"]] = msg["job"]
        elif kind == "result":
            self.in_flight.pop(msg["worker"], None)
            self.record(finished(msg, self.key))
        elif kind == "fatal":
            self.workers_lost += 1
            self.say(f"worker {msg['worker']} failed:\n{msg['error']}")
        elif kind == "exit":
            self.exited.add(msg["worker"])
            # (all workers may leave by their own clocks before the median says stop:
            # the budget still stopped the table)
            self.stopped_by_budget |= bool(msg.get("out_of_time"))

    def note_deaths(self) -> None:
        for r, p in enumerate(self.procs):
            if r not in self.exited and not p.is_alive() and p.exitcode not in (None, 0):
                self.exited.add(r)
                self.workers_lost += 1
                self.say(death_note(r, p.exitcode, self.in_flight.pop(r, None)))


    def write_table(self, archs: dict[str, list[str]], jobs: list[dict[str, Any]]) -> None:
        """The table of every finished training (this run's and earlier ones'), and what
        this run did: its wall time, its rate, and whether the budget stopped it."""
        args, done, say = self.args, self.done, self.say
        wall = time.time() - self.start
        stopped_by_budget = self.stopped_by_budget and any((j["arch"], j["seed"]) not in done
                                                           for j in jobs)
        timing = {"wall_s": round(wall, 1), "trainings_this_run": self.ran,
                  "trainings_per_min": round(60.0 * self.ran / max(wall, 1e-6), 2),
                  "workers": args.workers, "time_budget_s": args.time_budget,
                  "stopped_by_budget": stopped_by_budget}
        prev, previous_device = Path(args.out), None
        try:
            previous_device = read_json(prev).get("device") if prev.is_file() else None
        except (ValueError, AttributeError):  # damaged: rebuilt from trainings.jsonl
            say(f"{prev} is damaged: writing it again from {self.log_path}")
        table = build_table(self.cfg, args, archs, done,
                            {"device": table_device(done, previous_device), "timing": timing})
        atomic_write_json(args.out, finite_json(table))
        tau = table["seed_kendall_tau"]
        fmt = lambda v: "n/a" if v is None else f"{v:+.3f}"  # noqa: E731
        say(f"table: {table['counts']} architectures -> {args.out}")
        say(f"seed-to-seed Kendall tau: v1-sync {fmt(tau.get('v1-sync'))}, v2-sync "
            f"{fmt(tau.get('v2-sync'))}, overall {fmt(tau.get('overall'))} "
            f"(pairs {table['seed_pairs']}); median |seed0 - seed1| "
            f"{ {k: (None if v is None else round(v, 6)) for k, v in table['seed_median_abs_diff'].items()} }")
        say(f"{self.ran} trainings in {wall:.0f}s ({timing['trainings_per_min']} per minute)"
            + (f" on {self.device}" if self.device else ""))

def main(argv: list[str] | None = None) -> int:
    start = time.time()
    args = parse_args(argv)
    proxy.check_device(args.device)
    try:
        cfg = proxy.make_config(args.preset, args.set)
    except config_mod.ConfigError as err:  # as ranking.py says it: one line, no traceback
        raise SystemExit(f"--set: {err}") from None
    work = Path(args.work)
    proxy.check_work(work)
    work.mkdir(parents=True, exist_ok=True)
    key = proxy.digest(proxy.standalone_recipe(cfg))
    check_out(Path(args.out), key)
    log_path = work / "trainings.jsonl"
    jobs, archs = planned_jobs(args)
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    done = read_done(log_path, key, say)
    pending = [j for j in jobs if (j["arch"], j["seed"]) not in done]
    say(f"proxy recipe {key}: {cfg.model.backbone} features {cfg.model.features}, "
        f"{cfg.data.image_size[0]}x{cfg.data.image_size[1]}, batch {cfg.data.batch_size}, "
        f"{cfg.standalone.epochs} epochs, {cfg.standalone.precision}; "
        f"{len(jobs)} trainings planned, {len(done)} already in {log_path}, {len(pending)} to run")
    build = TableBuild(cfg, args, key, log_path, done, Progress(len(jobs), len(done), start), start, say)
    old_term = proxy.interrupt_on_sigterm()  # `timeout` sends SIGTERM: still write the table
    try:
        if pending:
            data_path = proxy.render_data(cfg, work, processes=args.render_processes, say=say)
            if args.workers <= 0:
                build.in_process(pending, data_path, work)
            else:
                build.concurrent(pending, data_path, work)
    except KeyboardInterrupt as err:
        say(f"interrupted ({err}); writing the table from what finished")
        build.stopped_by_budget = True
    finally:
        proxy.stop_workers(build.procs)  # SIGTERM ignored until the table is written
        build.write_table(archs, jobs)
        proxy.restore_sigterm(old_term)
    # gpu_run.sh reads the exit status: a table of failures is one; a budget that
    # stopped the build before its first training ended is not
    if (build.ran or build.workers_lost) and not build.finished_ok:
        say(f"error: no training of this run finished ({build.ran} failed; their errors are in "
            f"{log_path}, a worker's own above)" if build.ran else
            "error: no training ran: the training processes failed (their errors above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
