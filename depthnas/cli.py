"""`depthnas` command line: search, train, spaces, rank, evaluate, export, predict, demo."""
from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from . import config as config_mod
from .arch_arg import naming_arch_file, read_arch_arg, space_of
from .config import Config
from .config_checks import validate
from .io import atomic_write_json
from .terminal import show_progress
from .runs import check_kind, clear_failed_start, guard_out, holds_run, run_kind, run_lock
from .schedule import SCHEDULES

# flag -> (config path, type, help); "--precision" sets both trainings
COMMON_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--space": ("space", str, "search space (see `depthnas spaces`)"),
    "--data": ("data.spec", str, "depth: synthetic | redweb:PATH | nyuv2:PATH | diode:PATH | "
                                 "folder:PATH; classification (nb201, darts): digits | cifar10:PATH"),
    "--out": ("out", str, "run directory (default: runs/<command>-<date>-<time>)"),
    "--seed": ("seed", config_mod.whole_number, "random seed"),
    "--device": ("device", str, "auto | cpu | cuda | cuda:N"),
    "--backbone": ("model.backbone", str, "timm backbone name"),
    "--backbone-weights": ("model.backbone_weights", str, "local .safetensors/.pth backbone weights"),
    "--features": ("model.features", config_mod.whole_number, "decoder channels"),
    "--image-size": ("data.image_size", str, "H,W (multiples of 32) or one number"),
    "--batch-size": ("data.batch_size", config_mod.whole_number, "batch size"),
    "--precision": ("", str, "fp32 | bf16 (autocast)"),
}
SEARCH_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--epochs": ("supernet.epochs", config_mod.whole_number, "super-net epochs per iteration"),
    "--standalone-epochs": ("standalone.epochs", config_mod.whole_number, "epochs of each stand-alone training"),
    "--iterations": ("search.iterations", config_mod.whole_number, "T: search iterations"),
    "--top-k": ("search.top_k", config_mod.whole_number, "architectures trained stand-alone per iteration"),
    "--method": ("search.method", str, "evolution | random"),
    "--landmarks": ("landmarks.store", str, "landmark store JSON to reuse and extend"),
    "--num-landmarks": ("landmarks.num", config_mod.whole_number, "M: landmarks in the first iteration"),
    "--lambda-max": ("landmarks.lambda_max", float, "final landmark weight"),
    "--schedule": ("landmarks.schedule", str, "lambda schedule (default cosine-increasing): "
                   + ", ".join(SCHEDULES)),
    "--pairs": ("landmarks.pairs", config_mod.whole_number, "m: landmark pairs per step (0 = all)"),
    "--max-params": ("search.max_params", config_mod.whole_number,
                     "parameter budget for searched models (e.g. 3e7)"),
}
TRAIN_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--epochs": ("standalone.epochs", config_mod.whole_number, "training epochs"),
}
# Settings a resumed run may change: where and how fast it runs, not what it computes.
# (`out` too: the same folder may be named another way, or have moved.)
RESUME_MAY_CHANGE = {"out", "device", "data.num_workers", "supernet.compile", "standalone.compile",
                     "supernet.channels_last", "standalone.channels_last"}


def config_flags(command: str) -> dict[str, tuple[str, Any, str]]:
    return {**COMMON_FLAGS, **(SEARCH_FLAGS if command == "search" else TRAIN_FLAGS)}


