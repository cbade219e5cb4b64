"""The landmark-regularized search (paper Algorithm 1, Figure 2).

    landmarks (diverse, trained stand-alone)
      -> T x [ train super-net with R -> search it -> train top-K stand-alone
               -> add them to the landmarks (but the last search's) ]
      -> best stand-alone architecture found

`landmarks.enabled = False` is plain SPOS with the same total epochs. Every
stage persists its results, so a killed run resumes where it stopped (the same
command with `--out DIR --resume`).

Under torchrun the super-net trains data-parallel on all ranks; the stand-alone
trainings of each stage (landmarks, top-K, ranking samples) are shared out, each
rank training its share on its own device, and the results are gathered so that
every rank holds the same landmark list. Rank 0 alone searches the super-net
(the others receive the top-K) and writes the run's files.
"""
from __future__ import annotations

import copy
import functools
import logging
import os
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from depthnas.spaces import Arch, SearchSpace, get_space

from . import config as config_mod
from . import distributed as dist
from .budget import Budget
from .checkpoint import Checkpointer, read_metadata
from .config import Config, LandmarkConfig
from .data import check_recorded_splits, load_splits, warn_unused_settings
from .degenerate import (candidate_order, collapsed, learned_nothing, search_order, supernet_level,
                         unlearned_note)
from .evolution import RANDOM_TRIES, new_models, run_search
from .io import (append_jsonl, atomic_write, atomic_write_json, check_parent_folders,
                 drop_jsonl_records, finite_json)
from .landmark_sampler import default_tau, sample_landmarks
from .landmark_store import lock_file
from .landmarks import LandmarkRegularizer
from .launch_env import launched
from .models import model_kwargs, model_metadata
from .rank_correlation import ranking_report
from .recipe import recipe_diff, same_recipe
from .run_clock import RunClock
from .runs import SEARCH_MODEL, claim_folder
from .scoring import PathEvaluator, constant_score
from .search_resume import check_config_kept, check_search_kept, drawn_landmarks, drop_stale_searches
from .standalone_results import StandaloneResults
from .task import Task, make_task
from .runtime import generators_kept, resolve_device, seed_everything, seeded_rng
from .terminal import figure, listed, took
from .trainer import Trainer, check_batch_fits

if TYPE_CHECKING:
    from depthnas.datasets.splits import SplitSet

log = logging.getLogger(__name__)


def _printed(msg: str) -> None:
    print(msg, flush=True)  # flushed: a log file behind a pipe shows the stage now


