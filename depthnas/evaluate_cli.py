"""`depthnas evaluate` (registered by depthnas.cli): its flags, the run's own settings
as defaults, and the printout. The work is `depthnas.evaluate`'s, imported when the
command runs: torch and the data stack take seconds to import, and every `depthnas`
command, `--help` included, builds this parser."""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from depthnas.datasets.settings import DEPTH_KINDS, EVAL_SYNTHETIC_SAMPLES
from depthnas.datasets.spec import split_spec

from .config import canonical_spec, load as load_config
from .data import SPLIT_NAMES
from .io import atomic_write_json, check_out_file, check_parent_folders, finite_json, path_arg


def report_name(split: str, other_data: str | None, variant: tuple[str, ...] = ()) -> str:
    """`eval`, `eval-val`, ...; with the data set's kind and folder name when it is not
    the run's own (`eval-val-nyuv2-nyu`): scoring a model on a second data set wrote
    over the first one's report. `variant`: how the run's own data was read otherwise
    (`eval-val-seed7`, `eval-depth`) or at another size or cap (`eval-val-net512`,
    `eval-cap3`), which wrote over the run's own reading."""
    name = "-".join(("eval" if split == "all" else f"eval-{split}", *variant))
    if other_data:
        kind, path = split_spec(canonical_spec(other_data))  # folder:. -> its name
        slug = re.sub(r"[^\w-]+", "_", "-".join(p for p in (kind, Path(path).name) if p))
        name += f"-{slug.strip('_')}"
    return name


NYU_DEPTH_CAP = 10.0  # metres: the standard NYUv2 evaluation range (MiDaS, BTS)


def default_depth_cap(data: str) -> float | None:
    """The command's cap where --depth-cap is not given: NYUv2's 10 m, else none."""
    return NYU_DEPTH_CAP if split_spec(data)[0] == "nyuv2" else None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .model_files import resolve_model_file
    resolve_model_file(args.checkpoint)  # a missing model is said before torch loads

    from . import evaluate as ev
    from .checkpoint import checkpoint_note
    from .models import check_depth_model
    from .terminal import show_progress
    # Options evaluate() does not see first (it checks --net-size and --device itself,
    # before the model loads): a mistake is reported before the data is read.
    out = check_out_file(args.out, "eval.json", ("model", "data", "split", "ssi"))
    depth_cap = ev.check_depth_cap(args.depth_cap)
    if args.synthetic_samples is not None and args.synthetic_samples < 1:
        raise ValueError(f"--synthetic-samples must be >= 1, got {args.synthetic_samples}")
    if args.seed is not None and not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed must be 0 to 2**32 - 1, got {args.seed}")
    check_depth_model(args.checkpoint)  # a classifier is named before --data is asked for
    data = _data_spec(args)
    # The run's own data, seed and split fractions by default: re-splitting with other
    # ones would score samples the model trained on as "val".
    own = ev.own_split(args.checkpoint, data)
    kw = _split_settings(args, own, split_spec(data)[0] == "synthetic")
    if out is None:  # beside the model; said before the work, when it cannot be written there
        out = _default_out(args, data, kw, own, depth_cap)
    note = checkpoint_note(out, bool(args.out))
    if note:
        print(note)
    if args.depth_cap is None and (default := default_depth_cap(data)) is not None:
        depth_cap = default
        print(f"NYUv2: ground truth capped at {NYU_DEPTH_CAP:g} m, as in the MiDaS evaluation "
              "(--depth-cap 0 for none)")
    report = ev.evaluate(args.checkpoint, data, split=args.split, depth_cap=depth_cap,
                         net_size=args.net_size, device=args.device,
                         progress=show_progress(args.no_progress), **kw)
    _print_report(report, data, args.split, own_data=own is not None)
    atomic_write_json(out, finite_json(report))  # NaN (nothing scored) as null: strict JSON
    print(f"wrote {out}")
    return 0


def _data_spec(args: argparse.Namespace) -> str:
    """--data, named as runs record theirs (a relative path means nothing from another
    folder), else the data of the run the model comes from."""
    from .evaluate import config_folder_of
    if args.data:
        return canonical_spec(args.data)
    folder = config_folder_of(args.checkpoint)
    if folder is None:
        raise ValueError(f"--data is needed: {args.checkpoint} has no run config.yaml to take it from")
    return load_config(folder / "config.yaml").data.spec


