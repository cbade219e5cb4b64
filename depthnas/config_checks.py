"""Checks of a whole configuration, before any work starts: a typo in a schedule name
must not surface after hours of landmark training. Every problem is collected, not
only the first, and each names its field and what it expects. The allowed values
are the ones the modules that act on them use, so the two cannot drift apart; all
are importable without torch, OpenCV or albumentations, so a refused configuration
is said in a fraction of a second, not after the seconds those take to load."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from depthnas.datasets.settings import DEPTH_KINDS, check_image_size
from depthnas.datasets.spec import data_path_problem, is_classification_spec, parse_spec
from depthnas.spaces import get_space
from depthnas.spaces.darts.space import DartsSpace
from depthnas.spaces.depth.space import FIRST_BLOCK_INPUTS, MIN_FEATURES, WEIGHT_SUFFIXES, DepthSpace
from depthnas.spaces.nb201.space import NB201Space

from .choices import CLASSIFICATION_LOSSES, DEPTH_LOSSES, PRECISIONS
from .config import Config, ConfigError, TrainConfig, retyped
from .data import check_data_fits_space
from .landmark_sampler import default_tau, landmark_problem
from .schedule import INCREASING, SCHEDULES


class _Problems(list):
    def choose(self, where: str, value: Any, allowed) -> None:
        if value not in allowed:
            self.append(f"{where}={value!r} (expected one of {', '.join(map(str, allowed))})")

    def at_least(self, least: float, *fields: tuple[str, Any]) -> None:
        for where, value in fields:
            if value is not None and value < least:
                self.append(f"{where}={value} (expected >= {least})")


def validate(cfg: Config) -> Config:
    """`cfg` if every field holds, else one ConfigError naming every problem. Fields
    a script set by attribute are brought to their declared types first, in `cfg`
    itself (`retyped`); one of no such type is a problem named with the others."""
    problems = _Problems()
    retyped(cfg, problems)
    if problems:  # the checks below compare values of the declared types
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    try:
        space = get_space(cfg.space)
    except ValueError as err:
        problems.append(f"space: {err}")
        space = None
    # an unknown space is said once, as `space`; its data is read as the spec's kind
    classification = space.task_kind == "classification" if space is not None \
        else is_classification_spec(cfg.data.spec)
    if not 0 <= cfg.seed < 2**32:  # numpy's bound, said in its words otherwise
        problems.append(f"seed={cfg.seed} (expected 0 to 2**32 - 1)")
    if not re.fullmatch(r"auto|(cpu|cuda)(:\d+)?", cfg.device):  # torch takes cpu:0 too
        # empty, or a device torch knows and depthnas does not run on (mps, xpu, meta):
        # said here, not as torch's traceback as the run starts
        problems.append(f"device={cfg.device!r} (expected auto, cpu, cuda or cuda:N)")
    for name in ("supernet", "standalone"):
        _check_training(problems, name, getattr(cfg, name), classification)
    _check_landmarks(problems, cfg, space)
    _check_search(problems, cfg)
    _check_model(problems, cfg, space, classification)
    _check_data(problems, cfg, space is not None, classification)
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return cfg


def _check_training(problems: _Problems, name: str, t: TrainConfig, classification: bool) -> None:
    problems.choose(f"{name}.precision", t.precision, PRECISIONS)
    if not classification:
        problems.choose(f"{name}.loss", t.loss, DEPTH_LOSSES)
    elif t.loss not in CLASSIFICATION_LOSSES:  # the default, "ssi", means "the task's own"
        problems.append(f"{name}.loss={t.loss!r}: classification spaces train with "
                        "cross-entropy (ce); leave the loss unset")
    problems.at_least(1, (f"{name}.epochs", t.epochs), (f"{name}.log_every", t.log_every),
                      (f"{name}.steps_per_epoch", t.steps_per_epoch))
    for key, value in (("lr", t.lr), ("backbone_lr", t.backbone_lr),
                       ("weight_decay", t.weight_decay), ("grad_clip", t.grad_clip)):
        if not math.isfinite(value) or value < 0:
            problems.append(f"{name}.{key}={value} (expected a finite number >= 0)")


def _check_landmarks(problems: _Problems, cfg: Config, space: Any) -> None:
    lm = cfg.landmarks
    problems.choose("landmarks.schedule", lm.schedule, SCHEDULES)
    if lm.enabled and space is not None and lm.num >= 1:
        problem = landmark_problem(space, lm.num, default_tau(space) if lm.tau is None else lm.tau)
        if problem:
            problems.append(problem)
    if lm.enabled:
        total = cfg.search.iterations * cfg.supernet.epochs  # lambda's clock: T * E epochs
        ramp = lm.ramp_epochs if lm.schedule not in INCREASING else 0.0
        # the searched top-K join the landmarks after every iteration but the last
        # (a bad iteration count is said on its own, not as too few landmarks as well)
        joining = max(0, cfg.search.iterations - 1) * max(0, cfg.search.top_k)
        if lm.num < 0 or lm.num + joining < 2:
            problems.append(f"landmarks.num={lm.num}: the ranking penalty needs pairs, so >= 2 "
                            "landmarks, counting the top-K that join after each iteration "
                            "(--no-landmarks runs plain SPOS)")
        # not (x >= 0): NaN fails every comparison, and passed as "not negative"
        if not all(math.isfinite(v) and v >= 0 for v in (lm.warmup_epochs, lm.ramp_epochs)):
            problems.append(f"landmarks.warmup_epochs={lm.warmup_epochs}, landmarks.ramp_epochs="
                            f"{lm.ramp_epochs} (expected finite numbers >= 0)")
        elif total >= 1 and lm.warmup_epochs + ramp >= total:  # (total < 1 is named elsewhere)
            problems.append(f"landmarks.warmup_epochs + landmarks.ramp_epochs = "
                            f"{lm.warmup_epochs + ramp:g} leave none of the super-net's "
                            f"{total} epochs (search.iterations x supernet.epochs) at lambda_max "
                            f"for the {lm.schedule} schedule")
    if not math.isfinite(lm.lambda_max) or lm.lambda_max < 0:
        problems.append(f"landmarks.lambda_max={lm.lambda_max} (expected a finite number >= 0)")
    if lm.pairs < 0:
        problems.append(f"landmarks.pairs={lm.pairs} (expected >= 0; 0 = all pairs)")


def _check_search(problems: _Problems, cfg: Config) -> None:
    from .evolution import SEARCHERS  # and tqdm, which `depthnas --help` need not wait for
    s = cfg.search
    problems.choose("search.method", s.method, tuple(SEARCHERS))
    problems.at_least(1, ("search.generations", s.generations),
                      ("search.random_candidates", s.random_candidates),
                      ("search.calib_batches", s.calib_batches), ("search.val_batches", s.val_batches),
                      ("search.parents", s.parents), ("search.population", s.population),
                      ("search.iterations", s.iterations))
    problems.at_least(0, ("search.rank_samples", s.rank_samples), ("search.mutations", s.mutations),
                      ("search.crossovers", s.crossovers))
    if not 0.0 <= s.mutation_prob <= 1.0:
        problems.append(f"search.mutation_prob={s.mutation_prob} (expected a probability)")
    for where, value in (("search.max_params", s.max_params), ("search.max_latency_ms", s.max_latency_ms),
                         ("search.sparse_threshold", s.sparse_threshold)):
        if value is not None and not (math.isfinite(value) and value > 0):
            problems.append(f"{where}={value} (expected a finite number > 0, or none)")
    if s.top_k < 0:
        problems.append(f"search.top_k={s.top_k} (expected >= 0; 0 with landmarks: the best "
                        "landmark is the result)")
    elif s.top_k == 0 and not cfg.landmarks.enabled:
        problems.append(f"search.top_k={s.top_k}: without landmarks a search needs top_k >= 1 "
                        "(the architectures it trains stand-alone and returns)")
    budget = [f"search.{k}" for k in ("max_params", "max_latency_ms") if getattr(s, k) is not None]
    if s.top_k == 0 and budget:
        problems.append(f"search.top_k=0 with {budget[0]}: the result would be the best landmark "
                        "within the budget, but landmarks are drawn without it and none may fit; "
                        "set top_k >= 1 (the search's picks keep the budget)")
    if s.parents > s.population:
        problems.append(f"search.parents={s.parents} exceeds search.population={s.population}")
    if s.mutations + s.crossovers > s.population:
        problems.append(f"search.mutations + search.crossovers = {s.mutations + s.crossovers} "
                        f"exceed search.population={s.population} (new candidates per generation)")


def _check_model(problems: _Problems, cfg: Config, space: Any, classification: bool) -> None:
    m = cfg.model
    problems.choose("model.first_block_input", m.first_block_input, FIRST_BLOCK_INPUTS)
    if isinstance(space, DepthSpace) and not m.backbone.strip():
        problems.append("model.backbone is empty (a timm model name, e.g. resnet18)")
    darts, nb201 = (isinstance(space, kind) for kind in (DartsSpace, NB201Space))
    problems.at_least(2 if darts else 1, ("model.channels", m.channels))
    if not classification:  # classification models take no `features`
        problems.at_least(MIN_FEATURES, ("model.features", m.features))
    if darts:  # two reduction cells and a normal one
        problems.at_least(3, ("model.darts_layers", m.darts_layers))
    if nb201:
        problems.at_least(1, ("model.cells_per_stage", m.cells_per_stage))
    if darts or nb201:
        problems.at_least(2, ("model.num_classes", m.num_classes))
    weights = m.backbone_weights
    if weights and classification:
        problems.append(f"model.backbone_weights: space {cfg.space} has no backbone (its cells "
                        "train from scratch); leave it unset")
    elif weights and space is not None and not isinstance(space, DepthSpace):
        # a space of the user's: no timm backbone to read the file into
        problems.append(f"model.backbone_weights: space {cfg.space} has no timm backbone to "
                        "load it into; leave it unset")
    elif weights:  # found missing only when the first model is built, after work has begun
        if Path(weights).is_dir():
            problems.append(f"model.backbone_weights={weights} is a folder; name the "
                            f"{' / '.join(WEIGHT_SUFFIXES)} file in it")
        elif not Path(weights).is_file():
            problems.append(f"model.backbone_weights={weights}: no such file")
        elif Path(weights).suffix not in WEIGHT_SUFFIXES:
            problems.append(f"model.backbone_weights={weights}: expected a "
                            f"{' / '.join(WEIGHT_SUFFIXES)} file")


def _check_data(problems: _Problems, cfg: Config, space_known: bool, classification: bool) -> None:
    d = cfg.data
    problems.choose("data.depth_kind", d.depth_kind, DEPTH_KINDS)
    if not d.spec.strip():
        problems.append("data.spec is empty (synthetic, or KIND:PATH)")
    else:  # said here, not by the loader once the run has begun
        try:
            if space_known:  # an unknown one is said once, as `space`
                check_data_fits_space(cfg)
            parse_spec(d.spec, d.depth_kind if d.depth_kind in DEPTH_KINDS else "depth",
                       classification=classification)
        except ValueError as err:
            problems.append(f"data.spec: {err}")
        else:
            if problem := data_path_problem(d.spec):
                problems.append(f"data.spec={d.spec!r}: {problem}")
    for where, value in (("data.val_fraction", d.val_fraction), ("data.reg_fraction", d.reg_fraction)):
        if not 0.0 <= value < 1.0:
            problems.append(f"{where}={value} (expected a fraction in [0, 1))")
    if d.val_fraction == 0:  # every score (stand-alone and super-net) is on this split
        problems.append("data.val_fraction=0 leaves nothing to score architectures on")
    if d.val_fraction + d.reg_fraction >= 1.0:
        problems.append(f"data.val_fraction + data.reg_fraction = {d.val_fraction + d.reg_fraction} "
                        "leave nothing to train on")
    problems.at_least(0, ("data.num_workers", d.num_workers))
    problems.at_least(1, ("data.batch_size", d.batch_size))
    if d.synthetic_samples < 3:
        problems.append(f"data.synthetic_samples={d.synthetic_samples} (expected >= 3: one sample per split)")
    if not classification:
        try:
            check_image_size(d.image_size)
        except ValueError as err:
            problems.append(f"data.image_size: {err}")
