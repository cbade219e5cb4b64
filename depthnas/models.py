"""Building models from a config, and loading a saved model file back.

A saved model (`model.safetensors`) carries its own recipe in the metadata, so
export, predict and the demo need nothing but the file.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthnas.spaces import Arch, SearchSpace, get_space

from .checkpoint import load_weights, read_metadata
from .config import ModelConfig
from .model_files import resolve_model_file

FORMAT = "depthnas-model/1"
log = logging.getLogger(__name__)


# The MiDaS decoder's settings a depth model file names at its top level.
DECODER_FIELDS = ("backbone", "features", "first_block_input")


def is_classification(space: SearchSpace | None) -> bool:
    return space is not None and space.task_kind == "classification"


def has_timm_backbone(space: SearchSpace) -> bool:
    """A space whose models take a timm backbone by name (the MiDaS decoder's): what
    is built once for counting, and what --backbone-weights is read into. A space of
    the user's gets its own `backbone` argument, whatever it names."""
    from depthnas.spaces.depth.space import DepthSpace
    return isinstance(space, DepthSpace)


def model_kwargs(cfg: ModelConfig, space: SearchSpace) -> dict[str, Any]:
    """Constructor arguments of `space`'s models: the ModelConfig fields it takes."""
    return space.model_kwargs(cfg)


def without_weights_file(kw: dict[str, Any]) -> dict[str, Any]:
    """`kw` with no backbone weights file to read, where the space takes one: a model
    built only to be counted, timed or checked, or filled from a model file."""
    return dict(kw, backbone_weights=None) if "backbone_weights" in kw else dict(kw)


def model_metadata(space: SearchSpace, arch: Arch | None, cfg: ModelConfig,
                   image_size: tuple[int, int] | list[int], task: str = "depth") -> dict[str, Any]:
    # `model`: the constructor's arguments, which load_model rebuilds it from (a space
    # of the user's may take settings other than the MiDaS decoder's). The decoder's
    # fields, where the space takes them, say what the model is to a reader (predict,
    # the demo, ONNX metadata) and rebuilt files written before `model` was recorded.
    kw = dict(space.model_kwargs(cfg))
    kw.pop("backbone_weights", None)  # a local path; the weights are in the file
    meta = {"format": FORMAT, "task": task, "space": space.name,
            "arch": space.to_string(arch) if arch is not None else "",
            **{k: kw[k] for k in DECODER_FIELDS if k in kw},
            "image_size": list(image_size), "model": kw}
    if is_classification(space):  # fixed-size images, whatever data.image_size says
        meta.update(image_size=list(space.input_size or image_size))
    return meta


def count_parameters(model: nn.Module) -> int:
    """Parameters a model holds (a super-net: every candidate op's)."""
    return sum(p.numel() for p in model.parameters())


class PathParameters:
    """Parameters of `space`'s stand-alone models under `cfg`, counted on the meta
    device (nothing allocated) and remembered per architecture.

    A depth model's backbone is the same for every path and takes nearly all of a
    build's time (about a second for resnext101_32x8d, paid per candidate under a
    parameter budget), so it is built once and shared by every count."""

    def __init__(self, space: SearchSpace, cfg: ModelConfig):
        self.space = space
        self.kw = without_weights_file(model_kwargs(cfg, space))
        if has_timm_backbone(space):
            from depthnas.spaces.depth import create_backbone
            with torch.device("meta"):
                self.kw["backbone"] = create_backbone(cfg.backbone)
        self._counts: dict[Arch, int] = {}

    def __call__(self, arch: Arch) -> int:
        if arch not in self._counts:
            with torch.device("meta"):
                self._counts[arch] = count_parameters(self.space.build_fixed(arch, **self.kw))
        return self._counts[arch]


def path_parameters(space: SearchSpace, arch: Arch, cfg: ModelConfig) -> int:
    """Parameters of the stand-alone model of `arch`, without allocating it."""
    return PathParameters(space, cfg)(arch)


def smallest_architecture(space: SearchSpace, cfg: ModelConfig) -> tuple[Arch, int]:
    """A small architecture of `space` and its parameter count: each gene in turn set to
    its cheapest option. Exact where a path's parameters add up over its genes (the
    depth spaces, NB201), a witness elsewhere. A parameter budget below it is checked
    before any training, not after the super-net has trained."""
    count = PathParameters(space, cfg)
    genes = [0] * len(space.gene_choices())
    best = count(space.make(genes))
    for i, n in enumerate(space.gene_choices()):
        for option in range(1, n):
            trial = genes[:i] + [option] + genes[i + 1:]
            params = count(space.make(trial))
            if params < best:
                best, genes = params, trial
    return space.make(genes), best


def load_depth_model(path: str | Path, device: str | torch.device = "cpu"
                     ) -> tuple[nn.Module, dict[str, Any]]:
    """`load_model` for the tools that need inverse-depth maps (evaluate, export,
    predict, demo): a classification model is refused by name, not run as one."""
    model, meta = load_model(path, device)
    _refuse_other_task(path, meta)
    return model, meta


def trained_image_size(meta: dict[str, Any], path: str | Path) -> tuple[int, int]:
    """(H, W) a model file's metadata says its model trained at (a list, or the JSON
    text an ONNX file keeps); a ValueError naming the file if it says none."""
    raw = meta.get("image_size")
    try:
        size = json.loads(raw) if isinstance(raw, str) else raw
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):  # json's decode error is a ValueError
        raise ValueError(f"{path}: metadata image_size {raw!r} is not [H, W]") from None
    return h, w