def _split_settings(args: argparse.Namespace, own: dict[str, Any] | None,
                    synthetic: bool) -> dict[str, Any]:
    """evaluate()'s split settings: the flags given, else the run's own when the data is
    the run's (`own`), else the defaults. Says which split that draws (`synthetic`: the
    data is drawn, so its number of scenes splits it too)."""
    same = own is not None
    pick = (lambda flag, field, default: flag if flag is not None else (own[field] if same else default))
    kw = dict(seed=pick(args.seed, "seed", 0),
              synthetic_samples=pick(args.synthetic_samples, "synthetic_samples", EVAL_SYNTHETIC_SAMPLES),
              depth_kind=pick(args.depth_kind, "depth_kind", "depth"),
              skip_bad=args.skip_bad or (same and own["skip_bad"]))
    if not same:
        return kw
    kw.update(val_fraction=own["val_fraction"], reg_fraction=own["reg_fraction"])
    # --seed, --synthetic-samples, --depth-kind or --skip-bad re-split the data on purpose
    # (one repeating the run's own value does not: its split is then checked as recorded)
    fields = ("seed", "depth_kind") + (("synthetic_samples",) if synthetic else ())
    resplit = [f"--{field.replace('_', '-')}" for field in fields
               if getattr(args, field) is not None and getattr(args, field) != own[field]]
    resplit += ["--skip-bad"] if args.skip_bad and not own["skip_bad"] else []
    if args.split != "all" and resplit:
        print(f"split {args.split} drawn again with {', '.join(resplit)} (seed {kw['seed']}): "
              "not the run's own, which may overlap the run's training data")
    elif args.split != "all":
        kw["recorded"] = own["recorded"]
        print(f"split {args.split} as the run made it (seed {kw['seed']}, from its config.yaml)")
    return kw


def _trained_size(checkpoint: str | Path) -> int | None:
    """The longer side the model trained at: where evaluate runs it by default."""
    from .checkpoint import read_metadata
    from .model_files import resolve_model_file
    size = read_metadata(resolve_model_file(checkpoint)).get("image_size")
    return max(size) if isinstance(size, list) and size else None


def _default_out(args: argparse.Namespace, data: str, kw: dict[str, Any],
                 own: dict[str, Any] | None, depth_cap: float | None) -> Path:
    """The report's file beside the model, named for the data and split it scores."""
    from depthnas.datasets.transforms import net_side
    same = own is not None
    # the data read otherwise than the run read it (its own), or than by default (other
    # data): each reading a report of its own
    variant = []
    # another split of it, or (synthetic "all") other scenes: the seed draws them
    from .evaluate import unseen_scenes
    drawn = args.split != "all" or unseen_scenes(data, args.split)
    if drawn and kw["seed"] != (own["seed"] if same else 0):
        variant.append(f"seed{kw['seed']}")
    if kw["depth_kind"] != (own["depth_kind"] if same else "depth"):
        variant.append(kw["depth_kind"])
    if same and args.split != "all" and kw["skip_bad"] and not own["skip_bad"]:
        variant.append("skipbad")  # a split drawn again without the bad samples
    # read at another size, cap or number of scenes than by default: scores of their own
    if split_spec(data)[0] == "synthetic" and kw["synthetic_samples"] != (
            own["synthetic_samples"] if same else EVAL_SYNTHETIC_SAMPLES):
        variant.append(f"samples{kw['synthetic_samples']}")
    side = net_side(args.net_size) if args.net_size is not None else None  # what it runs at
    if side is not None and side != _trained_size(args.checkpoint):
        variant.append(f"net{side}")
    if args.depth_cap is not None and depth_cap != default_depth_cap(data):  # checked: 0 -> None
        variant.append(f"cap{args.depth_cap:g}")
    name = report_name(args.split, None if same else data, tuple(variant))
    checkpoint = Path(args.checkpoint)

    def beside(name: str) -> Path:
        return checkpoint / f"{name}.json" if checkpoint.is_dir() else checkpoint.with_suffix(f".{name}.json")

    out = beside(name)
    if not same and _scores_other_data(out, data):  # setA/val and setB/val: both "folder-val"
        out = beside(f"{name}-{hashlib.sha256(data.encode()).hexdigest()[:6]}")
    try:
        check_parent_folders(out, "the report")
    except ValueError as err:
        raise ValueError(f"{err}; pass --out FILE to write it elsewhere") from None
    return out


