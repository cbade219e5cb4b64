"""`depthnas train`: one architecture trained stand-alone, in a run folder of its own
(resumable, as a search is), its result said beside a constant prediction's."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import config as config_mod
from .arch_arg import naming_arch_file, read_arch_arg, space_of
from .config import Config
from .config_checks import validate
from .degenerate import inverted_note, learned_nothing
from .io import atomic_write_json
from .launch_env import env_rank
from .run_config import add_config_args, build_config, print_config, warn_unread_by_space
from .run_start import check_model_builds, check_out_under_torchrun, start_run
from .runs import ARCH_FILE, trained_arch
from .terminal import show_progress


def register(sub: Any) -> None:
    t = sub.add_parser(
        "train", help="train one architecture stand-alone",
        description="Train one architecture on its own. Example: depthnas train --arch "
                    "runs/search-20261130-101500/best_arch.json --preset quick --epochs 20")
    t.add_argument("--arch", help="architecture string, JSON, or a JSON file "
                                  "(with --resume: the folder's own, if left out)")
    add_config_args(t, "train")
    t.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    cfg, space, arch = _training_config(args)
    if args.print_config:
        print_config(cfg, args)
        return 0
    from . import distributed  # torch: once the settings are checked
    from .data import check_recorded_splits, load_splits, warn_unused_settings
    from .recipe import recipe
    from .standalone import finished_training, train_standalone
    arch_string = space.to_string(arch)
    check_out_under_torchrun(args)
    check_model_builds(cfg, space)
    _refuse_another_training(args, cfg, arch_string)
    dead = _ignores_input(cfg, space, arch)
    with start_run(cfg, args) as out:
        if distributed.is_main():
            atomic_write_json(out / ARCH_FILE, space.to_json(arch))
        warn_unused_settings(cfg)
        splits = load_splits(cfg)
        check_recorded_splits(splits, out / "splits.json")  # a resume: the same samples
        if distributed.is_main():  # as a search records them: which samples, what was skipped
            atomic_write_json(out / "splits.json", splits.manifest())
            # said once the data is there: a refused start's folder is removed
            if args.resume and finished_training(out, arch_string, recipe(cfg)) is not None:
                args.work_finished = True  # a reader leaving now stops nothing
                print(f"{arch_string} finished its training in {out} already: "
                      "its result, not trained again", flush=True)
            else:
                print(f"training {arch_string} stand-alone; run folder {out}", flush=True)
        result = train_standalone(cfg, space, arch, splits, out,
                                  progress=show_progress(args.no_progress), distributed=True)
    if distributed.is_main():
        _say_trained(result, cfg, space, out, dead)
    return 0


def _ignores_input(cfg: Config, space: Any, arch: Any) -> bool:
    """Said before the training: no learning rate or epoch count helps such a model."""
    from .models import ignores_input_note, model_kwargs
    dead = space.ignores_input(arch, **model_kwargs(cfg.model, space))
    if dead and env_rank() == 0:
        print(f"warning: {ignores_input_note(space.to_string(arch))}: it can learn only the "
              "same prediction for every image; training it all the same", file=sys.stderr)
    return dead


def _training_config(args: argparse.Namespace) -> tuple[Config, Any, Any]:
    """The config, space and architecture of a `depthnas train`. The config is checked
    for the space the training uses, before torch loads: the one the user set (--space,
    --set, --config), else the one --arch names (checked for the preset's, an nb201
    training's own loss or data was refused)."""
    from depthnas.spaces import get_space
    cfg = build_config(args, check=False)
    arch_arg = args.arch or (trained_arch(cfg.out) if args.resume else None)
    named_by = _space_chosen_by(args, cfg.space)
    if named_by or not arch_arg:
        validate(cfg)
    if not arch_arg and args.print_config:  # the settings hold no architecture to print
        return cfg, None, None
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
    if not args.resume:  # the space is known only now (--arch may name it)
        warn_unread_by_space(args, "train", cfg)
    return cfg, space, arch


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


def _refuse_another_training(args: argparse.Namespace, cfg: Config, arch: str) -> None:
    """A --resume continues the training its folder holds, under the settings it began
    with: another architecture, or a config.yaml edited since, would train from scratch
    over it, its epochs lost."""
    from .recipe import recipe
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


def _say_trained(result: dict[str, Any], cfg: Config, space: Any, out: Path, dead: bool) -> None:
    from .models import has_timm_backbone, is_classification
    from .task import make_task
    score = make_task(space, cfg.standalone.loss).score_name
    print(f"{result['arch']}: validation {score} {result['val_loss']:.5f} "
          f"({result['params']:,} parameters) -> {out / 'model.safetensors'}")
    if dead:  # said before it trained; advice on the learning rate would mislead
        return
    # the MiDaS decoder's timm backbone: its head's ReLU, and weights advised where none
    midas = has_timm_backbone(space)
    _warn_if_no_better_than_constant(result, classifies=is_classification(space), midas_head=midas,
                                     advise_weights=midas and cfg.model.backbone_weights is None)
    note = inverted_note(result.get("inverted"))
    if note and not learned_nothing(result["val_loss"], result.get("constant_prediction_loss")):
        print(f"warning: {note}", file=sys.stderr)


def _warn_if_no_better_than_constant(result: dict, classifies: bool = False,
                                     midas_head: bool = True, advise_weights: bool = True) -> None:
    base = result.get("constant_prediction_loss")
    if not learned_nothing(result["val_loss"], base):
        return
    if classifies:
        print(f"warning: naming the most frequent class for every image scores {base:.5f}: this "
              "model learned (almost) nothing; try a lower --set standalone.lr=... or more "
              "--epochs", file=sys.stderr)
        return
    # the MiDaS head ends in a ReLU; a space of one's own may have none
    relu = " An output of zeros everywhere means the head's final ReLU died." if midas_head else ""
    print(f"warning: a constant prediction scores {base:.5f}: this model learned (almost) "
          f"nothing.{relu} Try a lower --set standalone.lr=... or more --epochs" +
          (", or a pretrained backbone (--backbone-weights FILE)" if advise_weights else ""),
          file=sys.stderr)
