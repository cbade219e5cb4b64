"""What `depthnas rank` compares, decided without torch: the run, its configuration, and
the table's architectures that are neither the run's landmarks nor its search's picks.
Every refusal of a bad --run, --truth or option is said here, before the seconds that
torch and the super-net take to load."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthnas.spaces import get_space

from . import config as config_mod
from .io import check_file_to_write, check_out_file, read_json
from .runs import run_kind
from .truth import for_space, other_setup, read_table, said_setup
from .terminal import listed

log = logging.getLogger(__name__)


@dataclass
class RankPlan:
    """The architectures to score, with their table values, and where the report goes."""
    run: Path
    cfg: config_mod.Config
    space: Any
    truth_path: Path
    archs: list[Any]
    values: list[float]
    landmarks_excluded: int
    picks_excluded: int
    threshold: float | None  # the sparse Kendall tau's bin width (None: 1% of the range)
    threshold_rule: str  # which rule chose it
    limit: int | None
    out: Path


def run_finished(run: Path) -> bool:
    """A search's results.json, or the run.json of a benchmarks/ranking.py super-net
    (no search follows its training)."""
    return (run / "results.json").is_file() or (run / "run.json").is_file()


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
    return None, "1% of the truth range of the table's usable rows"


def check_options(threshold: float | None, limit: int | None) -> None:
    """`rank`'s options, checked before anything is read or scored."""
    if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"--threshold must be a finite bin width > 0, got {threshold}")
    if limit is not None and limit < 2:
        raise ValueError(f"--limit must be >= 2 (ranking needs two architectures), got {limit}")


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


def plan_rank(run_dir: str | Path, truth_path: str | Path, *, threshold: float | None = None,
              limit: int | None = None, out: str | Path | None = None) -> RankPlan:
    """Read the run's configuration and the table, and keep the table's architectures
    that the run's super-net can be compared on; refuse what cannot be ranked."""
    check_options(threshold, limit)
    # before the scoring: a folder as --out would fail after it, another file be lost
    check_out_file(out, "rank.json", ("kendall_tau", "sparse_kendall_tau"))
    run = Path(run_dir)
    if not run.exists():  # a typo: not "no config.yaml", which sends one looking inside it
        raise FileNotFoundError(f"--run {run}: no such folder (pass the folder of a `depthnas search`)")
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a search run (no config.yaml)")
    if out is None:  # the run's own rank.json, checked as --out is: before the scoring
        check_file_to_write(run / "rank.json", "--out's default")
    if run_kind(run) == "train":
        raise ValueError(f"{run} is a `depthnas train` run, not a search run (a stand-alone "
                         "model, no super-net); pass the folder of a `depthnas search`")
    cfg = config_mod.load(run / "config.yaml", complete=True)
    space = get_space(cfg.space)

    def run_recipe() -> dict[str, Any]:  # a landmark store shared by runs: this run's entries
        from .recipe import recipe  # with torch: only for a store of several recipes
        return recipe(cfg)
    read = read_table(truth_path, run_recipe)
    table = for_space(read.values, space, truth_path, known_losses=read.known_losses)
    foreign, invalid = table.foreign, table.invalid
    # a table of another space's trainings has nothing to compare: refused below as such
    differ = other_setup(read.setup, cfg) if table.values else []
    if differ:
        log.warning("%s %s: its stand-alone ranking may not be the one this super-net can "
                    "reproduce", truth_path, said_setup(differ))
    if foreign:
        log.info("%s: %d row(s) of other spaces left out (this run searched %s)", truth_path,
                 foreign, space.name)
    if invalid:
        log.warning("%s: %d entr%s of space %s could not be read, left out: %s", truth_path,
                    len(invalid), "y" if len(invalid) == 1 else "ies", space.name,
                    listed(invalid, sep="; "))
    # by model: an entry that builds a landmark's model under another string is the
    # landmark's own path in the super-net
    landmarks, picks = ({space.function_key(space.from_string(t)) for t in group}
                        for group in run_left_out(run))
    # by model too: rows of one model (twins, strings apart only in idle operations)
    # are one super-net path, whose one score counted once per row paired with itself
    rows: dict[Any, tuple[Any, list[float]]] = {}
    skipped, picked = 0, 0
    for text, value in table.values.items():
        arch = space.from_string(text)
        key = space.function_key(arch)
        if key in landmarks:
            skipped += 1
        elif key in picks:
            picked += 1
        else:
            rows.setdefault(key, (arch, []))[1].append(value)
    archs = [arch for arch, _ in rows.values()]
    values = [sum(v) / len(v) for _, v in rows.values()]
    twins = sum(len(v) - 1 for _, v in rows.values())
    if twins:
        log.info("%s: %d row(s) build the model of an earlier row (twins): each model is "
                 "ranked once, at the mean of its rows' values", truth_path, twins)
    if len(archs) < 2:
        raise ValueError(f"{truth_path}: fewer than two architectures of space {space.name} to "
                         f"rank ({len(archs)} usable; {skipped} are the run's landmarks, {picked} "
                         "its search's picks (or build one of their models), "
                         f"{foreign} belong to other spaces, {len(invalid)} could not be read)")
    _check_order(values, truth_path)
    threshold, rule = sparse_threshold(threshold, cfg.search.sparse_threshold,
                                       read.seed_noise.get(space.name))
    if threshold is None:  # of every usable row: a --limit sample's range would move it
        from .rank_correlation import default_threshold  # scipy: after the checks
        threshold = default_threshold(values)
    return RankPlan(run, cfg, space, Path(truth_path), archs, values, skipped, picked,
                    threshold, rule, limit,
                    Path(out) if out is not None else run / "rank.json")
