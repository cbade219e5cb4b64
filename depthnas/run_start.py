"""How `depthnas search` and `depthnas train` start, once their settings are read: the
checks said before a folder is made (a model that cannot build, no --out under
torchrun), then joining the ranks, claiming the run folder and holding its lock."""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
from pathlib import Path
from typing import Any, Iterator

from . import config as config_mod
from .config import Config
from .launch_env import launched
from .runs import claim_folder, run_folder


def join_ranks(cfg: Config) -> None:
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


@contextlib.contextmanager
def shape_tuned_kernels() -> Iterator[None]:
    """`fixed_shape_kernels` for the work inside, then cuDNN's setting as the caller had
    it: cli.main and pipeline.run are called from scripts and notebooks too, whose
    later evaluations see images of many sizes."""
    import torch
    before = torch.backends.cudnn.benchmark
    fixed_shape_kernels()
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def check_model_builds(cfg: Config, space: Any) -> None:
    """Build the super-net on the meta device (no memory): an unknown backbone or one
    without the strides the decoder needs fails here, before the run folder is
    written, not when the first landmark starts training. A backbone weights file is
    read once here, for the same reason; a space not built in is checked against the
    SearchSpace interface (`contract_problems`), and --compile on models without a
    backbone is said to do nothing."""
    import torch

    from depthnas.spaces import is_builtin

    from .models import has_timm_backbone, model_kwargs, without_weights_file
    own = not is_builtin(space.name)
    try:
        with torch.device("meta"):
            supernet = space.build_supernet(**without_weights_file(model_kwargs(cfg.model, space)))
    except ValueError as err:  # the space names the backbone; the user set it by a flag
        if has_timm_backbone(space) and repr(cfg.model.backbone) in str(err):
            raise ValueError(f"--backbone (model.backbone): {err}") from None
        raise
    except (TypeError, AttributeError) as err:
        if not own:
            raise
        # "build_supernet() got an unexpected keyword argument 'depth'", unnamed
        raise ValueError(f"space {space.name}: its super-net does not build from its "
                         f"model_kwargs ({type(err).__name__}: {err}); model_kwargs(cfg) reads "
                         "the run's ModelConfig fields and gives what build_supernet takes") from None
    if own:  # said now, not as wrong results after the search (the built-ins are tested)
        from depthnas.spaces.base import contract_problems
        problems = contract_problems(space, random.Random(0))
        try:  # recorded in every model file and stand-alone recipe
            json.dumps(model_kwargs(cfg.model, space))
        except (TypeError, ValueError) as err:
            problems.append(f"its model_kwargs must be JSON values (numbers, strings, lists), "
                            f"which model files record: {err}")
        if not problems and space.task_kind == "depth":
            with torch.random.fork_rng(devices=[]):  # a library caller's seeded draws stay theirs
                problems += _depth_forward_problems(cfg, space)
        if problems:
            raise ValueError(f"space {space.name} breaks the SearchSpace interface: "
                             + "; ".join(problems))
    if (cfg.supernet.compile or cfg.standalone.compile) and not isinstance(
            getattr(supernet, "backbone", None), torch.nn.Module):
        # compile_model compiles the backbone alone (the decoder's paths would recompile)
        logging.getLogger(__name__).warning(
            "--compile compiles a model's backbone, and %s's models have none: they run "
            "eager, as without it", space.name)
    if cfg.model.backbone_weights and has_timm_backbone(space):  # said before "run folder ..."
        from depthnas.spaces.depth import create_backbone
        backbone = create_backbone(cfg.model.backbone, cfg.model.backbone_weights)
        _warn_other_normalisation(cfg.model.backbone, backbone)


