"""The depth network's encoder: a timm feature extractor at strides 4, 8, 16 and 32,
randomly initialised or loaded from a local weights file, which is checked to fit
(timm loads a feature extractor's weights without a word about what did not)."""
from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import timm
import torch
from torch import nn

from depthnas.terminal import listed

from .space import WEIGHT_SUFFIXES

log = logging.getLogger(__name__)

BACKBONE_STRIDES = (4, 8, 16, 32)


@functools.lru_cache(maxsize=None)
def _stride_levels(name: str) -> tuple[int, ...]:
    """timm's feature levels of `name` at strides 4, 8, 16, 32: (1, 2, 3, 4) for
    ResNets and MobileNets, which also expose stride 2, but (0, 1, 2, 3) for
    ConvNeXt-like models. Read from a weightless copy on the meta device, once per
    name: a search builds a model for every stand-alone training, and the probe
    costs 35-65 ms of a tiny one's build. (An error is not kept: it is raised again. A
    model registered with timm later in the process under a name already probed keeps
    the first one's levels; `create_backbone` still checks the strides it gets.)"""
    try:
        with torch.device("meta"):
            probe = timm.create_model(name, features_only=True)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"unknown timm backbone {name!r} (see timm.list_models())") from err
        raise
    if "NHWC" in str(getattr(probe, "output_fmt", "NCHW")):
        raise ValueError(f"backbone {name!r} returns channels-last (NHWC) feature maps; "
                         "the depth decoder takes NCHW ones (CNN backbones: resnet*, "
                         "resnext*, convnext*, efficientnet*, mobilenetv3*, regnet*)")
    reductions = list(probe.feature_info.reduction())
    if any(s not in reductions for s in BACKBONE_STRIDES):
        raise _wrong_strides(name, reductions)
    # the deepest level of each stride (a stage may end with the same reduction twice)
    return tuple(len(reductions) - 1 - reductions[::-1].index(s) for s in BACKBONE_STRIDES)


def create_backbone(name: str, weights: str | Path | None = None) -> nn.Module:
    """A timm feature extractor at strides 4..32; random init unless a local file
    is given (.safetensors, or .pth read with weights_only so no pickle runs)."""
    kw: dict = {}
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ValueError(f"backbone weights {path}: expected a {' / '.join(WEIGHT_SUFFIXES)} file")
        kw = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    levels = _stride_levels(name)
    rng = torch.get_rng_state()
    try:
        # timm's own line lists every missing key; _check_loaded says it briefly
        with _timm_errors_only() if weights is not None else contextlib.nullcontext():
            backbone = timm.create_model(name, features_only=True, out_indices=levels, **kw)
    except Exception as err:  # safetensors/torch.load/timm errors alike: name the file
        if weights is None:
            raise
        if "weights_only" in str(err):  # torch's advice, weights_only=False, would run the pickle
            raise ValueError(f"backbone weights {weights}: not a file of plain tensors (a pickled "
                             "whole model, or not a PyTorch file at all): save the backbone's "
                             "state_dict(), with torch.save or safetensors") from err
        lines = str(err).strip().splitlines()  # a size mismatch is listed per tensor
        detail = listed([line.strip() for line in lines], sep="; ")
        raise ValueError(f"backbone weights {weights}: cannot load them into {name!r} "
                         f"({type(err).__name__}: {detail})") from err
    if weights is not None:
        _check_loaded(backbone, name, levels, weights, rng)
        _warn_unused(name, weights)
    check_strides(backbone, name)
    return backbone


def check_strides(backbone: nn.Module, name: str) -> None:
    """A backbone given as a module (or built here) must give the strides 4..32."""
    info = getattr(backbone, "feature_info", None)
    if not hasattr(info, "reduction"):
        raise ValueError(f"backbone {name!r} has no feature_info: build it with "
                         "timm.create_model(..., features_only=True)")
    if tuple(info.reduction()) != BACKBONE_STRIDES:
        raise _wrong_strides(name, info.reduction())


def _wrong_strides(name: str, strides: list[int]) -> ValueError:
    return ValueError(f"backbone {name!r} gives feature strides {tuple(strides)}; "
                      f"the depth decoder needs {BACKBONE_STRIDES}")


@contextlib.contextmanager
def _timm_errors_only():
    """timm's info lines while it reads a weights file ("Loaded  from checkpoint ...",
    once per model built: dozens in a search) say nothing the checks here do not."""
    timm_log = logging.getLogger("timm")
    level = timm_log.level
    timm_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        timm_log.setLevel(level)


def _warn_unused(name: str, weights: str | Path) -> None:
    """timm loads the tensors whose names match: resnet34's file fills a resnet18, every
    name of which it holds, without a word. Tensors the whole model has no place for,
    in its own naming (its top-level modules; the classifier aside), say the file is
    another network's. Read as timm reads it: wrappers (EMA first), DDP and compile
    prefixes removed; names in another scheme (a paper's original checkpoint, which
    timm renames) are left to `_check_loaded`."""
    from timm.models import load_state_dict
    with torch.device("meta"):
        full = timm.create_model(name)
    names = set(full.state_dict())
    head = str(full.pretrained_cfg.get("classifier") or "").split(".")[0]
    ours = {k.split(".")[0] for k in names} - {head}
    with _timm_errors_only():
        stored = load_state_dict(str(weights))
    unused = sorted(k for k in stored if k not in names and k.split(".")[0] in ours)
    if unused:
        log.warning("backbone weights %s: %d tensor(s) have no place in %r (%s): weights of "
                    "another model? Only the tensors named as in %r were loaded", weights,
                    len(unused), name, listed(unused), name)


def _check_loaded(backbone: nn.Module, name: str, levels: tuple[int, ...], weights: str | Path,
                  rng: torch.Tensor) -> None:
    """timm loads a feature extractor's weights non-strictly: a file of another model
    would leave the backbone at random init with only a log line. Compare against
    the same random init (same RNG state): a weight equal to it was not loaded."""
    after = torch.get_rng_state()
    torch.set_rng_state(rng)
    fresh = dict(timm.create_model(name, features_only=True, out_indices=levels).named_parameters())
    torch.set_rng_state(after)
    kernels = [(k, p) for k, p in backbone.named_parameters() if p.dim() > 1]
    untouched = [k for k, p in kernels if k in fresh and torch.equal(p, fresh[k])]
    if len(untouched) == len(kernels):
        raise ValueError(f"backbone weights {weights}: none of the {len(kernels)} weight tensors "
                         f"of {name!r} are in it (a checkpoint of another model?)")
    if untouched:
        log.warning("backbone weights %s: %d of %d weight tensors of %r are not in it and stay "
                    "randomly initialised: %s", weights, len(untouched), len(kernels), name,
                    listed(untouched, 5))
