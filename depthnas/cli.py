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
from typing import Any, Callable

from depthnas.datasets.settings import DEPTH_KINDS

from . import __version__, train_cli
from . import config as config_mod
from .exits import (fixed_then, log_handler, lost_peers, plain_message, resume_hint, say_once,
                    stopped)
from .io import path_arg
from .launch_env import env_rank, launched
from .unknown_options import check_unknown_options, stray_arguments
from .out_of_memory import OutOfMemory
from .run_config import add_config_args, build_config, print_config
from .run_start import check_model_builds, check_out_under_torchrun, start_run
from .stopping import Terminated, stop_on_signals
from .terminal import figure, show_progress


# ---- commands ---------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    cfg = build_config(args)  # checked before torch loads: a refused config is said at once
    if args.print_config:
        print_config(cfg, args)
        return 0
    from depthnas.spaces import get_space
    from .pipeline import SearchRun, search_finished
    check_out_under_torchrun(args)
    check_model_builds(cfg, get_space(cfg.space))
    # a finished search resumed replays its log: a reader leaving then stops nothing
    args.work_finished = args.resume and search_finished(Path(cfg.out))
    with start_run(cfg, args):  # pipeline.run's folder handling, after the CLI's checks
        SearchRun(cfg, progress=show_progress(args.no_progress)).run()
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from depthnas.datasets.spec import data_path_problem, is_classification_spec, parse_spec
    if is_classification_spec(args.data):
        raise ValueError(f"{args.data} is classification data (labelled images), read as it "
                         "loads; `depthnas data` checks depth data sets (KIND:PATH)")
    parse_spec(args.data, args.depth_kind)  # before the loaders' seconds of imports
    if args.batch_size < 1:
        raise config_mod.ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0 <= args.seed < 2**32:  # said before every file is read, as a run's config check says it
        raise config_mod.ConfigError(f"--seed must be 0 to 2**32 - 1, got {args.seed}")
    if problem := data_path_problem(args.data):
        raise FileNotFoundError(f"--data {args.data}: {problem}")
    from depthnas.datasets.check import check_data
    defaults = config_mod.DataConfig()  # the split a run would make, at its default fractions
    check = check_data(args.data, args.depth_kind, progress=show_progress(args.no_progress),
                       val_fraction=defaults.val_fraction, reg_fraction=defaults.reg_fraction,
                       batch_size=args.batch_size, seed=args.seed)
    # the status is the check's, decided now: a reader leaving the listing early
    # (`| head`) must not turn a data set with bad samples into a success
    args.exit_status = 0 if check.usable else 1
    print("\n".join(check.lines()))
    if check.problems:
        print(f"{len(check.problems)} bad sample(s): fix them, or leave them out of a run with "
              "--skip-bad (search, train, evaluate)", file=sys.stderr)
    return args.exit_status


def cmd_spaces(args: argparse.Namespace) -> int:
    from depthnas.spaces import SpaceLoadError, get_space, list_spaces
    broken = 0
    for name in list_spaces():
        try:
            print(get_space(name).describe())
        except SpaceLoadError as err:  # the others are still listed
            print(f"{name:12s} does not load: {err}", file=sys.stderr)
            broken += 1
    return 1 if broken else 0


