"""ONNX export of a stand-alone depth model, and its parity check against PyTorch.

The file is self-contained (no `.onnx.data` beside it) and takes what any image
library gives after a divide by 255: float32 RGB in [0, 1], NCHW, with dynamic
batch, height and width. The encoder needs multiples of 32 (its stride): the graph
pads other sizes up with the edge pixels and crops the map back, so every input
gets a map of its own size. ImageNet normalisation is part of the graph, so a user
cannot forget it. `metadata_props` say what the model is and how to feed it.

Exporter choice (measured on torch 2.14.1, 2-core CPU, mobilenetv3_small_050):
both exporters give a graph that matches PyTorch to ~6e-7 at several sizes,
including bilinear/bicubic align_corners=True upsampling. The dynamo exporter
(`torch.export` + `dynamic_shapes`) is PyTorch's maintained path, so `auto` tries
it first; it spends ~30-40 s in symbolic-shape decompositions even for the
smallest model, and needs a batch of 2 in the example input or it specialises
the batch to 1. The legacy TorchScript exporter (`dynamo=False`) takes ~1-2 s and
is deprecated; `auto` falls back to it when the dynamo exporter raises, and
`--exporter legacy` picks it outright where export time matters (the tests).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from depthnas.datasets import IMAGENET_MEAN, IMAGENET_STD
from depthnas.datasets.transforms import MAX_NET_SIZE
from depthnas.io import atomic_write
from depthnas.models import count_parameters, trained_image_size

log = logging.getLogger(__name__)

Exporter = Literal["auto", "dynamo", "legacy"]
DEFAULT_OPSET = 18
MIN_OPSET = 17
# The TorchScript exporter's newest opset; above it torch fails inside the export with
# "Unsupported onnx_opset_version" (or only warns, up to its own ONNX_MAX_OPSET).
LEGACY_MAX_OPSET = getattr(torch.onnx._constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20)
INPUT_NAME = "image"
OUTPUT_NAME = "inverse_depth"
OUTPUT_MEANING = ("relative inverse depth (disparity up to an unknown scale and shift; "
                  "larger = nearer), float32 [batch, 1, height, width]")
INPUT_MEANING = ("float32 RGB in [0, 1], NCHW [batch, 3, height, width], any height and width "
                 "(the network runs at the next multiples of 32, edge pixels repeated, and the "
                 "map is cropped back); ImageNet mean/std normalisation is inside the graph")
PARITY_RTOL = 1e-4
_MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit for one self-contained file


class NormalizedDepthModel(nn.Module):
    """[0,1] RGB in, the model's output out: normalisation baked into the graph, and
    any height and width taken. A file run on its own is fed whatever size a user has;
    without the pad a shape check traced once was gone from the graph, and 63x63 came
    back as a 64x64 map, 65x65 as an onnxruntime broadcast error."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        # Not "mean"/"std": the dynamo exporter also names values after ops, and an
        # unoptimised export with a buffer called "mean" had a duplicate name.
        self.register_buffer("imagenet_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("imagenet_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2], image.shape[-1]
        x = (image - self.imagenet_mean) / self.imagenet_std
        # bottom and right, so the crop below is the input's own pixels; 0 at multiples of 32
        x = F.pad(x, (0, (-w) % 32, 0, (-h) % 32), mode="replicate")
        return self.net(x)[..., :h, :w]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    exporter: str          # the exporter that produced the file: "dynamo" | "legacy"
    metadata: dict[str, str]
    replaced: str | None = None  # the architecture of the earlier export written over
    parity: tuple["Parity", ...] = ()  # check=True: the checks the file passed before it was written


@dataclass(frozen=True)
class Parity:
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float         # max |onnx - torch| / max |torch|
    ref_max: float         # max |torch|: 0 means the comparison proves little

    @property
    def ok(self) -> bool:
        return self.max_rel <= PARITY_RTOL