def add_config_args(p: argparse.ArgumentParser, command: str) -> None:
    p.set_defaults(config_command=command)
    p.add_argument("--config", help="YAML config file (overrides the preset)")
    p.add_argument("--preset", choices=sorted(config_mod.PRESETS), help="starting configuration")
    for flag, (_, typ, help_) in config_flags(command).items():
        p.add_argument(flag, type=typ, default=None, help=help_)
    if command == "search":
        p.add_argument("--no-landmarks", action="store_true", help="plain SPOS (same total epochs)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the backbone (first steps are slower while it compiles)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable samples (counted in the log)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field, e.g. --set data.num_workers=4" +
                        (" --set search.generations=10" if command == "search" else ""))
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _updates(args: argparse.Namespace, command: str) -> list[config_mod.Assignment]:
    """The assignments the command line asks for: flags' values as typed, then --set's
    `section.field=value` (read as YAML), which may override them."""
    updates: list[config_mod.Assignment] = []
    for flag, (path, _, _) in config_flags(command).items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is None:
            continue
        if flag == "--precision":
            updates += [("supernet.precision", value), ("standalone.precision", value)]
        else:
            updates.append((path, value))
    if getattr(args, "no_landmarks", False):
        updates.append(("landmarks.enabled", False))
    if args.channels_last:
        updates += [("supernet.channels_last", True), ("standalone.channels_last", True)]
    if args.compile:
        updates += [("supernet.compile", True), ("standalone.compile", True)]
    if args.skip_bad:
        updates.append(("data.skip_bad", True))
    return updates + list(args.set)


