"""`depthnas rank`: score a run's super-net against a table of stand-alone results."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from depthnas.spaces import get_space

from . import config as config_mod
from .checkpoint import Checkpointer
from .data import check_recorded_splits, load_splits
from .evaluation import PathEvaluator, constant_score, learned_nothing
from .io import atomic_write_json, check_out_file, finite_json, read_json
from .models import model_kwargs
from .ranking import ranking_report
from .runs import run_kind
from .task import make_task
from .runtime import resolve_device, seed_everything, seeded_rng


log = logging.getLogger("depthnas.rank")


def run_left_out(run: Path) -> tuple[set[str], set[str]]:
    """The run's landmarks (trained with the ranking penalty) and the search's own
    picks (the super-net's top, a biased sample): left out of the ranking, as the
    search's report leaves them out, so both measure the same thing."""
    results = run / "results.json"
    if results.is_file():
        archs = read_json(results, expect=dict).get("architectures") or []
        landmarks = {a["arch"] for a in archs if a["landmark"]}
        return landmarks, {a["arch"] for a in archs
                           if a["role"].startswith("top") and a["arch"] not in landmarks}
    initial = run / "initial_landmarks.json"
    if (run / "run.json").is_file() and initial.is_file():  # benchmarks/ranking.py: no search
        return set(read_json(initial, expect=list)), set()
    log.warning("%s has no results.json (the search has not finished): only its initial "
                "landmarks are left out of the ranking, not the top-K that later iterations "
                "added to them", run)
    return (set(read_json(initial, expect=list)) if initial.is_file() else set()), set()


def sparse_threshold(given: float | None, configured: float | None,
                     noise: float | None) -> tuple[float | None, str]:
    """The sparse Kendall tau's bin width and the rule that chose it: --threshold; else
    the run's own search.sparse_threshold (a benchmarks/ranking.py run records the one
    its table says), so that `rank` re-scores a run as the run scored itself; else the
    table's seed noise (`noise`, where it records one); else None, 1% of the truth range."""
    if given is not None:
        return given, "given (--threshold)"
    if configured is not None:
        return configured, "the run's search.sparse_threshold"
    if noise is not None:
        return noise, "the table's median |seed 0 - seed 1|"
    return None, "1% of the truth range"


def check_options(threshold: float | None, limit: int | None) -> None:
    """`rank`'s options, checked before anything is read or scored."""
    if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"--threshold must be a finite bin width > 0, got {threshold}")
    if limit is not None and limit < 2:
        raise ValueError(f"--limit must be >= 2 (ranking needs two architectures), got {limit}")


def _run_config(run: Path) -> config_mod.Config:
    """The run's config.yaml as its super-net trained with it: a cut file would fill
    in defaults (200 calibration batches for the quick preset's 4), an edited one
    other settings, and either scores every path otherwise than the run did."""
    cfg = config_mod.load(run / "config.yaml", complete=True)
    recorded = Checkpointer(run / "checkpoints").latest_metadata() or {}
    changes = config_mod.record_changes(recorded.get("run_config") or {}, cfg)
    if changes:
        raise config_mod.ConfigError(
            f"{run / 'config.yaml'} differs from the settings the run's super-net trained with "
            f"({'; '.join(changes)}): restore them to rank the run as it searched")
    return cfg


def _check_order(values: list[float], truth_path: str | Path) -> None:
    """A table whose losses are all equal has no order to agree with; negative ones are
    no loss or error rate this tool writes (another quantity, or the sign flipped)."""
    if len(values) >= 2 and min(values) == max(values):
        raise ValueError(f"{truth_path}: all {len(values)} architectures to rank have the same "
                         f"loss ({values[0]}): there is no order to measure")
    negative = sum(v < 0 for v in values)
    if negative:
        log.warning("%s: %d loss(es) below 0 (lowest %s), which no loss or error rate is: "
                    "is this another quantity, or one where higher is better?", truth_path,
                    negative, min(values))