def ignores_input_note(arch_string: str) -> str:
    """What train, export, predict and the demo say of a model that ignores the image."""
    return (f"{arch_string} gives one output whatever the image (its none ops cut every "
            "path from the image to the output)")


def meta_ignores_input(meta: dict[str, Any]) -> bool:
    """Whether the model a file's metadata describes gives one output whatever the
    image (`SearchSpace.ignores_input` of its architecture, built as recorded): its
    maps look like depth and are the same for every photo."""
    from depthnas.spaces import get_space
    space = get_space(str(meta["space"]))
    model_kw = meta.get("model") or {k: meta[k] for k in DECODER_FIELDS if k in meta}
    return bool(meta.get("arch")) and space.ignores_input(space.parse(str(meta["arch"])), **model_kw)


def check_depth_model(path: str | Path) -> None:
    """ValueError for a model file (or run) of another task, or a super-net, read from
    its metadata alone: before a command prints what it will do with it, or asks for
    what it needs (evaluate's --data)."""
    meta = read_metadata(resolve_model_file(path))
    _refuse_other_task(path, meta)
    if meta.get("format") == FORMAT and not meta.get("arch"):
        raise ValueError(f"{resolve_model_file(path)} holds a super-net, not one architecture")


def _refuse_other_task(path: str | Path, meta: dict[str, Any]) -> None:
    if meta.get("task", "depth") != "depth":
        raise ValueError(f"{resolve_model_file(path)} holds a {meta['task']} model (space "
                         f"{meta['space']}); "
                         "evaluate, export, predict and the demo work on depth models")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a stand-alone model from its file; returns (model in eval mode, metadata).
    `device`: a torch.device, or a name as --device takes it (auto, cpu, cuda, cuda:N)."""
    if isinstance(device, str):  # one not here is said as such, before the file is read
        from .runtime import resolve_device
        device = resolve_device(device)
    path = resolve_model_file(path)
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a depthnas model file (metadata format "
                         f"{meta.get('format')!r}); give a model.safetensors written by "
                         "depthnas search or train")
    if not meta.get("arch"):
        raise ValueError(f"{path} holds a super-net, not one architecture")
    # Rebuilt from its constructor's arguments as recorded; a depth model file written
    # before they were recorded, from its decoder's settings
    try:
        space = get_space(meta["space"])
    except KeyError as err:
        raise ValueError(f"{path}: metadata does not describe a model (no {err})") from err
    except ValueError as err:  # the file is fine: its space is not known to this process
        raise ValueError(f"{path} holds a model of space {meta['space']!r}, which this process "
                         f"does not know ({err}); a space registered by a script is known to "
                         "that script alone: install it with an entry point (README: \"A search "
                         "space of your own\"), or export from that script") from None
    try:
        arch = space.parse(meta["arch"])
        settings = meta.get("model")
        if not isinstance(settings, dict) and not is_classification(space):
            cfg = ModelConfig(backbone=meta["backbone"], features=int(meta["features"]),
                              first_block_input=meta.get("first_block_input", "duplicate"))
            settings = without_weights_file(model_kwargs(cfg, space))
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: metadata does not describe a model ({type(err).__name__}: "
                         f"{err})") from err
    if not isinstance(settings, dict):  # a classification model has no older form to fall back on
        raise ValueError(f"{path}: a {space.name} model file needs its 'model' settings in the metadata")
    kw = dict(settings)
    try:
        model = space.build_fixed(arch, **kw)
    except (ValueError, TypeError) as err:  # settings of no model this space builds
        raise ValueError(f"{path}: its model settings {kw} build no {space.name} model "
                         f"({type(err).__name__}: {err})") from err
    dropped = load_weights(path, model, None if is_classification(space) else _fusion_op_weight)
    if dropped:  # written before fixed models left out the ops their path never runs
        log.info("%s: left out %d tensor(s) of fusion ops this architecture never runs "
                 "(e.g. %s)", path, len(dropped), dropped[0])
    return model.to(device).eval(), meta


def _fusion_op_weight(name: str) -> bool:
    """A tensor of a fusion block's edge op or upsampling (`blocks.<i>.edges.<e>.ops.<op>.*`,
    `blocks.<i>.upsample.<op>.*`)."""
    return re.fullmatch(r"blocks\.\d+\.(edges\.e\d\d\.ops|upsample)\.\w+\..+", name) is not None