class SearchRun:
    """One search (Algorithm 1) in the folder `cfg.out`: `run()` trains the landmarks,
    the super-net with their ranking penalty, searches it, trains the picks and writes
    best_arch.json, results.json and report.md; a folder it stopped in is resumed.
    It takes `cfg` as checked and the folder as claimed: `pipeline.run` and
    `depthnas search` do both (checks, lock, a folder of its own) and then run this."""

    def __init__(self, cfg: Config, *, progress: bool = True,
                 say: Callable[[str], None] = _printed):
        self.cfg, self.progress = cfg, progress
        self.say = say if dist.is_main() else (lambda msg: None)  # rank 0 reports
        self.space = get_space(cfg.space)
        self.model_kw = model_kwargs(cfg.model, self.space)  # what the models are built with
        self.device = resolve_device(cfg.device)
        if not cfg.out:  # a folder made here would be left behind by a refused start
            raise config_mod.ConfigError("SearchRun needs cfg.out, the run's folder; "
                                         "pipeline.run(cfg) makes one for a search given none")
        self.out = Path(cfg.out)
        # judges candidates and landmarks, by figures each architecture is timed for once
        self.budget = Budget.of(self.space, cfg, self.device, timings=self.out / "latency.json")
        self.splits: SplitSet | None = None  # loaded by _prepare
        # trains architectures stand-alone (or reads their results back), and keeps them
        self.standalone = StandaloneResults(cfg, self.space, self.out, device=self.device,
                                            progress=progress, say=self.say,
                                            after_training=self._keep_time)
        # what the searches found, for results.json (see _search)
        self.picks = self.flat_picks = 0
        self.unlearned: list[int] = []  # searches whose super-net beat no constant prediction
        self.final_scores: dict[Arch, float] = {}  # the last search's, reused by finish
        # set as the run goes: its clock, started by _prepare (a resume adds to the
        # recorded time); the losses of a model that learned nothing, on the whole
        # validation split and on the search's batches (_baselines); and the lambda
        # schedule the report plots
        self.clock: RunClock | None = None
        self.constant_loss: float | None = None
        self.search_constant_loss: float | None = None
        self.lambda_schedule: dict[str, Any] | None = None

    def initial_landmarks(self) -> list[Arch]:
        """Fixed once per run directory, so a resumed run uses the same set (chosen
        by rank 0 under torchrun, and sent to the other ranks)."""
        strings = self._initial_landmarks() if dist.is_main() else None
        return [self.space.from_string(s) for s in dist.broadcast_object(strings)]

    def _initial_landmarks(self) -> list[str]:
        path = self.out / "initial_landmarks.json"
        if path.is_file():
            return drawn_landmarks(path, self.space, self.cfg)
        lm, store, rec = self.cfg.landmarks, self.standalone.store, self.standalone.recipe
        stored = store.matching(self.space.name, rec)
        # at most M (a store grown by earlier runs may hold more than this run asks
        # for), one per model (older runs may have trained two strings of one)
        reused = new_models(self.space, [self.space.from_string(e["arch"]) for e in stored], (), lm.num)
        tau = lm.tau if lm.tau is not None else default_tau(self.space)
        new = sample_landmarks(self.space, lm.num - len(reused), tau,
                               seeded_rng(self.cfg.seed, "landmarks"), exclude=reused) \
            if lm.num > len(reused) else []
        strings = [self.space.to_string(a) for a in reused + new]
        if reused:
            self.say(f"reusing {len(reused)} of {len(stored)} stored landmark(s) from {store.path}")
        foreign = {e["space"] for e in store.entries if e["space"] != self.space.name}
        if foreign and not any(e["space"] == self.space.name for e in store.entries):
            self.say(f"{store.path} holds results of {', '.join(sorted(foreign))} only, none of "
                     f"{self.space.name}: no landmark is reused from it (a store of another search?)")
        other = [e for e in store.entries
                 if e["space"] == self.space.name and not same_recipe(e.get("recipe"), rec)]
        if other:
            diff = recipe_diff(other[0].get("recipe"), rec)
            self.say(f"{store.path} holds {len(other)} {self.space.name} result(s) of another "
                     f"recipe, not comparable, not reused ({listed(diff, 4, '; ')})")
        atomic_write_json(path, strings)
        return strings

    def _keep_time(self) -> None:
        """Record the wall time so far: a resumed run continues it, not from zero."""
        if dist.is_main():
            self.clock.save()

    def _record_metrics(self, record: dict[str, Any], *key: str) -> None:
        """Log `record` to metrics.jsonl, in place of an earlier one agreeing on `key`:
        a resumed run repeats the stages its checkpoints hold (a finished search is
        read back, a finished run summarised again), and logs them again where they
        were, among the epochs they followed."""
        path = self.out / "metrics.jsonl"
        record = finite_json(record)  # a ranking of equal scores has no tau: null, as in results.json
        if not drop_jsonl_records(path, lambda r: all(r.get(k) == record[k] for k in key),
                                  replacement=record):
            append_jsonl(path, record)

    # ---- the pipeline ------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Algorithm 1: landmarks stand-alone; then T times, train the super-net with
        their ranking penalty, search it, train its top-K stand-alone (they join the
        landmarks, but for the last search's: no super-net trains after it); last,
        the random sample that measures the ranking."""
        task = self._prepare()
        try:
            return self._run(task)
        finally:  # a stop's too: the work since the last stage took time, even if redone
            self._keep_time()

    def _run(self, task: Task) -> dict[str, Any]:
        cfg, space = self.cfg, self.space
        landmarks: list[tuple[Arch, float]] = []
        if cfg.landmarks.enabled:
            archs = self.initial_landmarks()
            self.say(f"stage 1: {len(archs)} landmark(s) stand-alone")
            landmarks = list(zip(archs, self.standalone(archs, "landmark")))
        trainer, regularizer, evaluator = self._supernet(task, landmarks)
        self._baselines(task, evaluator)
        if regularizer is not None:
            self.lambda_schedule = _lambda_schedule(cfg.landmarks, regularizer, trainer.total_steps)
        if dist.is_main() and trainer.checkpoints.latest() is None:
            drop_stale_searches(self.out, self.say)
        T, E = cfg.search.iterations, cfg.supernet.epochs
        for t in range(T):
            self.say(f"iteration {t + 1}/{T}: super-net epochs {t * E + 1}-{(t + 1) * E}")
            trainer.fit(until_epoch=(t + 1) * E)
            self._keep_time()
            check_search_kept(self.out, t, trainer.state.epoch, cfg.supernet.epochs)  # every rank: all raise
            top = self._search(t, evaluator) if dist.is_main() else None
            top = [space.from_string(s) for s in dist.broadcast_object(top)]
            losses = self.standalone(top, f"top-{t + 1}")
            if cfg.landmarks.enabled and t < T - 1:  # no super-net trains after the last search
                landmarks += zip(top, losses)
            if regularizer is not None:
                regularizer.set_landmarks(landmarks)
        self.standalone(self._rank_samples(), "rank")
        summary = self.finish(evaluator, {a for a, _ in landmarks}) if dist.is_main() else None
        if dist.is_main():  # rank and a resume read the last epoch alone
            trainer.checkpoints.keep_latest_only()
        return dist.broadcast_object(summary)

    def _prepare(self) -> Task:
        """Checks, the run's record (config.yaml, splits.json), its data and task."""
        cfg, space = self.cfg, self.space
        self.clock = RunClock(self.out / "elapsed.json")
        main = dist.is_main()
        check_config_kept(self.out, cfg)  # every rank: all raise, none waits
        if space.size() < 2:
            raise ValueError(f"space {space.name} has one architecture: nothing to search "
                             "(depthnas train trains it)")
        if cfg.landmarks.store:  # written after each training: said now, not hours on
            check_parent_folders(cfg.landmarks.store, "--landmarks (landmarks.store)")
            lock = lock_file(Path(cfg.landmarks.store))
            if lock.exists() and not os.access(lock, os.W_OK):  # another user's, say
                raise ValueError(f"--landmarks (landmarks.store) {cfg.landmarks.store}: no "
                                 f"permission to write its lock file {lock}")
        finished = search_finished(self.out)
        if main and finished:  # its log is replayed below
            self.say("this run had finished: what it kept is read back, not trained again, "
                     "and its results, report and best model are written anew")
        if self.budget is not None:
            try:
                self.budget.check_reachable(self.say)
                self.budget.save()
            except ValueError as err:
                if not (self.out / "config.yaml").is_file():
                    raise
                # a resume: the same budget passed this check when the run started, and
                # one timing of the smallest architecture moves by 20% between processes
                log.warning("%s (when the run started it did not; the run goes on, and its "
                            "search keeps only candidates timed within the budget)", err)
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            record = cfg
            if finished:  # its record stays as it trained (not this resume's --device, say),
                # but names the folder it is in now (train --config writes beside it)
                record = config_mod.load(self.out / "config.yaml", complete=True)
                record.out = cfg.out
            config_mod.dump(record, self.out / "config.yaml")
        seed_everything(cfg.seed)
        warn_unused_settings(cfg)
        self.splits = load_splits(cfg)
        self.standalone.use_splits(self.splits)
        check_recorded_splits(self.splits, self.out / "splits.json")  # a resume: the same samples
        # before any training (the super-net's data-parallel batches come after the landmarks)
        check_batch_fits(len(self.splits.train), cfg.data.batch_size, dist.world_size())
        if cfg.landmarks.enabled and len(self.splits.reg) == 0:
            # a positive fraction: a classification split rounds each class's share, to 0
            rounded = " (each class's share of it rounds to no sample)" if cfg.data.reg_fraction else ""
            raise ValueError(f"data.reg_fraction={cfg.data.reg_fraction:g}{rounded} leaves the "
                             "landmark regularizer no data to evaluate landmarks on; raise it, "
                             "or search with --no-landmarks")
        if main:
            atomic_write_json(self.out / "splits.json", self.splits.manifest())
        world = dist.world_size()
        store = self.standalone.store
        if cfg.landmarks.store and not store.path.is_file() and cfg.landmarks.enabled:
            self.say(f"landmark store {store.path} does not exist yet: starting a new one "
                     "(a typo in --landmarks would retrain every landmark)")
        self.say(f"space {space.name} ({space.size():,} architectures), data {cfg.data.spec}, "
                 f"device {self.device}" + (f" x {world} ranks" if world > 1 else "") +
                 f", landmarks {'on' if cfg.landmarks.enabled else 'off'}; run folder {self.out}")
        return make_task(space, cfg.supernet.loss)

    def _supernet(self, task: Task, landmarks: list[tuple[Arch, float]]
                  ) -> tuple[Trainer, LandmarkRegularizer | None, PathEvaluator | None]:
        """The super-net's trainer (with the landmark penalty) and, on rank 0, which
        alone searches, the evaluator that scores its paths."""
        cfg, space = self.cfg, self.space
        total = cfg.search.iterations * cfg.supernet.epochs
        seed_everything(cfg.seed)  # the super-net's initial weights follow the seed alone
        supernet = space.build_supernet(**self.model_kw)
        regularizer = None
        if cfg.landmarks.enabled:
            regularizer = LandmarkRegularizer(landmarks, self.splits.reg, task, cfg.landmarks,
                                              batch_size=cfg.data.batch_size, device=self.device,
                                              seed=cfg.seed, total_epochs=total,
                                              num_workers=cfg.data.num_workers)
        trainer = Trainer(supernet, task, cfg.supernet, self.splits.train, out_dir=self.out,
                          total_epochs=total, seed=cfg.seed, device=self.device,
                          sample_arch=space.sample, regularizer=regularizer,
                          metadata={**model_metadata(space, None, cfg.model, cfg.data.image_size,
                                                     task.name),
                                    "run_config": config_mod.run_record(cfg)},
                          name="supernet", progress=self.progress, batch_size=cfg.data.batch_size,
                          num_workers=cfg.data.num_workers, distributed=True)
        evaluator = None
        if dist.is_main():
            evaluator = PathEvaluator.for_run(trainer.model, task, self.splits.train,
                                              self.splits.val, cfg, self.device)
        return trainer, regularizer, evaluator

    def _baselines(self, task: Task, evaluator: PathEvaluator | None) -> None:
        """The loss of a model that learned nothing, which the searches and the report
        compare with: on the whole split (where stand-alone models are scored) and on the
        search's validation batches (maybe fewer)."""
        self.constant_loss = constant_score(task, self.splits.val, batch_size=self.cfg.data.batch_size)
        self.search_constant_loss = evaluator.constant_level() if evaluator is not None else None

    def _search(self, t: int, evaluator: PathEvaluator) -> list[str]:
        """Iteration t's search of the super-net (rank 0): its top-K models not yet trained."""
        cfg, space, level = self.cfg, self.space, self.search_constant_loss
        evaluator.refresh()
        ranked = run_search(cfg.search.method, space, evaluator.score, cfg.search,
                            seeded_rng(cfg.seed, "search", t), constraint=self.budget,
                            checkpoint=self.out / f"search_{t + 1}.json",
                            progress=self.progress,
                            order=search_order(space, level, self.model_kw))
        if self.budget is not None:  # the figures its picks were judged by, for a resume
            self.budget.save()
        # the last search scored the super-net as the run ends: finish() reads these
        self.final_scores = scores = dict(ranked)  # in rank order
        picked = [(a, scores[a]) for a in new_models(space, scores, self.standalone.records,
                                                     cfg.search.top_k, keep=self.standalone.trained_here)]
        flat_paths = {a for a, score in ranked if collapsed(space, a, score, level, self.model_kw)}
        flat = len(flat_paths)
        # judged when picked: the super-net keeps training, and a path live then may
        # output a constant by the end
        self.flat_picks += sum(a in flat_paths for a, _ in picked)
        self.picks += len(picked)
        self._record_metrics({"phase": "search", "iteration": t + 1, "evaluated": len(ranked),
                              "at_constant_level": flat, "best_supernet_score": ranked[0][1],
                              "best": space.to_string(ranked[0][0])}, "phase", "iteration")
        self.say(f"  searched {len(ranked)} architectures; taking the top {len(picked)}" +
                 (f" ({flat} super-net path(s) ignoring their input rank last: at a "
                  "constant prediction's level, or cut off by a dead cell)" if flat else ""))
        live = [score for a, score in ranked if a not in flat_paths]
        # classification keeps no level of the scored batches (see constant_level): the
        # split's majority-class error judges whether anything was learned
        floor = supernet_level(level, self.constant_loss)
        if live and learned_nothing(min(live), floor):
            self.unlearned.append(t + 1)
            self.say(f"  warning: {unlearned_note([t + 1], floor, min(live))}")
        return [space.to_string(a) for a, _ in picked]

    def _rank_samples(self) -> list[Arch]:
        """The random sample that measures the ranking: not landmarks, not picks."""
        rank_rng, n = seeded_rng(self.cfg.seed, "rank sample"), self.cfg.search.rank_samples
        # (bounded: a small space may have no untrained model left)
        draws = (self.space.sample(rank_rng) for _ in range(RANDOM_TRIES * n))
        sample = new_models(self.space, draws, self.standalone.records, n, keep=self.standalone.trained_here)
        if len(sample) < n:
            self.say(f"ranking sample: {len(sample)} of the {n} asked for (search.rank_samples); "
                     "the landmarks and searched picks had trained the rest of the space")
        return sample

    def finish(self, evaluator: PathEvaluator, landmark_set: set[Arch]) -> dict[str, Any]:
        """Score every architecture trained on the last super-net, pick the best, and
        write best_arch.json, best/model.safetensors, results.json and the report."""
        space, cfg = self.space, self.cfg
        self._score_trained(evaluator, landmark_set)
        self._mark_budget()  # may time landmarks: before the clock is read
        elapsed = self.clock.elapsed()  # the scoring included: minutes at the paper's size
        found = self._candidates()
        best_arch, best = min(found, key=lambda kv: candidate_order(kv[1]))
        # The ranking is measured on the random sample alone, as in the paper: the
        # searched top-K are the super-net's own picks (and SPOS, with no landmarks,
        # would rank a different, larger set than SPOS + landmarks).
        held_out = [r for r in self.standalone.records.values() if r["role"] == "rank"]
        ranking = None
        if len(held_out) >= 2:
            ranking = ranking_report([r["val_loss"] for r in held_out],
                                     [r["supernet_score"] for r in held_out],
                                     cfg.search.sparse_threshold)
        best_json = self._keep_best(best_arch, best)
        # Algorithm 1's output is the best of the searched picks alone; a landmark run's
        # best may be a landmark, a candidate a plain SPOS run does not have. Runs
        # compared for the method are compared on this one.
        picks = [r for _, r in found if r["role"].startswith("top")]
        searched = min(picks, key=candidate_order) if picks else None
        best_searched = ({"string": searched["arch"], "val_loss": searched["val_loss"],
                          "role": searched["role"]} if searched else None)
        summary = {"space": space.name, "landmarks": cfg.landmarks.enabled,
                   "score_name": evaluator.task.score_name,
                   "elapsed_s": round(elapsed, 1), "best": best_json,
                   "best_searched": best_searched, "ranking": ranking,
                   "rank_samples": cfg.search.rank_samples,
                   "constant_prediction_loss": self.constant_loss,
                   "search_constant_loss": self.search_constant_loss,
                   "picks": self.picks, "flat_picks": self.flat_picks,
                   "unlearned_searches": self.unlearned,
                   "lambda_schedule": self.lambda_schedule,
                   # --skip-bad: said once at the start; the report keeps it for its reader
                   "skipped_samples": list(self.splits.skipped),
                   "architectures": list(self.standalone.records.values())}
        self._record_metrics({"phase": "result", **(ranking or {}), "best_val_loss": best["val_loss"]},
                             "phase")
        from .report import write_report
        results = self.out / "results.json"
        try:
            write_report(self.out, summary)
        except Exception:
            # a report that fails: the results are whole, and a resume would only meet
            # the same failure again (a stop, Ctrl-C, leaves them for the resume to finish)
            atomic_write_json(results, finite_json(summary))
            raise
        # last: results.json says the search finished (a run stopped before it is
        # resumed); a ranking of equal scores has no tau (NaN): null, which strict
        # parsers read
        atomic_write_json(results, finite_json(summary))
        self._say_result(summary, elapsed)
        return summary

    def _score_trained(self, evaluator: PathEvaluator, landmark_set: set[Arch]) -> None:
        """Each trained architecture's super-net score, and whether it is a landmark or
        a path that ignores its input."""
        for a, rec in self.standalone.records.items():
            # scored by the last search already, on the same weights and batches, unless
            # it never met `a` (a landmark, a ranking sample): minutes per path at the
            # paper's size
            rec["supernet_score"] = (self.final_scores[a] if a in self.final_scores
                                     else evaluator.score(a))
            rec["landmark"] = a in landmark_set
            if self.space.ignores_input(a, **self.model_kw):  # in the report: such a loss ranks nothing
                rec["ignores_input"] = True

    def _mark_budget(self) -> None:
        """Record each candidate's size (and latency) under the budget (--max-params,
        latency), and mark the landmarks that break it: they were drawn without it. The
        searched top-K were picked within it, by the figures latency.json keeps."""
        if self.budget is None:
            return
        for a, r in self.standalone.records.items():
            if r["role"] == "rank":  # the ranking samples are no candidates
                continue
            if r["role"] == "landmark" and not self.budget(a):
                r["over_budget"] = True  # said in the report: why it is not the best
            r.update(self.budget.record(a))
        self.budget.save()

    def _candidates(self) -> list[tuple[Arch, dict[str, Any]]]:
        """The stand-alone architectures the search produced: the searched top-K and the
        landmarks (trained for the search too) that keep the budget. Ranking samples are
        left out: they are there to measure the super-net, and are no product of the
        search."""
        return [(a, r) for a, r in self.standalone.records.items()
                if r["role"].startswith("top") or (r["role"] == "landmark" and not r.get("over_budget"))]

    def _keep_best(self, arch: Arch, best: dict[str, Any]) -> dict[str, Any]:
        """Write best_arch.json and copy the best model to best/model.safetensors (or
        say how to train it, when its model file is gone); returns best_arch.json's data."""
        best_json = {**self.space.to_json(arch), "val_loss": best["val_loss"],
                     "supernet_score": best["supernet_score"], "params": best["params"],
                     "found_in": best["role"],
                     **({"latency_ms": best["latency_ms"]} if "latency_ms" in best else {})}
        atomic_write_json(self.out / "best_arch.json", best_json)
        if best.get("model") and Path(best["model"]).is_file():
            atomic_write(self.out / SEARCH_MODEL, functools.partial(shutil.copyfile, best["model"]))
        elif _holds(self.out / SEARCH_MODEL, arch, self.space):
            pass  # copied by an earlier finish of this run: its source has gone since
        else:  # a stored result whose model file was moved or deleted, or a truth table
            source = best.get("model") or "a looked-up result"
            self.say(f"warning: no model file for the best architecture ({source}), so no "
                     "best/model.safetensors to export; train it with `depthnas train --arch "
                     # the file, not the string: a DARTS genotype's quotes broke a quoted one
                     f"{shlex.quote(str(self.out / 'best_arch.json'))} "
                     f"--config {shlex.quote(str(self.out / 'config.yaml'))} "
                     f"--out {shlex.quote(str(self.out / 'best'))}`")
        return best_json

    def _say_result(self, summary: dict[str, Any], elapsed: float) -> None:
        from .report import warnings_of
        best, searched, ranking = summary["best"], summary["best_searched"], summary["ranking"]
        score = summary["score_name"]
        self.say(f"best architecture: {best['string']}  stand-alone validation "
                 f"{score} {best['val_loss']:.5f}  ({self.out / 'best_arch.json'})")
        if searched and searched["string"] != best["string"]:
            self.say(f"best searched pick: {searched['string']}  stand-alone validation "
                     f"{score} {searched['val_loss']:.5f} "
                     f"({searched['role']}; the search's own result, to compare with a "
                     "--no-landmarks run: the best above is a landmark)")
        if ranking is not None:
            self.say(f"super-net ranking on {ranking['n']} random architectures, against their "
                     f"stand-alone {score}: Kendall tau {figure(ranking['kendall_tau'])}, sparse Kendall tau "
                     f"{figure(ranking['sparse_kendall_tau'])} (threshold {figure(ranking['sparse_threshold'], '.2g')})")
        for note in warnings_of(summary):
            self.say(f"warning: {note}")
        self.say(f"done in {took(elapsed)}; report: {self.out / 'report.md'}")


def _holds(model_file: Path, arch: Arch, space: SearchSpace) -> bool:
    """Whether `model_file` is there, readable, and a model of `arch` (under its own
    string, or a twin's: a stored result stands in for every string of its model)."""
    try:
        held = read_metadata(model_file).get("arch")
        return held is not None and space.function_key(space.from_string(held)) == space.function_key(arch)
    except (OSError, ValueError):
        return False


def _lambda_schedule(lm: LandmarkConfig, regularizer: LandmarkRegularizer, total_steps: int) -> dict[str, Any]:
    """The penalty's weight at every step (1-based, as logged), thinned for the report's plot."""
    return {"schedule": lm.schedule, "lambda_max": lm.lambda_max,
            **_thinned(lambda i: regularizer.lam(i - 1, total_steps), total_steps)}


def _thinned(f: Callable[[int], float], n: int, points: int = 400) -> dict[str, list]:
    """f at steps 1..n, at most `points` of them (both ends kept)."""
    m = min(n, points)
    steps = sorted({1 + round(k * (n - 1) / max(m - 1, 1)) for k in range(m)})
    return {"steps": steps, "lambda": [round(f(i), 6) for i in steps]}


def fresh_run_folder() -> tuple[Path, Path]:
    """A folder for a search given no `out`, named by the clock and made now, and the
    outermost folder made for it (`runs.claim_folder`). Made, not only named: two
    searches a script starts in the same second would otherwise share one folder, and
    the second would resume the first. Under torchrun every rank would name a folder
    of its own, so there `out` must be given."""
    if launched():
        raise config_mod.ConfigError("under torchrun set cfg.out: every rank must name "
                                     "the same run folder")
    return claim_folder(Path(config_mod.default_out("search")))


def search_finished(out: Path) -> bool:
    """Whether the search in `out` finished and kept its super-net (else a resume
    trains it again, as its log says)."""
    return (out / "results.json").is_file() and Checkpointer(out / "checkpoints").latest() is not None


def run(cfg: Config, *, resume: bool = False, progress: bool = True,
        say: Callable[[str], None] = _printed) -> dict[str, Any]:
    """A search of `cfg`, as `depthnas search` runs one; returns what results.json
    holds, and `out`: the run's folder.

    `cfg` is checked (`config_checks.validate`: one ConfigError naming every bad
    setting) and left as it is: the search works on a copy, its paths made absolute,
    which the run records as its config.yaml. Without `cfg.out` the search gets a
    new folder of its own. The folder is handled as the command handles it
    (`runs.run_folder`: a fresh start refuses a run's folder or one of other files;
    `resume=True` continues the run in `cfg.out`). Python's and NumPy's generators
    and torch's CPU one (and CUDA's where in use already), which the search seeds
    from `cfg.seed`, are as they were when it returns. Under torchrun (`cfg.out` set)
    the ranks search together, as the command's do, joining torchrun's process group
    for the call if not joined already. `progress`: bars; `say`: where messages go."""
    from .config_checks import validate
    from .run_start import check_model_builds, join_ranks, shape_tuned_kernels
    from .runs import check_kind, check_resumable, run_folder
    if not isinstance(cfg, Config):  # a YAML file's mapping, say
        raise TypeError(f"pipeline.run takes a depthnas.config.Config, not a {type(cfg).__name__}: "
                        "config.load(path, preset) reads one, config.from_dict(mapping) makes one")
    cfg = validate(config_mod.absolute_paths(config_mod.retyped(copy.deepcopy(cfg))))
    # as the command: a backbone that does not build, or a space of one's own that breaks
    # the interface, is refused before a folder is made, not after the landmarks trained
    check_model_builds(cfg, get_space(cfg.space))
    made_from = None
    if resume:
        if not cfg.out:
            raise config_mod.ConfigError("resume=True needs cfg.out: the folder of the run to continue")
        check_resumable(Path(cfg.out))
    if cfg.out:
        check_kind(Path(cfg.out), "search", resume)
    else:  # made now, and taken away again by a start refused inside the lock
        folder, made_from = fresh_run_folder()
        cfg.out = str(folder)
    # under torchrun every rank took itself for rank 0 and locked the folder: the ranks
    # join (and leave again, with the caller's log level, if this call joined them)
    joined_here, level = launched() and not dist.active(), logging.getLogger().level
    join_ranks(cfg)
    finished = False
    try:
        with generators_kept(), shape_tuned_kernels(), run_folder(Path(cfg.out), resume,
                                                                  made_from=made_from):
            summary = {**SearchRun(cfg, progress=progress, say=say).run(), "out": cfg.out}
        finished = True
        return summary
    finally:
        logging.getLogger().setLevel(level)
        if joined_here:
            dist.cleanup(finished)