def load_for_export(model_path: str | Path, arch: str | None = None
                    ) -> tuple[NormalizedDepthModel, dict[str, Any], Path]:
    """The model file's network wrapped for export; `arch`, if given, must match it."""
    from .inference import load_torch_model
    net, meta, path = load_torch_model(model_path, "cpu")
    # where the graph is traced and checked: a file without it (re-saved by hand) was
    # a KeyError traceback, one at a size the network cannot take a torch error
    h, w = trained_image_size(meta, path)
    if h % 32 or w % 32 or h < 32 or w < 32:
        raise ValueError(f"{path}: metadata image_size [{h}, {w}] is not a size the network "
                         "takes (multiples of 32)")
    meta = {**meta, "image_size": [h, w]}
    if arch:
        from depthnas.spaces import get_space
        space = get_space(meta["space"])
        try:
            given = space.to_string(space.parse(arch))
        except ValueError as err:  # another space's string: said with the file and the flag
            raise ValueError(f"{path}: holds {meta['arch']}, but --arch {arch} ({err}); not "
                             "exported (a model file exports its own architecture: drop --arch, "
                             "or arch=)") from None
        # a twin (another string of the same model: a search's best read from the store
        # under its twin's string) is the model the file holds
        if given != meta["arch"] and space.function_key(space.parse(given)) != \
                space.function_key(space.from_string(meta["arch"])):
            raise ValueError(f"{path}: holds {meta['arch']}, but --arch says {given}; not "
                             "exported (a model file exports its own architecture: drop --arch, or arch=)")
    return NormalizedDepthModel(net).eval(), meta, path


def onnx_metadata(meta: dict[str, Any], model: nn.Module, exporter: str,
                  opset: int) -> dict[str, str]:
    from depthnas.models import meta_ignores_input
    h, w = (int(v) for v in meta["image_size"])
    return {
        "format": "depthnas-onnx/1",
        "arch": str(meta["arch"]),
        "space": str(meta["space"]),
        "backbone": str(meta.get("backbone", "none")),  # a space of the user's may have none
        "features": str(meta.get("features", "")),
        "image_size": json.dumps([h, w]),
        "input": INPUT_MEANING,
        # Named so that nobody normalises twice: the graph already applies these.
        "applied_in_graph_mean": json.dumps(list(IMAGENET_MEAN)),
        "applied_in_graph_std": json.dumps(list(IMAGENET_STD)),
        "output": OUTPUT_MEANING,
        "parameters": str(count_parameters(model)),
        "ignores_input": json.dumps(meta_ignores_input(meta)),  # predict and the demo say it
        "exporter": exporter,
        "opset": str(opset),
    }


class ParityError(ValueError):
    """check=True: the new file disagreed with PyTorch, and was not written."""

    def __init__(self, message: str, results: list["Parity"]):
        super().__init__(message)
        self.results = results


def parity_failure(results: list["Parity"], out: str | Path,
                   model_path: str | Path) -> ParityError | None:
    if all(r.ok for r in results):
        return None
    return ParityError(f"{out} would differ from {model_path} by more than {PARITY_RTOL:g} "
                       "relative: not written", results)


