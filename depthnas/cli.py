"""`depthnas` command line: search, train, data, spaces, rank, evaluate, export, predict, demo."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from . import __version__
from . import config as config_mod
from .arch_arg import naming_arch_file, read_arch_arg, space_of
from .config import Config
from .config_checks import validate
from .exits import (fixed_then, log_handler, lost_peers, plain_message, resume_hint, say_once,
                    stopped)
from .io import atomic_write_json, path_arg
from .launch_env import env_rank, launched
from .out_of_memory import OutOfMemory
from .run_config import add_config_args, build_config
from .runs import claim_folder, run_folder
from .stopping import Terminated, stop_on_signals
from .terminal import show_progress


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
    """Build the super-net on the meta device (no memory): an unknown backbone or one
    without the strides the decoder needs fails here, before the run folder is
    written, not when the first landmark starts training. A backbone weights file is
    read once here, for the same reason."""
    import torch

    from .models import model_kwargs
    with torch.device("meta"):
        space.build_supernet(**dict(model_kwargs(cfg.model, space), backbone_weights=None))
    if cfg.model.backbone_weights:  # a file of another model: said before "run folder ..."
        from depthnas.spaces.depth import create_backbone
        create_backbone(cfg.model.backbone, cfg.model.backbone_weights)


def _check_out_under_torchrun(args: argparse.Namespace) -> None:
    """Said before the model checks: without --out every rank would claim a folder of
    its own, named by the clock."""
    if getattr(args, "fresh_out", False) and launched():
        raise config_mod.ConfigError("under torchrun pass --out: every rank must name the same "
                                     "run folder")


def _claim_fresh_out(cfg: Config, args: argparse.Namespace) -> Path | None:
    """A run folder named by the clock (no --out) is made now, under the first free
    name: runs started in the same second each get their own. Returns the outermost
    folder made for it (None: the user named the folder)."""
    if not getattr(args, "fresh_out", False):
        return None
    folder, made_from = claim_folder(Path(cfg.out))
    cfg.out = args.resolved_out = str(folder)
    return made_from


def _space_chosen_by(args: argparse.Namespace, space: str) -> str | None:
    """The option that set the space, as a message names it, or None. A space set by
    --space, --set or --config (a run's config.yaml reused) is one the user chose: an
    --arch of another space is refused, not followed."""
    if args.space:
        return f"--space {space}"
    if "space" in config_mod.assigned_fields(args.set or []):
        return f"--set space={space}"
    if args.config and "space" in config_mod.named_fields(args.config, None):
        return f"--config {args.config}: space {space}"
    return None


@contextlib.contextmanager
def _run_folder(cfg: Config, args: argparse.Namespace) -> Iterator[Path]:
    """Search's and train's start, once every check has passed: join the ranks, claim
    the run folder and hold its lock while the work runs in it."""
    _join_ranks(cfg)
    fixed_shape_kernels()
    made_from = _claim_fresh_out(cfg, args)
    with run_folder(Path(cfg.out), args.resume, made_from=made_from, config=args.config) as out:
        yield out


def cmd_search(args: argparse.Namespace) -> int:
    cfg = build_config(args)  # checked before torch loads: a refused config is said at once
    from depthnas.spaces import get_space
    from .pipeline import SearchRun
    _check_out_under_torchrun(args)
    check_model_builds(cfg, get_space(cfg.space))
    with _run_folder(cfg, args):  # pipeline.run's folder handling, after the CLI's checks
        SearchRun(cfg, progress=show_progress(args.no_progress)).run()
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .runs import ARCH_FILE
    cfg, space, arch = _training_config(args)
    from . import distributed
    from .data import check_recorded_splits, load_splits, warn_unused_settings
    from .recipe import recipe
    from .standalone import finished_training, train_standalone
    arch_string = space.to_string(arch)
    _check_out_under_torchrun(args)
    check_model_builds(cfg, space)
    _refuse_another_training(args, cfg, arch_string)
    with _run_folder(cfg, args) as out:
        if distributed.is_main():
            atomic_write_json(out / ARCH_FILE, space.to_json(arch))
        warn_unused_settings(cfg)
        splits = load_splits(cfg)
        check_recorded_splits(splits, out / "splits.json")  # a resume: the same samples
        if distributed.is_main():  # as a search records them: which samples, what was skipped
            atomic_write_json(out / "splits.json", splits.manifest())
            # said once the data is there: a refused start's folder is removed
            if args.resume and finished_training(out, arch_string, recipe(cfg)):
                print(f"{arch_string} finished its training in {out} already: "
                      "its result, not trained again", flush=True)
            else:
                print(f"training {arch_string} stand-alone; run folder {out}", flush=True)
        result = train_standalone(cfg, space, arch, splits, out,
                                  progress=show_progress(args.no_progress), distributed=True)
    if distributed.is_main():
        _say_trained(result, cfg, space, out)
    return 0


def _training_config(args: argparse.Namespace) -> tuple[Config, Any, Any]:
    """The config, space and architecture of a `depthnas train`. The config is checked
    for the space the training uses, before torch loads: the one the user set (--space,
    --set, --config), else the one --arch names (checked for the preset's, an nb201
    training's own loss or data was refused)."""
    from depthnas.spaces import get_space
    from .runs import trained_arch
    cfg = build_config(args, check=False)
    arch_arg = args.arch or (trained_arch(cfg.out) if args.resume else None)
    named_by = _space_chosen_by(args, cfg.space)
    if named_by or not arch_arg:
        validate(cfg)
    if not arch_arg:
        raise config_mod.ConfigError("--arch is needed" + (
            f": {cfg.out} holds no checkpoint that names its architecture" if args.resume else ""))
    text, source = read_arch_arg(arch_arg)
    with naming_arch_file(source):
        cfg.space = space_of(text, explicit=cfg.space if named_by else None, default=cfg.space,
                             named_by=named_by)
        space = get_space(cfg.space)
        arch = space.parse(text)
    if not named_by:
        validate(cfg)
    return cfg, space, arch


def _refuse_another_training(args: argparse.Namespace, cfg: Config, arch: str) -> None:
    """A --resume continues the training its folder holds, under the settings it began
    with: another architecture, or a config.yaml edited since, would train from scratch
    over it, its epochs lost."""
    from .recipe import recipe
    from .runs import trained_arch
    from .standalone import training_changes
    out = Path(cfg.out)
    trained = trained_arch(out)
    if args.resume and trained is not None and trained != arch:
        raise config_mod.ConfigError(f"{out} holds a training of {trained}; --resume continues "
                                     "it, so --arch must name it (or choose another --out)")
    stale = training_changes(out, arch, recipe(cfg)) if args.resume else []
    if stale:
        raise config_mod.ConfigError(
            f"{out}'s training was made with other settings than its config.yaml now holds "
            f"({'; '.join(stale)}): --resume would train from scratch over it. Restore "
            "config.yaml, or start a new run in another --out")


def _say_trained(result: dict[str, Any], cfg: Config, space: Any, out: Path) -> None:
    from .degenerate import inverted_note, learned_nothing
    from .models import is_classification
    from .task import make_task
    score = make_task(space, cfg.standalone.loss).score_name
    print(f"{result['arch']}: validation {score} {result['val_loss']:.5f} "
          f"({result['params']:,} parameters) -> {out / 'model.safetensors'}")
    _warn_if_no_better_than_constant(result, classifies=is_classification(space),
                                     pretrained=cfg.model.backbone_weights is not None)
    note = inverted_note(result.get("inverted"))
    if note and not learned_nothing(result["val_loss"], result.get("constant_prediction_loss")):
        print(f"warning: {note}", file=sys.stderr)


def _warn_if_no_better_than_constant(result: dict, classifies: bool = False,
                                     pretrained: bool = False) -> None:
    base = result.get("constant_prediction_loss")
    from .degenerate import learned_nothing
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
    from depthnas.datasets.spec import data_path_problem, is_classification_spec, parse_spec
    if is_classification_spec(args.data):
        raise ValueError(f"{args.data} is classification data (labelled images), read as it "
                         "loads; `depthnas data` checks depth data sets (KIND:PATH)")
    parse_spec(args.data, args.depth_kind)  # before the loaders' seconds of imports
    if problem := data_path_problem(args.data):
        raise FileNotFoundError(f"--data {args.data}: {problem}")
    from depthnas.datasets.check import check_data
    defaults = config_mod.DataConfig()  # the split a run would make, at its default fractions
    check = check_data(args.data, args.depth_kind, progress=show_progress(args.no_progress),
                       val_fraction=defaults.val_fraction, reg_fraction=defaults.reg_fraction)
    print("\n".join(check.lines()))
    if check.problems:
        print(f"{len(check.problems)} bad sample(s): fix them, or leave them out of a run with "
              "--skip-bad (search, train, evaluate)", file=sys.stderr)
    return 0 if check.usable else 1


def cmd_spaces(args: argparse.Namespace) -> int:
    from depthnas.spaces import get_space, list_spaces
    for name in list_spaces():
        print(get_space(name).describe())
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from .rank_plan import plan_rank
    plan = plan_rank(args.run, args.truth, threshold=args.threshold, limit=args.limit, out=args.out)
    from .rank import score_plan  # torch: after the run and the table are checked
    report = score_plan(plan, progress=show_progress(args.no_progress), device=args.device)
    written = report.pop("written_to")
    for k, v in report.items():
        # the threshold is a loss difference, often below 1e-4: .4f printed 0.0000
        fmt = ".4g" if k == "sparse_threshold" else ".4f"
        print(f"{k:20s} {v:{fmt}}" if isinstance(v, float) else f"{k:20s} {v}")
    print(f"wrote {written}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="depthnas", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--version", action="version", version=f"depthnas {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "search", help="landmark-regularized architecture search",
        description="Landmark-regularized architecture search: train landmarks stand-alone, "
                    "train the super-net with their ranking penalty, search it, train the "
                    "top-K stand-alone; T times. Example: depthnas search --preset quick")
    add_config_args(s, "search")
    s.set_defaults(func=cmd_search)

    t = sub.add_parser(
        "train", help="train one architecture stand-alone",
        description="Train one architecture on its own. Example: depthnas train --arch "
                    "runs/search-20261130-101500/best_arch.json --preset quick --epochs 20")
    t.add_argument("--arch", help="architecture string, JSON, or a JSON file "
                                  "(with --resume: the folder's own, if left out)")
    add_config_args(t, "train")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser(
        "data", help="read every sample of a data set: every bad one at once, and what training sees",
        description="Read every sample of a data set once: list every bad file at once (a run "
                    "stops at the first it meets), and show image sizes, valid pixels and the "
                    "depth range. Exit status 1 if any sample is bad, or too few to split for a "
                    "run. Example: depthnas data "
                    "--data folder:/data/mine")
    d.add_argument("--data", required=True, help="redweb:PATH | nyuv2:PATH | diode:PATH | folder:PATH")
    d.add_argument("--depth-kind", choices=("depth", "disparity"), default="depth",
                   help="what folder: depth files hold (default depth)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_data)

    sp = sub.add_parser("spaces", help="list the search spaces and their sizes")
    sp.set_defaults(func=cmd_spaces)

    r = sub.add_parser("rank", help="ranking metrics of a run's super-net against a truth table")
    r.add_argument("--run", required=True, type=path_arg, help="search run directory")
    r.add_argument("--truth", required=True, type=path_arg, help="JSON/CSV table: architecture -> stand-alone loss")
    r.add_argument("--threshold", type=float, default=None, help="sparse Kendall tau bin width (default: the run's search.sparse_threshold, "
                        "else the table's seed noise, else 1%% of its range)")
    r.add_argument("--limit", type=int, default=None, help="score a random sample of at most this many architectures (seeded by the run's seed)")
    r.add_argument("--device", default="auto", help="where to score: auto (default), cpu, cuda or cuda:N")
    r.add_argument("--out", type=path_arg, default=None, help="report file (default RUN/rank.json)")
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
    from depthnas.app import cli as demo_cli
    from depthnas.export import cli as export_cli

    from . import evaluate_cli
    return [evaluate_cli.register, export_cli.register, demo_cli.register]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # A file name that is not UTF-8 reaches Python with surrogate escapes, on which a
    # strict UTF-8 stdout would raise UnicodeEncodeError mid-report. Its bytes go out as stored.
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        handlers=[log_handler(args.verbose)])
    finished = False
    signalled: list[int] = []
    stoppable = args.command in ("search", "train") and threading.current_thread() is threading.main_thread()
    try:
        with stop_on_signals(signalled) if stoppable else contextlib.nullcontext():
            code = args.func(args)
        finished = True
        return code
    except BrokenPipeError:  # `depthnas spaces | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes at exit
        hint = resume_hint(args)
        if not hint:
            return 0  # a listing cut short is what `| head` asked for
        try:  # work stopped half-way: say how to go on
            print(f"output pipe closed; {hint}", file=sys.stderr)
        except OSError:
            pass
        return 141  # as a shell reports a process ended by SIGPIPE
    except (ValueError, OSError, FloatingPointError, OutOfMemory, config_mod.ConfigError) as err:
        # OSError: a path's fault; FloatingPointError: a training diverged; OutOfMemory:
        # a size to ask smaller (predict's --net-size)
        if args.verbose:
            raise
        say_once(f"error: {plain_message(err)}{fixed_then(args, err)}")
        return 2
    except RuntimeError as err:
        if signalled and not args.verbose:  # a loader worker's death, of the same stop
            return stopped(args, Terminated() if signalled[0] == signal.SIGTERM else KeyboardInterrupt())
        lost = lost_peers(err)
        if lost is None or args.verbose:
            raise
        print(f"error: {lost}", file=sys.stderr)
        hint = resume_hint(args) if env_rank() == 0 else ""
        if hint:  # the work kept is the same as after a Ctrl-C
            print(hint, file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        if args.verbose:
            raise
        return stopped(args, stop)
    finally:
        joined = sys.modules.get("depthnas.distributed")
        if joined is not None:
            joined.cleanup(finished)  # leave torchrun's process group, if joined


def console() -> None:
    """The `depthnas` command. After a stop the process is ending, and a second
    Ctrl-C is ignored from then on: while Python shuts down (in torch's exit hooks)
    it would print a traceback under the resume hint."""
    code = main()
    if code in (130, 143):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    console()
