"""`depthnas rank`: score a run's super-net against a table of stand-alone results.
What to score is decided (and refused) by rank_plan, without torch."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from . import config as config_mod
from .checkpoint import Checkpointer
from .data import check_recorded_splits, load_splits
from .degenerate import learned_nothing
from .io import atomic_write_json, finite_json
from .models import model_kwargs
from .rank_correlation import ranking_report
from .rank_plan import RankPlan, plan_rank, run_finished
from .runtime import generators_kept, resolve_device, seed_everything, seeded_rng
from .scoring import PathEvaluator, constant_score
from .search_resume import supernet_config_changes
from .task import make_task
from .terminal import listed


log = logging.getLogger(__name__)


def check_trained_config(run: Path, cfg: config_mod.Config) -> None:
    """The run's config.yaml as its super-net trained with it: a cut file would fill
    in defaults (200 calibration batches for the quick preset's 4), an edited one
    other settings, and either scores every path otherwise than the run did."""
    changes = supernet_config_changes(run, cfg)
    if changes:
        raise config_mod.ConfigError(
            f"{run / 'config.yaml'} differs from the settings the run's super-net trained with "
            f"({'; '.join(changes)}): restore them to rank the run as it searched")


def rank_run(run_dir: str | Path, truth_path: str | Path, *, threshold: float | None = None,
             limit: int | None = None, progress: bool = True, device: str = "auto",
             out: str | Path | None = None) -> dict[str, Any]:
    """Score the run's super-net on the table's architectures and compare the orders;
    writes `out` (default RUN/rank.json) and returns the report."""
    plan = plan_rank(run_dir, truth_path, threshold=threshold, limit=limit, out=out)
    return score_plan(plan, progress=progress, device=device)


@generators_kept()  # a library call leaves the caller's random streams as they were
def score_plan(plan: RankPlan, *, progress: bool = True, device: str = "auto") -> dict[str, Any]:
    """Score the plan's architectures in the run's super-net, as the search scored them,
    and write the ranking report to plan.out."""
    run, cfg, space, truth_path = plan.run, plan.cfg, plan.space, plan.truth_path
    check_trained_config(run, cfg)
    torch_device = resolve_device(device)
    archs, values = plan.archs, plan.values
    if plan.limit is not None and plan.limit < len(archs):
        # a seeded random sample, as Kendall tau asks; the table's first rows may be
        # ordered (by loss, by space) and would bias it
        keep = sorted(seeded_rng(cfg.seed, "rank subset").sample(range(len(archs)), plan.limit))
        archs, values = [archs[i] for i in keep], [values[i] for i in keep]
        log.info("scoring a random sample of %d of %d usable architectures (--limit)",
                 len(archs), len(plan.archs))
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
    if learned is False:  # said of the paths scored: --limit's sample may miss those that did
        sampled = (f" (--limit: {len(archs)} of {len(plan.archs)} scored; others may beat it)"
                   if len(archs) < len(plan.archs) else "")
        log.warning("none of the %d scored path(s) beat a constant prediction (%.5f; best %.5f, "
                    "within 1%% of it or worse): their super-net scores are noise, and so is this "
                    "ranking%s", len(live), level, min(live), sampled)
    diverged = [space.to_string(a) for a, s in zip(archs, scores) if not math.isfinite(s)]
    if diverged:
        log.warning("%d path(s) score non-finite in the super-net (diverged), left out of the "
                    "ranking: %s", len(diverged), listed(diverged, sep="; "))
    report = ranking_report(values, scores, plan.threshold)
    report["sparse_threshold_rule"] = plan.threshold_rule
    report["landmarks_excluded"] = plan.landmarks_excluded
    report["search_picks_excluded"] = plan.picks_excluded
    # which super-net was scored: one of an unfinished run is half-trained, and its
    # search's later picks are not yet known to be left out
    report["supernet_epoch"] = epoch
    report["supernet_epochs"] = cfg.search.iterations * cfg.supernet.epochs
    report["run_finished"] = run_finished(run)
    report["constant_level"], report["supernet_learned"] = level, learned
    out = plan.out
    # NaN (no ranking: too few finite scores, or every path scored alike) as JSON null
    atomic_write_json(out, finite_json({**report, "truth": str(Path(truth_path).resolve()),
                                        "scores": {space.to_string(a): s for a, s in zip(archs, scores)}}))
    report["written_to"] = str(out)
    return report