def cmd_rank(args: argparse.Namespace) -> int:
    from .rank_plan import plan_rank
    plan = plan_rank(args.run, args.truth, threshold=args.threshold, limit=args.limit, out=args.out)
    from .rank import score_plan  # torch: after the run and the table are checked
    report = score_plan(plan, progress=show_progress(args.no_progress), device=args.device)
    written = report.pop("written_to")
    for k, v in report.items():
        # the threshold is a loss difference, often below 1e-4: .4f printed 0.0000;
        # the percentile as the report gives it, and a level as the warnings do
        fmt, unit = {"sparse_threshold": (".4g", ""), "top_percentile": (".0f", "%"),
                     "constant_level": (".5f", "")}.get(k, (".4f", ""))
        print(f"{k:20s} {figure(v, fmt, unit)}" if isinstance(v, float) else f"{k:20s} {v}")
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

    train_cli.register(sub)

    d = sub.add_parser(
        "data", help="read every sample of a data set: every bad one at once, and what training sees",
        description="Read every sample of a data set once: list every bad file at once (a run "
                    "stops at the first it meets), and show image sizes, valid pixels and the "
                    "depth range. Exit status 1 if any sample is bad, or too few to split for a "
                    "run and leave training a batch. Example: depthnas data "
                    "--data folder:/data/mine")
    d.add_argument("--data", required=True, help="redweb:PATH | nyuv2:PATH | diode:PATH | folder:PATH")
    d.add_argument("--depth-kind", choices=DEPTH_KINDS, default="depth",
                   help="what folder: depth files hold (default depth)")
    d.add_argument("--batch-size", type=config_mod.whole_number,
                   default=config_mod.DataConfig().batch_size,
                   help="the batch size the run will use, for whether its training split holds "
                        "one (default %(default)s, a run's)")
    d.add_argument("--seed", type=config_mod.whole_number, default=config_mod.Config().seed,
                   help="the run's seed, which shuffles the scenes into the splits (default "
                        "%(default)s, a run's)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_data)

    sp = sub.add_parser("spaces", help="list the search spaces and their sizes")
    sp.set_defaults(func=cmd_spaces)

    r = sub.add_parser("rank", help="ranking metrics of a run's super-net against a truth table")
    r.add_argument("--run", required=True, type=path_arg, help="search run directory")
    r.add_argument("--truth", required=True, type=path_arg, help="JSON/CSV table: architecture -> stand-alone loss (or "
                        "'accuracy' in percent)")
    r.add_argument("--threshold", type=float, default=None, help="sparse Kendall tau bin width (default: the run's search.sparse_threshold, "
                        "else the table's seed noise, else 1%% of the range of its usable rows)")
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
    """The command line's exit status for `argv` (None: sys.argv[1:]); a script's
    `main(["search", ...])` gets a status for a usage error or --help too, as for
    any other end, where argparse would end the script."""
    if isinstance(argv, str):  # its characters would be read as arguments
        raise TypeError(f"main takes the arguments as a list, not one string: "
                        f"main({argv.split()!r}) (shlex.split(line) splits a command line)")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # A file name that is not UTF-8 reaches Python with surrogate escapes, on which a
    # strict UTF-8 stdout would raise UnicodeEncodeError mid-report. Its bytes go out as stored.
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        parser = build_parser()
        given = sys.argv[1:] if argv is None else list(argv)
        check_unknown_options(parser, given)
        args, extra = parser.parse_known_args(given)
        if extra:  # a stray word: said with the command's usage, not the top-level one
            stray_arguments(parser, args.command, given, extra)
    except SystemExit as done:  # --help, --version, or a usage error argparse has said
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 2
    # As logging.basicConfig would (nothing, where the caller has set logging up), and
    # undone on return: a script calling main() kept INFO logging of everything after.
    # Under torchrun rank 0 reports from the start: the checks before the ranks join
    # (unused settings, --compile without a backbone) were said once per rank.
    try:
        rank = env_rank()
        launched()
    except ValueError as err:  # RANK=x or WORLD_SIZE=x: said before anything is set up
        print(f"error: {err}", file=sys.stderr)
        return 2
    root = logging.getLogger()
    level, ours = root.level, None if root.handlers else log_handler(args.verbose)
    if ours is not None:
        root.addHandler(ours)
        root.setLevel(logging.DEBUG if args.verbose else
                      logging.INFO if rank == 0 else logging.ERROR)
    # a process group the caller joined is the caller's to leave (a script under
    # torchrun that calls main() and then goes on with its own collectives)
    group = sys.modules.get("torch.distributed")
    callers_group = group is not None and group.is_available() and group.is_initialized()
    finished = False
    signalled: list[int] = []
    stoppable = args.command in ("search", "train") and threading.current_thread() is threading.main_thread()
    try:
        if launched() and args.command not in ("search", "train", "spaces"):  # each rank did all
            raise ValueError(f"depthnas {args.command} runs in one process (search and train run "
                             f"on several), and WORLD_SIZE={os.environ['WORLD_SIZE']} is set, as "
                             "torchrun sets it: start it without torchrun, or unset WORLD_SIZE")
        with stop_on_signals(signalled) if stoppable else contextlib.nullcontext():
            code = args.func(args)
        finished = True
        return code
    except BrokenPipeError:  # `depthnas spaces | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes at exit
        hint = resume_hint(args)
        if not hint:  # a listing cut short is what `| head` asked for
            return getattr(args, "exit_status", 0)
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
        hint = resume_hint(args) if rank == 0 else ""
        if hint:  # the work kept is the same as after a Ctrl-C
            print(hint, file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        if args.verbose:
            raise
        return stopped(args, stop)
    finally:
        joined = sys.modules.get("depthnas.distributed")
        if joined is not None and not callers_group:
            joined.cleanup(finished)  # leave torchrun's process group, if this call joined it
        if ours is not None:
            root.removeHandler(ours)
            root.setLevel(level)


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
