"""From a command line to the run's Config: flags, --config, --preset and --set in
their order, and for --resume the run's own config.yaml, which a command may only
repeat (or change where and how fast the run goes)."""
from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import os
import shlex
from pathlib import Path
from typing import Any

from depthnas.datasets.spec import split_spec

from . import config as config_mod
from .config import Config
from .config_checks import validate
from .exits import result_stamp
from .io import check_parent_folders, path_arg
from .runs import check_kind, check_resumable, holds_run, run_kind
from .schedule import SCHEDULES

log = logging.getLogger(__name__)

# flag -> (config path, type, help); "--precision" sets every training the command runs
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
    "--depth-kind": ("data.depth_kind", str, "what folder: depth files hold: depth (default; "
                                             "PNG in mm, npy/pfm in m) | disparity"),
}
SEARCH_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--epochs": ("supernet.epochs", config_mod.whole_number, "super-net epochs per iteration"),
    "--standalone-epochs": ("standalone.epochs", config_mod.whole_number, "epochs of each stand-alone training"),
    "--iterations": ("search.iterations", config_mod.whole_number, "T: search iterations"),
    "--top-k": ("search.top_k", config_mod.whole_number, "architectures trained stand-alone per iteration"),
    "--method": ("search.method", str, "evolution | random"),
    "--landmarks": ("landmarks.store", str, "landmark store JSON to reuse and extend"),
    "--num-landmarks": ("landmarks.num", config_mod.whole_number, "M: landmarks in the first iteration"),
    "--lambda-max": ("landmarks.lambda_max", float, "peak landmark weight (the final one of the increasing schedules)"),
    "--schedule": ("landmarks.schedule", str, "lambda schedule (default cosine-increasing): "
                   + ", ".join(SCHEDULES) + "; the non-increasing ones start at --lambda-max "
                   "unless landmarks.ramp_epochs ramps them (--preset paper: 10)"),
    "--pairs": ("landmarks.pairs", config_mod.whole_number, "m: landmark pairs per step (0 = all)"),
    "--max-params": ("search.max_params", config_mod.whole_number,
                     "parameter budget for searched models (e.g. 3e7)"),
}
TRAIN_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--epochs": ("standalone.epochs", config_mod.whole_number, "training epochs"),
}


def config_flags(command: str) -> dict[str, tuple[str, Any, str]]:
    return {**COMMON_FLAGS, **(SEARCH_FLAGS if command == "search" else TRAIN_FLAGS)}