def export_onnx(model_path: str | Path, out: str | Path, *, arch: str | None = None,
                exporter: Exporter = "auto", opset: int = DEFAULT_OPSET,
                check: bool = False) -> ExportResult:
    """Write one self-contained ONNX file; returns where, and which exporter made it.
    check=True runs `check_parity` on the new file before it takes `out`'s name: one
    that fails raises ParityError and leaves an earlier export there as it was."""
    import onnx
    if exporter not in typing.get_args(Exporter):
        raise ValueError(f"unknown exporter {exporter!r}; use one of {', '.join(typing.get_args(Exporter))}")
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old; use {MIN_OPSET} or newer")
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ValueError(f"opset {opset} is newer than this onnx package knows ({newest})")
    if exporter == "legacy" and opset > LEGACY_MAX_OPSET:
        raise ValueError(f"opset {opset}: the legacy exporter writes opsets up to "
                         f"{LEGACY_MAX_OPSET}; choose one of those, or --exporter dynamo (exporter='dynamo')")
    replaced = earlier_export(Path(out))  # before the work: a file of the user's is refused
    model, meta, path = load_for_export(model_path, arch)
    h, w = (int(v) for v in meta["image_size"])
    # Batch 2: torch.export specialises a dimension whose example size is 0 or 1.
    # 64 px a side at least, so that no side of the example is a special size either.
    example = torch.rand(2, 3, max(h, 64), max(w, 64), generator=torch.Generator().manual_seed(0))

    proto, used = None, exporter
    if exporter in ("auto", "dynamo"):
        try:
            proto, used = _export_dynamo(model, example, opset), "dynamo"
        except Exception as err:  # any failure of torch.export / the ONNX translation
            if exporter == "dynamo" or opset > LEGACY_MAX_OPSET:
                raise ExportError(f"{path}: the dynamo ONNX exporter failed ({_first_line(err)})" + (
                    "; --exporter legacy (exporter='legacy') may work" if opset <= LEGACY_MAX_OPSET else
                    f" and the legacy exporter, tried next otherwise, writes opsets up to "
                    f"{LEGACY_MAX_OPSET}") + " (`depthnas -v export ...` shows torch's whole error)") from err
            log.warning("dynamo ONNX exporter failed (%s); using the legacy exporter",
                        _first_line(err))
    if proto is not None and _opset_of(proto) != opset:
        # torch's exporter builds at its own lowest opset (18) and converts down; a
        # conversion that fails leaves the model at 18, which a runtime of 17 rejects
        wrote = _opset_of(proto)
        if exporter == "dynamo" or opset > LEGACY_MAX_OPSET:
            raise ValueError(f"opset {opset}: the dynamo exporter could not convert this model to "
                             f"it (it wrote opset {wrote}); use --opset {wrote} (opset={wrote})" +
                             (", or --exporter legacy (exporter='legacy')" if opset <= LEGACY_MAX_OPSET else ""))
        log.info("the dynamo exporter wrote opset %d, not %d; using the legacy exporter", wrote, opset)
        proto = None
    if proto is None:
        proto, used = _export_legacy(model, example, opset), "legacy"

    _name_dynamic_dims(proto)
    _lowest_ir_version(proto)
    props = onnx_metadata(meta, model, used, _opset_of(proto))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    proto.doc_string = f"depthnas {props['arch']}: {OUTPUT_MEANING}"
    if proto.ByteSize() > _MAX_PROTO_BYTES:
        raise ValueError(f"{path}: the model is over 2 GB and cannot be one self-contained "
                         "ONNX file")
    onnx.checker.check_model(proto)
    parity: list[Parity] = []

    def write(tmp: str) -> None:
        onnx.save_model(proto, tmp, save_as_external_data=False)
        if check:
            parity.extend(check_parity(tmp, path, shown=out))
            failed = parity_failure(parity, out, path)
            if failed:
                raise failed
    out = atomic_write(out, write)
    return ExportResult(Path(out), used, props, replaced, tuple(parity))


def earlier_export(out: Path) -> str | None:
    """The architecture of the depthnas export at `out`, which exporting again replaces
    (None: no file there). Any other file is refused, as predict refuses to write over
    a depth map it did not write: a model of the user's may bear the name."""
    if not out.exists():
        return None
    import onnx
    try:
        props = {p.key: p.value for p in onnx.load(str(out), load_external_data=False).metadata_props}
    except Exception:  # protobuf's DecodeError and kin: not an ONNX model at all
        props = {}
    if props.get("format", "").startswith("depthnas-onnx/"):
        return props.get("arch", "?")
    raise FileExistsError(f"--out {out} exists and is not a depthnas export: not overwritten; "
                          "delete it, or export to another --out")


class ExportError(ValueError):
    """A model torch could not export; the message says which and what to try."""


def _first_line(err: Exception) -> str:
    """`Type: first line` of an exporter's error (torch's run to a hundred lines,
    with terminal colour codes)."""
    lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", str(err)).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0].strip()}" if lines else type(err).__name__


def _lowest_ir_version(proto) -> None:
    """torch's dynamo exporter marks its files with the newest IR version it knows
    (10), which onnxruntime before 1.18 refuses, though an opset-18 graph needs only
    IR 8. The file is marked with the lowest version its opsets allow (a graph with
    local functions keeps its own: an IR 10 function may use overloads)."""
    import onnx
    if not proto.functions:
        lowest = onnx.helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
        proto.ir_version = min(proto.ir_version, lowest)


def _opset_of(proto) -> int:
    return max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx"))


