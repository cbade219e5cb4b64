"""`depthnas export` and `depthnas predict` (registered by depthnas.cli)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthnas.io import path_arg
from depthnas.terminal import listed, show_progress


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export a trained model to one self-contained ONNX file")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=path_arg, help="search run (uses best/model.safetensors) or training folder "
                                   "(its model.safetensors)")
    src.add_argument("--checkpoint", "--model", type=path_arg,
                     help="a model.safetensors written by search or train (--model, as predict "
                          "and demo name it, is the same)")
    # `depthnas export runs/x` as other tools' export commands take it; --run and
    # --checkpoint resolve the same way, so the positional stands for either
    src.add_argument("model", nargs="?", type=path_arg, default=None,
                     help="a run or training folder or a model.safetensors (as --run or --checkpoint)")
    e.add_argument("--arch", help="architecture string or JSON file; optional, the model "
                                  "file holds it (given, it must match)")
    e.add_argument("--out", type=path_arg, help="ONNX file to write (default: model.onnx beside the model)")
    e.add_argument("--check", action="store_true",
                   help="compare onnxruntime with PyTorch on rendered scenes and noise at "
                        "two input sizes; fail above 1e-4 relative difference, or where "
                        "the model outputs 0 for every input (nothing to compare)")
    e.add_argument("--exporter", choices=("auto", "dynamo", "legacy"), default="auto",
                   help="auto: torch.export-based (dynamo) exporter, falling back to the "
                        "legacy TorchScript one if it fails (or cannot write the --opset asked for); legacy is a few times faster")
    e.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18, >= 17)")
    e.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="depth maps for an image or a folder of images")
    p.add_argument("--model", required=True, type=path_arg,
                   help="model.onnx, a model.safetensors, or a run folder")
    p.add_argument("--input", required=True, type=path_arg, help="an image or a folder of images")
    p.add_argument("--out", required=True, type=path_arg, help="output folder")
    p.add_argument("--device", default="auto",
                   help="auto (default: CUDA when there is one) | cpu | cuda | cuda:N (ONNX models: "
                        "onnxruntime's CUDA provider, when its build has one)")
    p.add_argument("--colormap", default="inferno", help="matplotlib colormap of the preview")
    p.add_argument("--net-size", type=int, default=None,
                   help="longer side the network sees, rounded to a multiple of 32 (default: "
                        "the training size's); larger gives finer maps of large photos, slower")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)


def cmd_export(args: argparse.Namespace) -> int:
    from depthnas.arch_arg import naming_arch_file, read_arch_arg
    from depthnas.io import check_parent_folders
    from depthnas.model_files import resolve_model_file
    model_file = resolve_model_file(args.run or args.checkpoint or args.model)
    out = Path(args.out) if args.out else model_file.with_suffix(".onnx")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name the ONNX file to write (e.g. {out / 'model.onnx'})")
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"--out {out}: an ONNX file must end in .onnx (predict and the demo "
                         "choose onnxruntime by that suffix)")
    check_parent_folders(out)

    from depthnas.checkpoint import checkpoint_note  # torch: after the checks above
    from depthnas.models import check_depth_model
    check_depth_model(model_file)  # a super-net's checkpoint: before the export's work

    from .onnx_export import DEFAULT_OPSET, ParityError, export_onnx
    arch, source = read_arch_arg(args.arch) if args.arch else (None, None)
    try:
        with naming_arch_file(source):
            result = export_onnx(model_file, out, arch=arch, exporter=args.exporter,
                                 opset=DEFAULT_OPSET if args.opset is None else args.opset,
                                 check=args.check)
    except ParityError as err:
        _print_parity(err.results)
        kept = " (the earlier export there is kept)" if out.exists() else ""
        print(f"error: {err}{kept}", file=sys.stderr)
        return 1
    if result.replaced:
        print(f"note: replaced {result.path}, an earlier export ({result.replaced})")
    size_mb = result.path.stat().st_size / 2**20
    print(f"{result.metadata['arch']} -> {result.path} ({size_mb:.1f} MB, "
          f"{result.exporter} exporter, opset {result.metadata['opset']})")
    note = checkpoint_note(out, bool(args.out))  # of a file written: not before a refusal
    if note:
        print(note)
    if result.metadata.get("ignores_input") == "true":
        from .inference import ignores_input_warning
        print(f"warning: {ignores_input_warning(result.metadata['arch'])}", file=sys.stderr)
    if not args.check:
        return 0
    _print_parity(result.parity)
    if all(r.ref_max == 0 for r in result.parity):  # equal zeros prove nothing of the graph
        print(f"error: parity unproven: {model_file} outputs 0 everywhere for every check "
              f"input (rendered scenes and noise), so there is nothing to compare; "
              f"{result.path} is written. The model learned nothing its final ReLU lets "
              "through: train it longer", file=sys.stderr)
        return 1
    return 0


def _print_parity(results) -> None:
    for r in results:
        shape = "x".join(map(str, r.shape))
        print(f"parity {shape:>14}: max abs {r.max_abs:.3e}  relative {r.max_rel:.3e}  "
              f"{'ok' if r.ok else 'FAIL'}")


def cmd_predict(args: argparse.Namespace) -> int:
    from depthnas.model_files import check_model_path

    from .images import check_colormap
    check_colormap(args.colormap)  # before a model loads or a folder is made
    check_model_path(args.model)

    from .inference import ignores_input_warning, load_estimator  # torch, onnxruntime: after the checks
    from .predict import predict_paths
    estimator = load_estimator(args.model, device=args.device, net_size=args.net_size)
    if estimator.info.ignores_input:
        print(f"warning: {ignores_input_warning(estimator.info.arch)}", file=sys.stderr)
    report = predict_paths(estimator, args.input, args.out, colormap=args.colormap,
                           progress=show_progress(args.no_progress))
    print(f"{len(report.written)} image(s) -> {args.out}; {len(report.skipped)} skipped")
    if report.flat:
        print(f"warning: {len(report.flat)} of {len(report.written)} depth map(s) hold one value "
              f"everywhere ({listed([p.name for p in report.flat])}): the model saw no depth in "
              "these photos. A briefly trained model does this, or one trained on other "
              "images (the quick preset's synthetic rooms); a longer search or training, on "
              "data like these photos, gives it something to see", file=sys.stderr)
    return 0 if report.written else 1