def _warn_other_normalisation(name: str, backbone: Any) -> None:
    """Images are normalised with ImageNet's mean and std (training, predict and the
    ONNX graph alike); weights trained on inputs normalised otherwise (timm's tf_*
    ports: 0.5 / 0.5; in21k ones: none) see inputs they never saw."""
    from depthnas.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is None or std is None:
        return
    ours = (*IMAGENET_MEAN, *IMAGENET_STD)
    if any(abs(a - b) > 1e-3 for a, b in zip((*mean, *std), ours)):
        logging.getLogger(__name__).warning(
            "backbone %s's weights expect inputs normalised with mean %s and std %s; depthnas "
            "normalises with ImageNet's (%s, %s), so the pretrained features see other inputs "
            "than they were trained on", name, tuple(mean), tuple(std), IMAGENET_MEAN, IMAGENET_STD)


def _depth_forward_problems(cfg: Config, space: Any) -> list[str]:
    """One small forward of a depth space of the user's, as the run will make them:
    super-net paths (whole, and split into encode/decode where the model has them),
    a fixed model, and `ignores_input` with the model's settings. Each fault here
    showed as a traceback after the landmarks or the super-net had trained."""
    import torch

    from .models import model_kwargs, without_weights_file
    from .runtime import resolve_device
    kw = without_weights_file(model_kwargs(cfg.model, space))
    arch = space.sample(random.Random(0))
    h, w = cfg.data.image_size
    device = resolve_device(cfg.device)  # a model of CUDA-only kernels runs where the run does
    x = torch.rand(2, 3, h, w).to(device)  # drawn on the CPU, whose generator the caller forks
    want = (2, 1, h, w)

    def shape(out: Any) -> Any:
        return tuple(out.shape) if torch.is_tensor(out) else f"a {type(out).__name__}"
    problems = []
    try:
        space.ignores_input(arch, **model_kwargs(cfg.model, space))
    except TypeError as err:
        problems.append(f"ignores_input(arch, **model_kwargs) fails: {err} (take **model_kw)")
    with torch.no_grad():
        supernet = space.build_supernet(**kw).eval().to(device)
        forms = [("the super-net's path", lambda: supernet(x, arch)),
                 ("the fixed model", lambda: space.build_fixed(arch, **kw).eval().to(device)(x))]
        if hasattr(supernet, "encode") and hasattr(supernet, "decode"):  # the shared-encoder path
            forms.insert(1, ("the super-net's decode(encode(x), arch)",
                             lambda: supernet.decode(supernet.encode(x), arch)))
        for what, run in forms:
            try:
                got = shape(run())
            except Exception as err:  # noqa: BLE001 - the user's model, any fault
                got = f"an error ({type(err).__name__}: {err})"
            if got != want:
                problems.append(f"{what} for a batch of 2 at {h}x{w} gave {got}; a depth model "
                                f"returns {want}, inverse depth at its input's size")
    return problems


def check_out_under_torchrun(args: argparse.Namespace) -> None:
    """Said before the model checks: without --out every rank would claim a folder of
    its own, named by the clock."""
    if getattr(args, "fresh_out", False) and launched():
        raise config_mod.ConfigError("under torchrun pass --out: every rank must name the same "
                                     "run folder")


def claim_fresh_out(cfg: Config, args: argparse.Namespace) -> Path | None:
    """A run folder named by the clock (no --out) is made now, under the first free
    name: runs started in the same second each get their own. Returns the outermost
    folder made for it (None: the user named the folder)."""
    if not getattr(args, "fresh_out", False):
        return None
    folder, made_from = claim_folder(Path(cfg.out))
    cfg.out = args.resolved_out = str(folder)
    return made_from


@contextlib.contextmanager
def start_run(cfg: Config, args: argparse.Namespace) -> Iterator[Path]:
    """Search's and train's start, once every check has passed: join the ranks, claim
    the run folder and hold its lock while the work runs in it."""
    join_ranks(cfg)
    made_from = claim_fresh_out(cfg, args)
    with shape_tuned_kernels(), run_folder(Path(cfg.out), args.resume, made_from=made_from,
                                           config=args.config) as out:
        yield out