def _export_dynamo(model: nn.Module, example: torch.Tensor, opset: int):
    from torch.export import Dim
    batch = Dim("batch", min=1, max=1024)
    # any size up to MAX_NET_SIZE px a side: NormalizedDepthModel pads to multiples of 32
    height, width = Dim("height", min=1, max=MAX_NET_SIZE), Dim("width", min=1, max=MAX_NET_SIZE)
    # dozens of INFO lines per pass; and below opset 18 a notice, and a traceback if
    # the conversion down fails, which export_onnx sees in the opset written
    with _quiet_loggers("onnx_ir", "onnxscript"), \
            _quiet_loggers("onnxscript.version_converter", "torch.onnx._internal.exporter._compat",
                           level=logging.CRITICAL):
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=opset, external_data=False,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"image": {0: batch, 2: height, 3: width}},
            # Keep the ONNX optimizer on (the default): it constant-folds and drops the
            # hundreds of nodes the decompositions leave unused.
            optimize=True, verbose=False, report=False)
    return program.model_proto


@contextlib.contextmanager
def _quiet_loggers(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), level))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_legacy(model: nn.Module, example: torch.Tensor, opset: int):
    buf = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # Deprecation notice of this exporter, and TracerWarnings from the shape check
        # in DepthNet.encode, evaluated once at trace time: it holds for any input,
        # which the graph pads to multiples of 32 first.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                          do_constant_folding=True)
    import onnx
    return onnx.load_model_from_string(buf.getvalue())


def _name_dynamic_dims(proto) -> None:
    """Call the dynamic dims batch/height/width on the input and output.

    The dynamo exporter names them after its symbols ('s0', or
    '16*TruncToInt(2.0*ToFloat(s39))' for the output); people reading the model (and
    onnxruntime's shape checks) are better served by saying input and output share
    them. Intermediate value_info is dropped: it still uses the old symbols and is
    only a hint that onnxruntime recomputes.
    """
    names = {0: "batch", 2: "height", 3: "width"}
    for value in list(proto.graph.input) + list(proto.graph.output):
        for i, dim in enumerate(value.type.tensor_type.shape.dim):
            if i in names:
                dim.ClearField("dim_value")
                dim.dim_param = names[i]
    del proto.graph.value_info[:]


def _check_inputs(shape: tuple[int, int, int, int], rng: np.random.Generator) -> torch.Tensor:
    from depthnas.datasets.render import render_scene
    b, _, h, w = shape
    images = [render_scene(rng, h, w)[0] / 255.0 if i % 2 == 0 else rng.random((h, w, 3))
              for i in range(b)]
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32))


def check_parity(onnx_path: str | Path, model_path: str | Path,
                 shapes: list[tuple[int, int, int, int]] | None = None,
                 seed: int = 0, *, shown: str | Path | None = None) -> list[Parity]:
    """Run onnxruntime and PyTorch on the same inputs and compare: rendered scenes,
    images of the kind depth models are trained on (on noise alone a briefly trained
    one can output 0 everywhere, and equal zeros prove nothing), and in a batch's odd
    places uniform noise, the input furthest from training. `shown`: the name errors
    give the file (export checks it under a temporary one)."""
    import onnxruntime as ort
    model, meta, _ = load_for_export(model_path)
    if shapes is None:
        h, w = (int(v) for v in meta["image_size"])
        # Two sizes, the second with another batch and aspect ratio (the dynamic axes),
        # and off the multiples of 32: the graph's own pad and crop
        shapes = [(1, 3, h, w), (2, 3, h + 63, w + 33)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    results = []
    for shape in shapes:
        x = _check_inputs(shape, rng)
        with torch.inference_mode():
            ref = model(x).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        if got.shape != ref.shape:
            raise ValueError(f"{shown or onnx_path}: output shape {got.shape} for input {shape}, "
                             f"PyTorch gives {ref.shape}")
        if not np.isfinite(ref).all():  # not the two backends' disagreement: the model's own
            raise ValueError(f"{model_path}: the model itself outputs NaN or inf (input {shape}; "
                             "a damaged model file?), so there is no parity to check")
        diff = float(np.abs(got.astype(np.float64) - ref).max())
        scale = float(np.abs(ref).max())
        rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
        results.append(Parity(tuple(shape), diff, rel, scale))
    return results
