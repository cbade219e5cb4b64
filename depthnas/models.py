"""Building models from a config, and loading a saved model file back.

A saved model (`model.safetensors`) carries its own recipe in the metadata, so
export, predict and the demo need nothing but the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthnas.spaces import Arch, SearchSpace, get_space

from .checkpoint import load_weights, read_metadata
from .config import ModelConfig

FORMAT = "depthnas-model/1"


def model_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    return {"backbone": cfg.backbone, "features": cfg.features,
            "backbone_weights": cfg.backbone_weights,
            "first_block_input": cfg.first_block_input}


def model_metadata(space: SearchSpace, arch: Arch | None, cfg: ModelConfig,
                   image_size: tuple[int, int] | list[int], task: str = "depth") -> dict[str, Any]:
    return {"format": FORMAT, "task": task, "space": space.name,
            "arch": space.to_string(arch) if arch is not None else "",
            "backbone": cfg.backbone, "features": cfg.features,
            "first_block_input": cfg.first_block_input, "image_size": list(image_size)}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def path_parameters(space: SearchSpace, arch: Arch, cfg: ModelConfig) -> int:
    """Parameters of the stand-alone model of `arch`, without allocating it."""
    kw = dict(model_kwargs(cfg), backbone_weights=None)
    with torch.device("meta"):
        return count_parameters(space.build_fixed(arch, **kw))


def resolve_model_file(path: str | Path) -> Path:
    """Accept a model file, a stand-alone training folder or a search run folder."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "best" / "model.safetensors", path / "model.safetensors"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{path} holds no model.safetensors (nor best/model.safetensors)")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a stand-alone model from its file; returns (model in eval mode, metadata)."""
    path = resolve_model_file(path)
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a depthnas model file (metadata format "
                         f"{meta.get('format')!r}); checkpoints of a super-net cannot be "
                         "loaded as a model — use the run's best/model.safetensors")
    if not meta.get("arch"):
        raise ValueError(f"{path} holds a super-net, not one architecture")
    space = get_space(meta["space"])
    arch = space.parse(meta["arch"])
    cfg = ModelConfig(backbone=meta["backbone"], features=int(meta["features"]),
                      first_block_input=meta.get("first_block_input", "duplicate"))
    model = space.build_fixed(arch, **model_kwargs(cfg))
    load_weights(path, model)
    return model.to(device).eval(), meta