class _Once(argparse.Action):
    """A flag naming the one thing a run reads or writes (its config file, preset, run
    folder): given twice, argparse kept the last and dropped the first unsaid."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        earlier = getattr(namespace, self.dest, None)
        if earlier is not None:
            more = ("; settings of a second file go in the first, or as --set"
                    if option_string == "--config" else "")
            parser.error(f"{option_string} given twice ({earlier}, {values}): a run takes one{more}")
        setattr(namespace, self.dest, values)


def add_config_args(p: argparse.ArgumentParser, command: str) -> None:
    p.set_defaults(config_command=command)
    # --help lists the flags by the config section they set
    groups = {title: p.add_argument_group(title) for title in
              ("configuration", "run", "data", "model", "training", "search", "landmarks")}
    section = {"data": "data", "model": "model", "supernet": "training", "standalone": "training",
               "search": "search", "landmarks": "landmarks"}
    config = groups["configuration"]
    config.add_argument("--config", type=path_arg, action=_Once,
                        help="YAML config file (overrides the preset)")
    config.add_argument("--preset", choices=sorted(config_mod.PRESETS), action=_Once,
                        help="starting configuration")
    config.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any config field, e.g. --set data.num_workers=4" +
                             (" --set search.generations=10" if command == "search" else ""))
    config.add_argument("--print-config", action="store_true",
                        help="print the settings this command would run with (YAML, every "
                             "field: a --config file to edit) and exit")
    for flag, (path, typ, help_) in config_flags(command).items():
        title = "training" if flag == "--precision" else section.get(path.split(".")[0], "run")
        groups[title].add_argument(flag, type=typ, default=None, help=help_,
                                   action=_Once if flag == "--out" else None)
    groups["run"].add_argument("--resume", action="store_true", help=(
        "continue the run in --out with its saved config.yaml (flags that would change it "
        "are refused)" if command == "search" else
        "continue the training in --out with its saved config.yaml"))
    if command == "search":
        groups["landmarks"].add_argument("--no-landmarks", action="store_true",
                                         help="plain SPOS (same total epochs)")
    groups["training"].add_argument("--channels-last", action="store_true",
                                    help="channels-last memory format")
    groups["training"].add_argument("--compile", action="store_true",
                                    help="torch.compile the backbone (first steps are slower while it compiles)")
    groups["data"].add_argument("--skip-bad", action="store_true",
                                help="skip unreadable samples (counted in the log)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _given(args: argparse.Namespace, flag: str) -> Any:
    """The value a config flag was given on the command line (None: not given)."""
    return getattr(args, flag.lstrip("-").replace("-", "_"))


def _updates(args: argparse.Namespace, command: str) -> list[config_mod.Assignment]:
    """The assignments the command line asks for: flags' values as typed, then --set's
    `section.field=value` (read as YAML), which may override them."""
    updates: list[config_mod.Assignment] = []
    for flag, (path, _, _) in config_flags(command).items():
        value = _given(args, flag)
        if value is None:
            continue
        if flag == "--precision":  # a training has no super-net to set (nor to name)
            updates += [("standalone.precision", value)] if command == "train" else \
                [("supernet.precision", value), ("standalone.precision", value)]
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
        return split_spec(value)[1] if k == "data.spec" else value

    for k in changed:
        if k not in ("data.spec", "model.backbone_weights") or (k == "data.spec" and split_spec(
                str(before[k]))[0] != split_spec(str(after[k]))[0]):
            continue  # another kind of data set is not a move
        old, new = path(k, before[k]), path(k, after[k])
        if old and new and not Path(old).exists() and Path(new).exists():
            return (f". If {old} moved to {new}, link the old path to it (ln -s "
                    f"{shlex.quote(str(Path(new).resolve()))} {shlex.quote(str(old))}) and resume "
                    "without the flag: the run's "
                    "results are recorded under the old path")
    return ""


def _skip_bad_hint(changed: list[str], saved: Path) -> str:
    """--skip-bad, the advice of a bad sample's error, redraws the splits without it:
    no run can take it up part-way, but a start that trained nothing can start over."""
    if "data.skip_bad" not in changed:
        return ""
    return (". --skip-bad changes which samples the splits hold, so it is set when a run "
            "starts: " + (f"nothing has trained in {saved.parent} yet, so run the first "
                          "command again there with --skip-bad and without --resume"
                          if not holds_run(saved.parent) else
                          "start a new run with it in another --out"))


def _check_paths_remain(cfg: Config, saved: Path) -> None:
    """A resumed run reads its data and weights where it first found them; gone from
    there, say so before anything starts, with the way to resume (not only the
    loader's "folder not found" after the run has begun)."""
    gone = []
    data, weights = split_spec(cfg.data.spec)[1], cfg.model.backbone_weights
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


def _run_holding(config: str | None, out: str) -> str | None:
    """The run folder a --config file is the record of: a config.yaml in a run whose
    `out` still names that run (by its last part: it may be relative to where the run
    was started, and from another folder it named a new, empty one there). An `out`
    edited to name another folder is the user's choice."""
    if config is None or not out or Path(out).name != Path(config).parent.name:
        return None
    folder = Path(config).parent
    return str(folder) if holds_run(folder) else None


def _resumed(saved: Path, updates: list[config_mod.Assignment], args: argparse.Namespace) -> Config:
    """A resumed run's own config.yaml. Flags, --preset and --config may repeat it
    (the first command rerun with --resume), not change it; only where and how fast
    it runs (config_mod.RESUME_MAY_CHANGE) may differ."""
    cfg = config_mod.load(saved, complete=True)
    # paths compared as absolute ones: the first command repeated (--data data/x) names
    # the same data as the run's record of it; the record itself is left as it is (an
    # older run's relative path is in its stand-alone results' recipes)
    before = config_mod.dotted_fields(config_mod.absolute_paths(copy.deepcopy(cfg)))
    given = config_mod.load(args.config, args.preset)  # what the command asks for, checked
    after = config_mod.dotted_fields(config_mod.absolute_paths(config_mod.apply_dotted(given, updates)))
    flagged = config_mod.assigned_fields(updates)
    named = (config_mod.named_fields(args.config, args.preset) | flagged) & set(after)
    changed = [k for k in sorted(named) if after[k] != before[k] and k not in config_mod.RESUME_MAY_CHANGE]
    if changed:
        source = " / ".join(f for f, on in ((f"--preset {args.preset}", args.preset),
                                            (f"--config {args.config}", args.config)) if on)

        def said_by(k: str) -> str:
            return "" if k in flagged else f" (by {source})"
        diff = "; ".join(f"{k}: saved {before[k]!r}, given {after[k]!r}{said_by(k)}"
                         for k in changed)
        # A preset's values may change between depthnas versions (the quick preset's
        # supernet.grad_clip did): the first command repeated then names them.
        preset_only = args.preset and not args.config and not any(k in flagged for k in changed)
        hint = (f" (--preset {args.preset}'s values may differ from those of the depthnas that "
                f"started this run: `depthnas {args.config_command} --out {shlex.quote(args.out)} --resume` "
                "continues it as saved)") if preset_only else ""
        raise config_mod.ConfigError(
            f"--resume continues the run with its own {saved}, which holds every setting, and "
            f"these differ from it: {diff}. Drop them to continue{hint}, or start a new run in "
            f"another --out{_moved_hint(changed, before, after)}{_skip_bad_hint(changed, saved)}")
    allowed = {k: after[k] for k in named & config_mod.RESUME_MAY_CHANGE}  # device, workers, ...
    return config_mod.apply(cfg, config_mod.unflatten(allowed))


# what a command never reads: a stand-alone training has no super-net, search or landmarks
_UNREAD = {"train": ("supernet.", "search.", "landmarks.")}
# (not --landmarks: a SPOS run keeps its stand-alone results in that store too)
_LANDMARK_FLAGS = ("--num-landmarks", "--schedule", "--lambda-max", "--pairs")


def _warn_unread(args: argparse.Namespace, command: str) -> None:
    """Settings the command line gives that this command does nothing with: said, as
    a run takes them (and records them) without a word otherwise."""
    unread = sorted(k for k in config_mod.assigned_fields(list(args.set))
                    if k.startswith(_UNREAD.get(command, ())))
    if unread:
        log.warning("--set %s: `depthnas %s` does nothing with %s (recorded and checked all "
                    "the same)", ", ".join(unread), command, "them" if len(unread) > 1 else "it")
    if getattr(args, "no_landmarks", False):
        given = [f for f in _LANDMARK_FLAGS if _given(args, f) is not None]
        if given:
            log.warning("--no-landmarks runs plain SPOS: %s do%s nothing", ", ".join(given),
                        "es" if len(given) == 1 else "")


class _Reads:
    """A ModelConfig that notes the fields asked of it."""

    def __init__(self, model: Any) -> None:
        self._model, self.fields = model, set()

    def __getattr__(self, name: str) -> Any:
        self.fields.add(name)
        return getattr(self._model, name)


def _fields_read(space: Any, model: Any) -> set[str]:
    """The ModelConfig fields `space.model_kwargs` asks for by name, however it uses
    them (nested, compared, converted); none if it needs the dataclass itself (asdict,
    replace, vars), which `_changes_kwargs` sees instead."""
    reads = _Reads(model)
    try:
        space.model_kwargs(reads)
    except Exception:  # noqa: BLE001 - the dataclass itself was needed
        return set()
    return reads.fields


def _changes_kwargs(space: Any, model: Any, field: str) -> bool:
    """Whether another value of `field` changes what `model_kwargs` gives."""
    probe = dataclasses.replace(model, **{field.split(".")[1]: object()})
    try:
        return bool(space.model_kwargs(probe) != space.model_kwargs(model))
    except Exception:  # noqa: BLE001 - a space that computes with the value reads it
        return True


def warn_unread_by_space(args: argparse.Namespace, command: str, cfg: Config) -> None:
    """Model and data settings given on the command line that the space's models or
    the data never read: --backbone, --features or --image-size for a classification
    space trained as if they were not there, unsaid (--backbone-weights is refused)."""
    from depthnas.spaces import get_space
    given = set(config_mod.assigned_fields(list(args.set)))
    given |= {path for flag, (path, _, _) in config_flags(command).items()
              if path and _given(args, flag) is not None}
    space = get_space(cfg.space)
    read = _fields_read(space, cfg.model)
    unread = sorted(f for f in given if f.startswith("model.") and f != "model.backbone_weights"
                    and f.split(".")[1] not in read and not _changes_kwargs(space, cfg.model, f))
    if space.task_kind == "classification":  # images of the data's own size, no depth
        unread += sorted(given & {"data.image_size", "data.synthetic_samples", "data.depth_kind"})
    elif "data.synthetic_samples" in given and split_spec(cfg.data.spec)[0] != "synthetic":
        unread.append("data.synthetic_samples")
    if unread:
        log.warning("%s: space %s with data %s does not read %s (recorded all the same)",
                    ", ".join(unread), cfg.space, cfg.data.spec, "them" if len(unread) > 1 else "it")


def _check_out_path(out: str, flag: str) -> None:
    """The run folder's path, checked before anything is made: a file there (or above
    it) was a bare "[Errno 17] File exists" for `--set out=`, and a name longer than
    file systems allow a chain of tracebacks that left the folders above it."""
    try:  # TensorBoard's writer and config.yaml take text: it failed at the first step
        out.encode("utf-8")
    except UnicodeEncodeError:
        raise config_mod.ConfigError(f"{flag} {out!r}: a path that is not UTF-8 text (bytes "
                                     "from another encoding); name the run's folder in UTF-8") from None
    for part in Path(out).parts:
        if len(os.fsencode(part)) > 255:
            raise config_mod.ConfigError(f"{flag} {out}: a folder name of {len(os.fsencode(part))} "
                                         "bytes; file systems allow at most 255")
    if Path(out).exists() and not Path(out).is_dir():
        raise config_mod.ConfigError(f"{flag} {out} is a file; it must name the run's folder")
    try:
        check_parent_folders(out, flag)
    except ValueError as err:
        raise config_mod.ConfigError(str(err)) from None


def build_config(args: argparse.Namespace, check: bool = True) -> Config:
    """Preset < --config < flags, validated unless `check` is False (train validates once
    --arch has named the space); with --resume, the run's saved config (flags may then
    only repeat it, or change the device and speed options)."""
    command = getattr(args, "config_command", "search")
    updates = _updates(args, command)
    _warn_unread(args, command)
    resume = getattr(args, "resume", False)
    if args.out:  # --out='~/x' is left as typed by the shell; out: ~/x in YAML is expanded too
        args.out = os.path.expanduser(args.out)
    if resume and not args.out:
        raise config_mod.ConfigError(
            "--resume needs --out: the folder of the run to continue" +
            (" (`--out RUN --resume` reads the run's config.yaml from there: no --config)"
             if getattr(args, "config", None) else ""))
    if args.out:
        _check_out_path(args.out, "--out")
        check_kind(Path(args.out), command, resume)
    saved = Path(args.out) / "config.yaml" if args.out else None
    if resume:
        check_resumable(Path(args.out))
        cfg = _resumed(saved, updates, args)
        if Path(cfg.out).resolve() != Path(args.out).resolve():  # `--set out=` after --out
            raise config_mod.ConfigError(
                f"--resume continues the run in --out {args.out}, but out={cfg.out} names "
                "another folder: drop it (a run is resumed where it is)")
        _check_paths_remain(cfg, saved)
    else:
        cfg = config_mod.absolute_paths(config_mod.apply_dotted(
            config_mod.load(args.config, args.preset), updates))
        if args.out and Path(cfg.out).resolve() != Path(args.out).resolve():
            # `--set out=` after --out: --out was checked, the other folder used
            raise config_mod.ConfigError(f"--out {args.out} and out={cfg.out} (--set) name two "
                                         "folders: give one")
        if cfg.out and not args.out:  # out: in a YAML file, or --set out=
            _check_out_path(cfg.out, "out")
        # a run's config.yaml names that run's folder: rerunning it (the SPOS comparison,
        # a longer training of the winner) needs a folder of its own
        out_set = "out" in config_mod.assigned_fields(list(args.set))
        if cfg.out and holds_run(cfg.out):
            taken = cfg.out
        elif not out_set:
            taken = _run_holding(args.config, cfg.out)
        else:
            taken = None
        if not args.out and taken:
            source = ("--set out=" if out_set
                      else f"out: in {args.config}" if args.config else f"--preset {args.preset}")
            resume = (f" (or --out {shlex.quote(taken)} --resume to continue that run)"
                      if run_kind(taken) == command else "")
            raise config_mod.ConfigError(f"{taken} ({source}) holds a run already; pass "
                                         f"--out NEW_FOLDER for this one{resume}")
    store = cfg.landmarks.store
    if command == "search" and not resume and store and not store.lower().endswith(".json") \
            and not Path(store).exists():
        # `--landmarks 5` (meant: --num-landmarks) made a store file named 5. A new
        # store only: a run that already keeps one under another name resumes
        raise config_mod.ConfigError(
            f"landmarks.store={store!r} (--landmarks): a new store is a .json file; the "
            "number of landmarks is --num-landmarks (landmarks.num)")
    if not cfg.out:
        cfg.out = config_mod.default_out(command)
        args.fresh_out = True  # claimed by the command (runs.claim_folder)
    args.resolved_out = cfg.out  # for the Ctrl-C hint
    args.result_at_start = result_stamp(command, cfg.out)  # a result this run writes ends it
    if not check:
        return cfg
    validate(cfg)
    if command == "search" and cfg.landmarks.enabled and cfg.data.reg_fraction == 0:
        # the search says so too, once its data is read: here before torch loads (train
        # takes it: a training has no use for the regularizer's split)
        raise config_mod.ConfigError("data.reg_fraction=0 leaves the landmark regularizer no data "
                                     "to evaluate landmarks on; raise it, or search with --no-landmarks")
    if not resume:  # a resume repeats what the run was given: said when it started
        warn_unread_by_space(args, command, cfg)
    return cfg


def print_config(cfg: Config, args: argparse.Namespace) -> None:
    """--print-config: the settings as the run's config.yaml will hold them. A folder
    named by the clock is left unset: it is named when a run starts, and a file of
    these settings should start a run of its own each time it is used."""
    if getattr(args, "fresh_out", False):
        cfg = dataclasses.replace(cfg, out="")
    print(config_mod.as_yaml(cfg), end="")
