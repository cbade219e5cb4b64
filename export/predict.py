"""`depthnas predict`: depth maps for one image or a folder of them.

A folder is read non-recursively, files with an image suffix in name order. A file
that cannot be decoded, or whose output name a file predict did not write already
takes, is reported and skipped; the run goes on and ends with a count, so one bad
photo in a thousand does not cost the other 999.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from depthnas.io import check_parent_folders

from .images import (DEFAULT_COLORMAP, IMAGE_SUFFIXES, OUTPUT_SUFFIXES, ImageReadError,
                     OutputExistsError, check_colormap, check_outputs_free, read_rgb,
                     save_prediction)
from .inference import DepthEstimator


@dataclass
class PredictReport:
    written: dict[Path, dict[str, Path]] = field(default_factory=dict)  # input -> outputs
    skipped: list[tuple[Path, str]] = field(default_factory=list)       # input, reason


def collect_inputs(path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """A file is taken as given (a bad one is reported later); a folder gives its images,
    except, when it is also the output folder, the depth maps predict wrote there."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if out_dir is not None and Path(out_dir).resolve() == path.resolve():
            found = [p for p in found if not p.name.endswith(OUTPUT_SUFFIXES)]
        return found
    raise FileNotFoundError(f"input not found: {path}")


def unique_stems(paths: list[Path]) -> dict[Path, str]:
    """Output name stems; `a.jpg` and `a.png` in one folder get `a_jpg` and `a_png`,
    and names still alike (`a.jpg`, `a.JPG`) a counter, so no output overwrites another."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    out: dict[Path, str] = {}
    taken: set[str] = set()
    for p in paths:
        stem = p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}"
        name, k = stem, 1
        while name in taken:
            k += 1
            name = f"{stem}_{k}"
        taken.add(name)
        out[p] = name
    return out


def predict_paths(estimator: DepthEstimator, inputs: str | Path, out_dir: str | Path, *,
                  colormap: str = DEFAULT_COLORMAP, progress: bool = True) -> PredictReport:
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"--out {out_dir} is a file; it must name a folder for the predictions")
    check_parent_folders(out_dir)
    check_colormap(colormap)
    paths = collect_inputs(inputs, out_dir)
    if not paths:
        raise FileNotFoundError(f"{inputs}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    stems = unique_stems(paths)
    report = PredictReport()
    bar = tqdm(paths, desc="predict", unit="img", disable=not progress or len(paths) == 1)
    for path in bar:
        try:
            rgb = read_rgb(path)
        except ImageReadError as err:
            report.skipped.append((path, str(err)))
            tqdm.write(f"skipped {err}", file=sys.stderr)
            continue
        try:
            check_outputs_free(out_dir, stems[path])  # before the inference it would waste
            depth = estimator.predict(rgb)
            report.written[path] = save_prediction(depth, out_dir, stems[path], colormap)
        except OutputExistsError as err:
            report.skipped.append((path, str(err)))
            tqdm.write(f"skipped {path}: {err}", file=sys.stderr)
    return report
