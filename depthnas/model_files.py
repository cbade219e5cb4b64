"""Which model file a path names: the model file itself, or the search or training
run folder that holds one (and back, from a model to its run). Checked before torch
loads, so a wrong path is said at once."""
from __future__ import annotations

import shlex
from pathlib import Path

from .runs import SEARCH_MODEL, TRAIN_MODEL, holds_run, run_kind, running_holder


def model_of_run(folder: str | Path) -> Path | None:
    """The model file a search or training folder holds, if any."""
    for candidate in (Path(folder) / SEARCH_MODEL, Path(folder) / TRAIN_MODEL):
        if candidate.is_file():
            return candidate
    return None


def run_of_model(model: str | Path) -> Path | None:
    """The search or training folder whose product `model` is; None for anything
    else, a search's stand-alone trainings (`standalone/<arch>/`) included: those are
    its landmarks and candidates, not what it found."""
    model = Path(model)
    if model.name != TRAIN_MODEL:
        return None
    if model.parent.name == Path(SEARCH_MODEL).parent.name:
        return model.parent.parent
    trained = (model.parent / "result.json").is_file() and model.parent.parent.name != "standalone"
    return model.parent if trained else None


def newest_depth_run(root: str | Path = "runs") -> Path | None:
    """The run folder under `root` with the newest model, if any: a search's
    best/model.safetensors or a `depthnas train` run's model.safetensors (not the
    stand-alone trainings inside a search). Classification models are passed over."""
    root = Path(root)
    if not root.is_dir():
        return None

    def depth_model(p: Path) -> bool:
        from .checkpoint import read_metadata  # torch: only where there are models to read
        try:
            return read_metadata(p).get("task", "depth") == "depth"
        except Exception:  # unreadable: the loader will name it if it is chosen
            return True
    models = [p for p in root.rglob(TRAIN_MODEL)
              if p.is_file() and run_of_model(p) is not None and depth_model(p)]
    if not models:
        return None
    return run_of_model(max(models, key=lambda p: p.stat().st_mtime))


def resolve_model_file(path: str | Path) -> Path:
    """Accept a model file, a stand-alone training folder or a search run folder."""
    path = Path(path)
    if path.is_dir():
        model = model_of_run(path)
        if model is not None:
            return model
        kind = run_kind(path)
        finished = (path / ("results.json" if kind == "search" else "result.json")).is_file()
        # started: work kept (checkpoints, metrics), or only its start (its config.yaml
        # and arch.json or first landmarks), which a run stopped or still in its first
        # epoch holds; such a folder was "no model.safetensors (nor best/...)"
        started = holds_run(path) or (path / "config.yaml").is_file()
        if kind is not None and started and not finished:
            what = "training" if kind == "train" else kind
            running = running_holder(path)
            if running is not None:
                raise FileNotFoundError(f"{path} holds no model yet: its {what} is still running "
                                        f"(depthnas process {running}), and writes its model "
                                        "when it ends")
            raise FileNotFoundError(f"{path} holds no model yet: its {what} stopped before the "
                                    f"end; finish it with `depthnas {kind} --out "
                                    f"{shlex.quote(str(path))} --resume`")
        raise FileNotFoundError(f"{path} holds no model.safetensors (nor best/model.safetensors)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder (give a model.safetensors, or "
                                "the folder of a search or training run)")
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"{path} is an ONNX export; this needs the model.safetensors it was "
                         "exported from (or its run folder)")
    from depthnas.datasets.io import PHOTO_SUFFIXES  # deferred: OpenCV
    if path.suffix.lower() in PHOTO_SUFFIXES:
        raise ValueError(f"{path} is an image, not a model: give a model.safetensors written by "
                         "depthnas, or its run folder")
    return path


def onnx_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    return path


def check_model_path(path: str | Path) -> None:
    """What `depthnas predict` and `demo` run: an ONNX export, or a model file or run
    folder (`resolve_model_file`). A wrong one is said before the seconds torch and
    onnxruntime take to load."""
    if Path(path).suffix.lower() == ".onnx":
        onnx_file(path)
    else:
        resolve_model_file(path)