def _scores_other_data(report: Path, data: str) -> bool:
    """Whether `report` is one of another data set that the name alone did not tell
    apart (a folder's last part is all it holds): overwritten, that one was lost."""
    try:
        recorded = json.loads(report.read_text()).get("data")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(recorded, str) and canonical_spec(recorded) != canonical_spec(data)


def _print_report(report: dict[str, Any], data: str, split: str, own_data: bool = False) -> None:
    from .degenerate import inverted_note, learned_nothing
    from .depth_metrics import METRIC_NAMES
    from .evaluate import unseen_scenes
    notes = {"delta1": "  (% of pixels off by > 1.25x)",
             "inverted": "  (% of images with near and far swapped, before alignment)"}
    level = report["constant_prediction"]
    print(f"{'':8s} {'model':>8s}  {'constant':>8s}")
    for k in METRIC_NAMES:
        at_constant = f"{level[k]:8.5f}" if k in level else " " * 8
        print(f"{k:8s} {report[k]:8.5f}  {at_constant}{notes.get(k, '')}")
    unseen = unseen_scenes(data, split)
    print(f"on {report['samples']} sample(s) of {data} "
          f"[{'all: scenes no run trains on' if unseen else split}] at net size "
          f"{report['net_size']}; constant: one value everywhere, a model that learned nothing")
    if own_data and split == "all" and not unseen:  # read as held-out by a newcomer
        print("note: all of the run's data, the samples it trained on included; --split val "
              "scores the held-out ones alone")
    if report["left_out"]:
        beyond = f"within the {report['depth_cap']:g} m cap" if report["depth_cap"] else "nearer than infinity"
        print(f"note: {report['left_out']} other image(s) have fewer than three pixels of ground "
              f"truth {beyond}, or all at one depth (a scale and a shift fit those exactly, "
              "whatever the model predicts): left out")
    if learned_nothing(report["ssi"], level["ssi"]):
        print(f"warning: the model's SSI {report['ssi']:.5f} is no better than a constant "
              f"prediction's {level['ssi']:.5f} (or within 1% of it): it learned nothing of this data",
              file=sys.stderr)
    else:  # each metric a constant has is an error (lower is better), as SSI is
        worse = [f"{k} {report[k]:.5f} vs {level[k]:.5f}" for k in METRIC_NAMES
                 if k in level and k != "ssi" and report[k] > level[k]]
        if worse:
            print(f"warning: worse than a constant prediction in {', '.join(worse)}: better "
                  "in SSI, the loss it trained on (disparity aligned per image), but not in "
                  "these depth metrics", file=sys.stderr)
    note = inverted_note(report["inverted"], "images")
    if note:
        print(f"warning: {note}", file=sys.stderr)


def register(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="depth metrics of a trained model on a data set")
    p.add_argument("--checkpoint", "--model", required=True, type=path_arg,
                   help="model.safetensors, training or search run folder (--model, as predict "
                        "and demo name it, is the same)")
    p.add_argument("--data", default=None,
                   help="synthetic | redweb:PATH | nyuv2:PATH | diode:PATH | folder:PATH "
                        "(default: the run's own data)")
    p.add_argument("--split", choices=("all", *SPLIT_NAMES), default="all",
                   help="which part of the data (default all; for synthetic: held-out scenes)")
    p.add_argument("--depth-cap", type=float, default=None,
                   help=f"ignore ground truth beyond this depth in metres (default: {NYU_DEPTH_CAP:g} for "
                        "nyuv2:, none otherwise; 0 = none)")
    p.add_argument("--net-size", type=int, default=None, help="inference size (default: the training size)")
    p.add_argument("--depth-kind", choices=DEPTH_KINDS, default=None,
                   help="what folder: depth files hold (default: the run's, else depth)")
    p.add_argument("--seed", type=int, default=None,
                   help="split seed for --split train/reg/val, and the scenes drawn for synthetic "
                        "--split all (default: the run's, else 0)")
    p.add_argument("--synthetic-samples", type=int, default=None,
                   help=f"synthetic scenes (default: the run's, else {EVAL_SYNTHETIC_SAMPLES})")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable samples (counted)")
    p.add_argument("--device", default="auto",
                   help="auto (default: CUDA when there is a GPU), cpu, cuda or cuda:N")
    p.add_argument("--out", default=None, type=path_arg, help="JSON file (default: in the run or training folder given, "
                   "or MODEL.eval.json beside a model file)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)