def rank_run(run_dir: str | Path, truth_path: str | Path, *, threshold: float | None = None,
             limit: int | None = None, progress: bool = True, device: str = "auto",
             out: str | Path | None = None) -> dict[str, Any]:
    """Score the run's super-net on the table's architectures and compare the orders;
    writes `out` (default RUN/rank.json) and returns the report."""
    from .truth import for_space, read_table
    check_options(threshold, limit)
    check_out_file(out, "rank.json")  # before the scoring: a folder as --out would fail after it
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a search run (no config.yaml)")
    if run_kind(run) == "train":
        raise ValueError(f"{run} is a `depthnas train` run, not a search run (a stand-alone "
                         "model, no super-net); pass the folder of a `depthnas search`")
    cfg = _run_config(run)
    torch_device = resolve_device(device)
    space = get_space(cfg.space)
    read = read_table(truth_path)
    table = for_space(read.values, space, truth_path, from_accuracy=read.from_accuracy)
    foreign, invalid = table.foreign, table.invalid
    ours = config_mod.dotted_fields(cfg)
    differ = {k: v for k, v in read.setup.items() if ours.get(k) != v}
    if differ:
        log.warning("%s was trained with %s; this run has %s: its stand-alone ranking may not be "
                    "the one this super-net can reproduce", truth_path,
                    ", ".join(f"{k}={v}" for k, v in differ.items()),
                    ", ".join(f"{k}={ours.get(k)}" for k in differ))
    if foreign:
        log.info("%s: %d row(s) of other spaces left out (this run searched %s)", truth_path,
                 foreign, space.name)
    # by model: an entry that builds a landmark's model under another string is the
    # landmark's own path in the super-net
    landmarks, picks = ({space.function_key(space.from_string(t)) for t in group}
                        for group in run_left_out(run))
    archs, values, skipped, picked = [], [], 0, 0
    for text, value in table.values.items():
        arch = space.from_string(text)
        key = space.function_key(arch)
        if key in landmarks:
            skipped += 1
        elif key in picks:
            picked += 1
        else:
            archs.append(arch)
            values.append(value)
    usable = len(archs)
    if limit is not None and limit < len(archs):
        # a seeded random sample, as Kendall tau asks; the table's first rows may be
        # ordered (by loss, by space) and would bias it
        keep = sorted(seeded_rng(cfg.seed, "rank subset").sample(range(len(archs)), limit))
        archs, values = [archs[i] for i in keep], [values[i] for i in keep]
    if invalid:
        log.warning("%s: %d entr%s of space %s could not be read, left out: %s", truth_path,
                    len(invalid), "y" if len(invalid) == 1 else "ies", space.name,
                    "; ".join(invalid[:3]) + (" ..." if len(invalid) > 3 else ""))
    if len(archs) < 2:
        raise ValueError(f"{truth_path}: fewer than two architectures of space {space.name} to "
                         f"rank ({usable} usable; {skipped} are the run's landmarks, {picked} "
                         "its search's picks (or build one of their models), "
                         f"{foreign} belong to other spaces, {len(invalid)} could not be read)")
    _check_order(values, truth_path)
    if usable != len(archs):
        log.info("scoring a random sample of %d of %d usable architectures (--limit)",
                 len(archs), usable)
    # Seeded as the search seeds itself (SearchRun._prepare, _supernet): the calibration
    # batches' augmentation follows torch's seed, so an unseeded process would
    # recalibrate BatchNorm on other crops and score differently on every call.
    seed_everything(cfg.seed)
    splits = load_splits(cfg)
    check_recorded_splits(splits, run / "splits.json")  # the super-net's own validation split
    seed_everything(cfg.seed)  # as before the search builds its super-net
    supernet = space.build_supernet(**model_kwargs(cfg.model, space)).to(torch_device)
    epoch = int(Checkpointer(run / "checkpoints").load(supernet)["epoch"])
    evaluator = PathEvaluator.for_run(supernet, make_task(space, cfg.supernet.loss), splits.train,
                                      splits.val, cfg, torch_device)
    scores = [evaluator.score(a) for a in tqdm(archs, desc="scoring", disable=not progress)]
    # classification: the majority class's error on the split (the evaluator keeps no
    # level of its own there); None where there is none to compare with
    level = evaluator.constant_level()
    if level is None:
        level = constant_score(evaluator.task, splits.val, batch_size=cfg.data.batch_size)
    live = [s for s in scores if math.isfinite(s)]
    learned = None if level is None or not live else not learned_nothing(min(live), level)
    if learned is False:
        log.warning("no scored path beat a constant prediction (%.5f; best %.5f, within 1%% of it or "
                    "worse): this super-net "
                    "had not learned yet, so its side of the ranking is noise", level, min(live))
    diverged = [space.to_string(a) for a, s in zip(archs, scores) if not math.isfinite(s)]
    if diverged:
        log.warning("%d path(s) score non-finite in the super-net (diverged), left out of the "
                    "ranking: %s", len(diverged), "; ".join(diverged[:3]) +
                    (" ..." if len(diverged) > 3 else ""))
    threshold, rule = sparse_threshold(threshold, cfg.search.sparse_threshold,
                                       read.seed_noise.get(space.name))
    report = ranking_report(values, scores, threshold)
    report["sparse_threshold_rule"] = rule
    report["landmarks_excluded"], report["search_picks_excluded"] = skipped, picked
    # which super-net was scored: one of an unfinished run is half-trained, and its
    # search's later picks are not yet known to be left out
    report["supernet_epoch"] = epoch
    report["supernet_epochs"] = cfg.search.iterations * cfg.supernet.epochs
    report["run_finished"] = (run / "results.json").is_file()
    report["constant_level"], report["supernet_learned"] = level, learned
    out = Path(out) if out is not None else run / "rank.json"
    # NaN (no ranking: too few finite scores, or every path scored alike) as JSON null
    atomic_write_json(out, finite_json({**report, "truth": str(Path(truth_path).resolve()),
                                        "scores": {space.to_string(a): s for a, s in zip(archs, scores)}}))
    report["written_to"] = str(out)
    return report