def _moved_hint(changed: list[str], before: dict[str, Any], after: dict[str, Any]) -> str:
    """A data folder or weights file that moved cannot be renamed in a run: its
    results are recorded under the old path (stand-alone results are reused only under
    the same recipe). A link from the old path to the new one keeps the run whole."""
    def path(k: str, value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        return value.partition(":")[2] if k == "data.spec" else value

    for k in changed:
        if k not in ("data.spec", "model.backbone_weights") or (k == "data.spec" and str(
                before[k]).partition(":")[0] != str(after[k]).partition(":")[0]):
            continue  # another kind of data set is not a move
        old, new = path(k, before[k]), path(k, after[k])
        if old and new and not Path(old).exists() and Path(new).exists():
            return (f". If {old} moved to {new}, link the old path to it (ln -s "
                    f"{Path(new).resolve()} {old}) and resume without the flag: the run's "
                    "results are recorded under the old path")
    return ""


def _check_paths_remain(cfg: Config, saved: Path) -> None:
    """A resumed run reads its data and weights where it first found them; gone from
    there, say so before anything starts, with the way to resume (not only the
    loader's "folder not found" after the run has begun)."""
    gone = []
    data, weights = cfg.data.spec.partition(":")[2], cfg.model.backbone_weights
    if data and not Path(data).exists():
        gone.append(f"data.spec {cfg.data.spec}")
    if weights and not Path(weights).is_file():
        gone.append(f"model.backbone_weights {weights}")
    if gone and not holds_run(saved.parent):  # a start that failed: never read, not moved
        raise config_mod.ConfigError(
            f"nothing has run in {saved.parent} yet, and its {' and '.join(gone)} is not "
            "there: start it again without --resume, naming where the data is")
    relative = [p for p in (data, weights) if p and not os.path.isabs(os.path.expanduser(p))]
    if gone and relative:  # a run from before paths were recorded absolute
        raise config_mod.ConfigError(
            f"the run's {' and '.join(gone)} (from {saved}) is not there: {relative[0]} is "
            "relative to the folder the run was started in; resume from that folder")
    if gone:
        raise config_mod.ConfigError(
            f"the run's {' and '.join(gone)} (from {saved}) is not there any more. If it moved, "
            "link the old path to the new place (ln -s NEW OLD) and resume again: the run's "
            "results are recorded under the old path")


def _resumed(saved: Path, updates: list[config_mod.Assignment], args: argparse.Namespace) -> Config:
    """A resumed run's own config.yaml. Flags, --preset and --config may repeat it
    (the first command rerun with --resume), not change it; only where and how fast
    it runs (RESUME_MAY_CHANGE) may differ."""
    cfg = config_mod.load(saved, complete=True)
    # paths compared as absolute ones: the first command repeated (--data data/x) names
    # the same data as the run's record of it; the record itself is left as it is (an
    # older run's relative path is in its stand-alone results' recipes)
    before = config_mod.flat(config_mod.absolute_paths(copy.deepcopy(cfg)))
    given = config_mod.load(args.config, args.preset)  # what the command asks for, checked
    after = config_mod.flat(config_mod.absolute_paths(config_mod.apply_dotted(given, updates)))
    flagged = config_mod.assigned_fields(updates)
    named = (config_mod.named_fields(args.config, args.preset) | flagged) & set(after)
    changed = [k for k in sorted(named) if after[k] != before[k] and k not in RESUME_MAY_CHANGE]
    if changed:
        source = " / ".join(f for f, on in ((f"--preset {args.preset}", args.preset),
                                            (f"--config {args.config}", args.config)) if on)

        def said_by(k: str) -> str:
            return "" if k in flagged else f" (by {source})"
        diff = "; ".join(f"{k}: saved {before[k]!r}, given {after[k]!r}{said_by(k)}"
                         for k in changed)
        raise config_mod.ConfigError(
            f"--resume continues the run with its own {saved}, which holds every setting, and "
            f"these differ from it: {diff}. Drop them to continue, or start a new run in "
            f"another --out{_moved_hint(changed, before, after)}")
    allowed = {k: after[k] for k in named & RESUME_MAY_CHANGE}  # device, workers, ...
    return config_mod.apply(cfg, config_mod.unflatten(allowed))


def build_config(args: argparse.Namespace) -> Config:
    """Preset < --config < flags, validated; with --resume, the run's saved config
    (flags may then only repeat it, or change the device and speed options)."""
    from . import distributed
    command = getattr(args, "config_command", "search")
    updates = _updates(args, command)
    resume = getattr(args, "resume", False)
    if resume and not args.out:
        raise config_mod.ConfigError("--resume needs --out: the folder of the run to continue")
    if args.out:
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise config_mod.ConfigError(f"--out {args.out} is a file; it must name the run's folder")
        check_kind(Path(args.out), command, resume)
    saved = Path(args.out) / "config.yaml" if args.out else None
    if resume and not saved.is_file():
        if holds_run(args.out):
            raise config_mod.ConfigError(
                f"the run in {args.out} has lost its config.yaml, which holds every setting it "
                "resumes with: put it back (from a copy of the run) to resume, or start a new "
                "run in another --out")
        raise config_mod.ConfigError(f"nothing to resume in {args.out} (no config.yaml): check "
                                     "the folder name, or drop --resume to start a run there")
    if resume:
        cfg = _resumed(saved, updates, args)
        if Path(cfg.out).resolve() != Path(args.out).resolve():  # `--set out=` after --out
            raise config_mod.ConfigError(
                f"--resume continues the run in --out {args.out}, but out={cfg.out} names "
                "another folder: drop it (a run is resumed where it is)")
        _check_paths_remain(cfg, saved)
    else:
        cfg = config_mod.absolute_paths(config_mod.apply_dotted(
            config_mod.load(args.config, args.preset), updates))
        # a run's config.yaml names that run's folder: rerunning it (the SPOS comparison,
        # a longer training of the winner) needs a folder of its own
        if not args.out and cfg.out and holds_run(cfg.out):
            source = ("--set out=" if "out" in config_mod.assigned_fields(list(args.set))
                      else f"out: in {args.config}" if args.config else f"--preset {args.preset}")
            resume = (f" (or --out {cfg.out} --resume to continue that run)"
                      if run_kind(cfg.out) == command else "")
            raise config_mod.ConfigError(f"{cfg.out} ({source}) holds a run already; pass "
                                         f"--out NEW_FOLDER for this one{resume}")
    if not cfg.out:
        if distributed.launched():
            raise config_mod.ConfigError("under torchrun pass --out: every rank must name the "
                                         "same run folder")
        cfg.out = config_mod.default_out(command)
    args.resolved_out = cfg.out  # for the Ctrl-C hint
    return validate(cfg)


def _join_ranks(cfg: Config) -> None:
    """Under torchrun: join the process group (see depthnas.distributed)."""
    from . import distributed
    from .runtime import resolve_device
    distributed.init(resolve_device(cfg.device))
    if not distributed.is_main():
        # rank 0 reports. Every rank reads the same data under the same settings, so
        # the others' warnings are rank 0's again (one per rank, for each); they say
        # only what stops them, and what a rank reads on its own: the checkpoint it
        # resumes from (one it found damaged makes its weights differ from rank 0's)
        logging.getLogger().setLevel(logging.ERROR)
        logging.getLogger("depthnas.checkpoint").setLevel(logging.WARNING)


def fixed_shape_kernels() -> None:
    """Search and training run at one input size, so let cuDNN time its convolution
    algorithms once per shape and keep the fastest, as timm's and MiDaS' training
    scripts do. Only for these commands: evaluate/predict see images of many sizes,
    and each new size would pay the timing again."""
    import torch
    torch.backends.cudnn.benchmark = True


# ---- commands ---------------------------------------------------------------------
def check_model_builds(cfg: Config, space: Any) -> None:
    """Build the super-net on the meta device (no memory, no weights read): an unknown
    backbone or one without the strides the decoder needs fails here, before the run
    folder is written, not when the first landmark starts training."""
    import torch

    from .models import model_kwargs
    with torch.device("meta"):
        space.build_supernet(**dict(model_kwargs(cfg.model, space), backbone_weights=None))


def cmd_search(args: argparse.Namespace) -> int:
    from depthnas.spaces import get_space
    from . import distributed
    from .pipeline import run
    from .data import check_data_fits_space
    cfg = build_config(args)
    check_data_fits_space(cfg)
    check_model_builds(cfg, get_space(cfg.space))
    _join_ranks(cfg)
    fixed_shape_kernels()
    guard_out(Path(cfg.out), args.resume)
    with run_lock(Path(cfg.out)):
        clear_failed_start(Path(cfg.out), args.resume)
        distributed.barrier()  # every rank has checked before rank 0 writes config.yaml
        run(cfg, progress=show_progress(args.no_progress))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from depthnas.spaces import get_space
    from . import distributed
    from .data import check_data_fits_space, check_recorded_splits, load_splits
    from .models import is_classification
    from .recipe import recipe
    from .standalone import ARCH_FILE, other_training, train_standalone, trained_arch
    from .task import make_task
    cfg = build_config(args)
    arch_arg = args.arch or (trained_arch(cfg.out) if args.resume else None)
    if not arch_arg:
        raise config_mod.ConfigError("--arch is needed" + (
            f": {cfg.out} holds no checkpoint that names its architecture" if args.resume else ""))
    text, source = read_arch_arg(arch_arg)
    with naming_arch_file(source):
        cfg.space = space_of(text, explicit=args.space, default=cfg.space)
        space = get_space(cfg.space)
        arch = space.parse(text)
    validate(cfg)  # again: checked above for the preset's space, not --arch's
    check_data_fits_space(cfg)
    check_model_builds(cfg, space)
    out = Path(cfg.out)
    trained = trained_arch(out)
    if args.resume and trained is not None and trained != space.to_string(arch):
        raise config_mod.ConfigError(f"{out} holds a training of {trained}; --resume continues "
                                     "it, so --arch must name it (or choose another --out)")
    stale = other_training(out, space.to_string(arch), recipe(cfg)) if args.resume else []
    if stale:  # config.yaml edited since: the training would start over, its epochs lost
        raise config_mod.ConfigError(
            f"{out}'s training was made with other settings than its config.yaml now holds "
            f"({'; '.join(stale)}): --resume would train from scratch over it. Restore "
            "config.yaml, or start a new run in another --out")
    _join_ranks(cfg)
    fixed_shape_kernels()
    guard_out(out, args.resume)
    with run_lock(out):
        clear_failed_start(out, args.resume)
        distributed.barrier()
        if distributed.is_main():
            atomic_write_json(out / ARCH_FILE, space.to_json(arch))
            print(f"training {space.to_string(arch)} stand-alone; run folder {out}", flush=True)
        splits = load_splits(cfg)
        check_recorded_splits(splits, out / "splits.json")  # a resume: the same samples
        if distributed.is_main():  # as a search records them: which samples, what was skipped
            atomic_write_json(out / "splits.json", splits.manifest())
        result = train_standalone(cfg, space, arch, splits, out,
                                  progress=show_progress(args.no_progress), distributed=True)
    if distributed.is_main():
        score = make_task(space, cfg.standalone.loss).score_name
        print(f"{result['arch']}: validation {score} {result['val_loss']:.5f} "
              f"({result['params']:,} parameters) -> {out / 'model.safetensors'}")
        _warn_if_no_better_than_constant(result, classifies=is_classification(space),
                                         pretrained=cfg.model.backbone_weights is not None)
        from .evaluation import inverted_note, learned_nothing
        note = inverted_note(result.get("inverted"))
        if note and not learned_nothing(result["val_loss"], result.get("constant_prediction_loss")):
            print(f"warning: {note}", file=sys.stderr)
    return 0


def _warn_if_no_better_than_constant(result: dict, classifies: bool = False,
                                     pretrained: bool = False) -> None:
    base = result.get("constant_prediction_loss")
    from .evaluation import learned_nothing
    if not learned_nothing(result["val_loss"], base):
        return
    if classifies:
        print(f"warning: naming the most frequent class for every image scores {base:.5f}: this "
              "model learned (almost) nothing; try a lower --set standalone.lr=... or more "
              "--epochs", file=sys.stderr)
        return
    print(f"warning: a constant prediction scores {base:.5f}: this model learned (almost) "
          "nothing. An output of zeros everywhere means the head's final ReLU died; try a "
          "lower --set standalone.lr=... or more --epochs" +
          ("" if pretrained else ", or a pretrained backbone (--backbone-weights FILE)"),
          file=sys.stderr)


def cmd_data(args: argparse.Namespace) -> int:
    from depthnas.datasets.check import check_data
    from depthnas.datasets.classification import is_classification_spec
    if is_classification_spec(args.data):
        raise ValueError(f"{args.data} is classification data (labelled images), read as it "
                         "loads; `depthnas data` checks depth data sets (KIND:PATH)")
    check = check_data(args.data, args.depth_kind, progress=show_progress(args.no_progress))
    print("\n".join(check.lines()))
    if check.problems:
        print(f"{len(check.problems)} bad sample(s): fix them, or leave them out with --skip-bad",
              file=sys.stderr)
    return 1 if check.problems else 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from depthnas.spaces import get_space, list_spaces
    for name in list_spaces():
        print(get_space(name).describe())
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from .rank import rank_run
    report = rank_run(args.run, args.truth, threshold=args.threshold,
                      limit=args.limit, progress=show_progress(args.no_progress))
    for k, v in report.items():
        # the threshold is a loss difference, often below 1e-4: .4f printed 0.0000
        fmt = ".4g" if k == "sparse_threshold" else ".4f"
        print(f"{k:20s} {v:{fmt}}" if isinstance(v, float) else f"{k:20s} {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="depthnas", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "search", help="landmark-regularized architecture search",
        description="Landmark-regularized architecture search: train landmarks stand-alone, "
                    "train the super-net with their ranking penalty, search it, train the "
                    "top-K stand-alone; T times. Example: depthnas search --preset quick")
    add_config_args(s, "search")
    s.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its saved config.yaml (flags that "
                        "would change it are refused)")
    s.set_defaults(func=cmd_search)

    t = sub.add_parser(
        "train", help="train one architecture stand-alone",
        description="Train one architecture on its own. Example: depthnas train --arch "
                    "runs/quick-x/best_arch.json --preset quick --epochs 20")
    t.add_argument("--arch", help="architecture string, JSON, or a JSON file "
                                  "(with --resume: the folder's own, if left out)")
    add_config_args(t, "train")
    t.add_argument("--resume", action="store_true",
                   help="continue the training in --out with its saved config.yaml")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser(
        "data", help="read every sample of a data set: every bad one at once, and what training sees",
        description="Read every sample of a data set once: list every bad file at once (a run "
                    "stops at the first it meets), and show image sizes, valid pixels and the "
                    "depth range. Exit status 1 if any sample is bad. Example: depthnas data "
                    "--data folder:/data/mine")
    d.add_argument("--data", required=True, help="redweb:PATH | nyuv2:PATH | diode:PATH | folder:PATH")
    d.add_argument("--depth-kind", choices=("depth", "disparity"), default="depth",
                   help="what folder: depth files hold (default depth)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_data)

    sp = sub.add_parser("spaces", help="list the search spaces and their sizes")
    sp.set_defaults(func=cmd_spaces)

    r = sub.add_parser("rank", help="ranking metrics of a run's super-net against a truth table")
    r.add_argument("--run", required=True, help="search run directory")
    r.add_argument("--truth", required=True, help="JSON/CSV table: architecture -> stand-alone loss")
    r.add_argument("--threshold", type=float, default=None, help="sparse Kendall tau bin width")
    r.add_argument("--limit", type=int, default=None, help="score a random sample of at most this many architectures (seeded by the run's seed)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_rank)

    for register in _extensions():
        register(sub)
    for action in sub._choices_actions:  # `depthnas X --help` opens with what X does
        command = sub.choices[action.dest]
        command.description = command.description or action.help
    return p


def _extensions() -> list[Callable[[Any], None]]:
    """Commands that live beside their packages (evaluate, export, predict, demo)."""
    found = []
    for module, name in (("depthnas.evaluate", "register"), ("depthnas.export.cli", "register"),
                         ("depthnas.app.cli", "register")):
        try:
            mod = __import__(module, fromlist=[name])
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        found.append(getattr(mod, name))
    return found


class _PlainFormatter(logging.Formatter):
    """Log lines in the voice of the CLI's own output: information as plain text,
    anything else prefixed with its level, as in 'warning: ...'."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno == logging.INFO else f"{record.levelname.lower()}: {text}"


def _log_handler(verbose: bool) -> logging.Handler:
    """--verbose (debug) lines also name their logger."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s") if verbose
                         else _PlainFormatter("%(message)s"))
    return handler


def _plain_message(err: BaseException) -> str:
    """An error raised in a DataLoader worker arrives as "Caught DatasetError in
    DataLoader worker process 1. Original Traceback ...": 30 lines of the worker's
    stack around the one that names the bad file. Keep that one."""
    text = str(err)
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return text
    ends = list(re.finditer(rf"^(?:[\w.]+\.)?{re.escape(type(err).__name__)}: ", text, re.M))
    return text[ends[-1].end():].strip() if ends else text


def _resume_hint(args: argparse.Namespace) -> str:
    """How to continue a search or training stopped half-way ('' for other commands)."""
    out = getattr(args, "resolved_out", None) or getattr(args, "out", None)
    if args.command not in ("search", "train") or not out:
        return ""
    from . import distributed
    command = f"depthnas {args.command} --out {out} --resume"
    if distributed.launched():  # by torchrun: relaunch so
        per_node = os.environ.get("LOCAL_WORLD_SIZE") or os.environ["WORLD_SIZE"]
        return (f"continue with: torchrun --nproc_per_node {per_node} -m {command} (any "
                "number of processes resumes it)")
    return f"continue with: {command}"


def _fixed_then(args: argparse.Namespace, err: BaseException) -> str:
    """A bad sample met mid-run (the regularizer's split is first read after every
    landmark has trained): the work done is kept, so say how to go on once the file
    is fixed. Only for data errors, in a folder that holds work."""
    from depthnas.datasets.io import DatasetError
    hint = _resume_hint(args)
    out = getattr(args, "resolved_out", None)
    if not (isinstance(err, DatasetError) and hint and out and holds_run(out)):
        return ""
    return f"\nthe work done so far is kept; once the data is fixed, {hint}"


def _lost_peers(err: RuntimeError) -> str | None:
    """Under torchrun, a rank whose collective broke because another rank failed gets
    gloo's or NCCL's error ("Connection closed by peer"), a traceback of 35 lines
    after the other rank's own clear message. One line saying so, or None for an
    error that is not a lost peer."""
    import torch.distributed as tdist

    from . import distributed
    text = str(err)
    if not distributed.launched() or not (
            isinstance(err, getattr(tdist, "DistError", ())) or
            any(k in text for k in ("gloo", "NCCL", "Connection closed by peer"))):
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    waited = " (DEPTHNAS_DIST_TIMEOUT_S sets how long ranks wait)" if "imed out" in text else ""
    return (f"rank {os.environ.get('RANK', '?')}: the ranks lost contact ({first[:200]}){waited}; "
            "an error another rank printed above, if any, is the cause")


def _stopped_message(args: argparse.Namespace, stop: KeyboardInterrupt) -> str | None:
    """What a stopped search or training prints: once, by rank 0 under torchrun."""
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    hint = _resume_hint(args)
    said = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
    return f"\n{said}{'; ' + hint if hint else ''}"


def _stopped(args: argparse.Namespace, stop: KeyboardInterrupt) -> int:
    """Say that the run stopped, and how to go on; the exit code a shell reports."""
    message = _stopped_message(args, stop)
    if message is not None:
        print(message, file=sys.stderr)
    return 143 if isinstance(stop, Terminated) else 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's pre-emption, `timeout`, `docker stop`), stopping a run as
    Ctrl-C does: half-written files are removed and the resume command is printed."""


@contextlib.contextmanager
def _stop_on_sigterm(signalled: list[int]) -> Iterator[None]:
    """SIGTERM raises Terminated in the main thread. `timeout` or a scheduler signals
    the whole process group, loader workers too, and two of torch's hooks then got in
    the way: its SIGCHLD handler raised "worker killed by signal" over the stop (or
    as a traceback from the loader's __del__), and a SIGTERM landing in a fork hook
    was swallowed there. `signalled` records the signal, for an error that still
    comes of it; a swallowed stop is raised again by signalling once more."""
    timers: list[threading.Timer] = []

    def terminate(signum: int, frame: Any) -> None:
        signalled.append(signum)
        # left so: the loaders, freed after the stop, would raise it in __del__
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        raise Terminated

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, Terminated):  # later: at once, it lands here again
            timers.append(threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)))
            timers[-1].start()
        else:
            hook(info)

    hook = sys.unraisablehook
    term = signal.signal(signal.SIGTERM, terminate)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        for timer in timers:  # the run ended first: no signal after the handler is gone
            timer.cancel()
        signal.signal(signal.SIGTERM, term)
        sys.unraisablehook = hook


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        handlers=[_log_handler(args.verbose)])
    finished = False
    signalled: list[int] = []
    stoppable = args.command in ("search", "train") and threading.current_thread() is threading.main_thread()
    try:
        with _stop_on_sigterm(signalled) if stoppable else contextlib.nullcontext():
            code = args.func(args)
        finished = True
        return code
    except BrokenPipeError:  # `depthnas spaces | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes at exit
        hint = _resume_hint(args)
        if not hint:
            return 0  # a listing cut short is what `| head` asked for
        try:  # work stopped half-way: say how to go on
            print(f"output pipe closed; {hint}", file=sys.stderr)
        except OSError:
            pass
        return 141  # as a shell reports a process ended by SIGPIPE
    except (ValueError, OSError, FloatingPointError, config_mod.ConfigError) as err:
        # OSError: a path's fault; FloatingPointError: a training diverged
        if args.verbose:
            raise
        print(f"error: {_plain_message(err)}{_fixed_then(args, err)}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if signalled and not args.verbose:  # a loader worker's death, of the same SIGTERM
            return _stopped(args, Terminated())
        lost = _lost_peers(err)
        if lost is None or args.verbose:
            raise
        print(f"error: {lost}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        if args.verbose:
            raise
        return _stopped(args, stop)
    finally:
        joined = sys.modules.get("depthnas.distributed")
        if joined is not None:
            joined.cleanup(finished)  # leave torchrun's process group, if joined


if __name__ == "__main__":
    sys.exit(main())
