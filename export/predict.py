"""`depthnas predict`: depth maps for one image or a folder of them.

A folder is read non-recursively, files with an image suffix in name order. A file
that cannot be decoded, or whose output name a file predict did not write already
takes, is reported and skipped; the run goes on and ends with a count, so one bad
photo in a thousand does not cost the other 999.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from depthnas.datasets.io import PHOTO_SUFFIXES, hidden
from depthnas.io import check_parent_folders
from depthnas.terminal import listed

from .images import (DEFAULT_COLORMAP, OUTPUT_SUFFIXES, ImageReadError,
                     OutputExistsError, check_colormap, check_outputs_free, fit_stem,
                     one_value, output_paths, read_photo, save_prediction, written_by_depthnas)
from .inference import DepthEstimator


@dataclass
class PredictReport:
    """What `predict_paths` did with each input."""

    written: dict[Path, dict[str, Path]] = field(default_factory=dict)  # input -> outputs
    skipped: list[tuple[Path, str]] = field(default_factory=list)       # input, reason
    flat: list[Path] = field(default_factory=list)  # written, but one value everywhere (`one_value`)


def collect_inputs(path: str | Path, out_dir: str | Path | None = None
                   ) -> tuple[list[Path], list[Path], list[Path]]:
    """(images to predict, images left out to report, depth maps left out). A file is
    taken as given (a bad one is reported later). A folder gives its images but the
    depth maps an earlier predict wrote (their PNGs carry its mark), whatever --out is:
    predicted again they gave depth maps of depth maps. When the folder is also the
    output folder, files named as predict's outputs that it did not write (a sensor's
    `a-depth.png` beside `a.png`) are left out too, and reported."""
    path = Path(path)
    if path.is_file():
        return [path], [], []
    if path.is_dir():
        # a link to a missing photo is taken too, to be reported as unread, not passed over
        found = sorted(p for p in path.iterdir()
                       if (p.is_file() or p.is_symlink() and not p.exists())
                       and p.suffix.lower() in PHOTO_SUFFIXES and not hidden(p.name))
        ours = [p for p in found if p.name.endswith(OUTPUT_SUFFIXES)
                and written_by_depthnas(p, {"png16": p})]
        found = [p for p in found if p not in ours]
        if out_dir is None or Path(out_dir).resolve() != path.resolve():
            return found, [], ours
        named = [p for p in found if p.name.endswith(OUTPUT_SUFFIXES)]
        return [p for p in found if p not in named], named, ours
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
        stem = fit_stem(stem)
        name, k = stem, 1
        while name in taken:
            k += 1
            name = f"{stem}_{k}"
        taken.add(name)
        out[p] = name
    return out


def _shared_name_notes(stems: dict[Path, str], out_dir: str | Path) -> list[str]:
    """What `unique_stems` renamed: inputs of one name (`a.jpg`, `a.webp`) do not get
    `a-depth.*`, which an earlier run, before the second came, may have left."""
    groups: dict[str, list[Path]] = {}
    for p, stem in stems.items():
        if stem != fit_stem(p.stem):
            groups.setdefault(p.stem, []).append(p)
    notes = []
    owner = {stem: p for p, stem in stems.items()}
    for name, paths in groups.items():
        if len(paths) == 1 and sum(q.stem == name for q in stems) == 1:
            # its name is its own, but another input's renamed output took it
            notes.append(f"{paths[0].name}'s outputs are {stems[paths[0]]}-depth.*: "
                         f"{fit_stem(name)}-depth.* are {owner[fit_stem(name)].name}'s")
            continue
        earlier = [q for q in output_paths(out_dir, fit_stem(name)).values() if q.is_file()]
        notes.append(f"{', '.join(p.name for p in paths)} share the name {name!r}: their outputs "
                     f"are {', '.join(stems[p] + '-depth.*' for p in paths)}" +
                     (f"; {Path(out_dir) / fit_stem(name)}-depth.* of an earlier run are left as "
                      "they were" if earlier else ""))
    return notes


_ONE_FOLDER = "(predict reads one folder, not its subfolders)"  # said wherever that matters


def _subfolders_with_images(inputs: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """The subfolders of an --input folder that hold images of their own, which predict
    does not read (it reads one folder): a data set's root names only its images/ (its
    depth/ holds PNGs too); predict's own outputs (an earlier --out) count as none."""
    folder = Path(inputs)
    if not folder.is_dir():
        return []
    out = Path(out_dir).resolve() if out_dir is not None else None

    def has_images(d: Path) -> bool:
        try:
            return d.is_dir() and not hidden(d.name) and d.resolve() != out and \
                any(f.suffix.lower() in PHOTO_SUFFIXES and not f.name.endswith(OUTPUT_SUFFIXES)
                    for f in d.iterdir() if f.is_file())
        except OSError:  # a folder it may not read: no hint from it
            return False
    holding = sorted(d for d in folder.iterdir() if has_images(d))
    if any(d.name == "images" for d in holding):
        holding = [d for d in holding if d.name == "images"]
    return holding


def _subfolder_hint(inputs: str | Path, holding: list[Path]) -> str:
    """The end of "no images": where they are, or that subfolders are not looked in."""
    if holding:
        return (f"; its subfolder{'s' if len(holding) > 1 else ''} {listed(holding)} "
                f"hold{'' if len(holding) > 1 else 's'} some {_ONE_FOLDER}")
    folder = Path(inputs)
    try:
        nested = folder.is_dir() and any(d.is_dir() and not hidden(d.name) for d in folder.iterdir())
    except OSError:
        nested = False
    return f" {_ONE_FOLDER}" if nested else ""


def predict_paths(estimator: DepthEstimator, inputs: str | Path, out_dir: str | Path, *,
                  colormap: str = DEFAULT_COLORMAP, progress: bool = True) -> PredictReport:
    """Depth maps of an image, or of a folder's images, written to `out_dir` as
    NAME-depth.png (colour), NAME-depth16.png and NAME-depth.npy (raw values)."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"--out {out_dir} is a file; it must name a folder for the predictions")
    check_parent_folders(out_dir)
    check_colormap(colormap)
    paths, left_out, earlier = collect_inputs(inputs, out_dir)
    report = PredictReport()
    if earlier and Path(out_dir).resolve() != Path(inputs).resolve():
        tqdm.write(f"note: left out {len(earlier)} depth map(s) an earlier predict wrote in "
                   f"{inputs} ({listed([p.name for p in earlier])})", file=sys.stderr)
    for path in left_out:
        report.skipped.append((path, f"{path}: named as predict's outputs "
                                     f"({', '.join(OUTPUT_SUFFIXES)}) in the --out folder (a "
                                     "depth map; a photo so named is predicted once renamed)"))
        tqdm.write(f"skipped {report.skipped[-1][1]}", file=sys.stderr)
    holding = _subfolders_with_images(inputs, out_dir)
    if not paths:
        raise FileNotFoundError(f"{inputs}: no images ({', '.join(sorted(PHOTO_SUFFIXES))})" +
                                (f"; {len(left_out) + len(earlier)} named as predict's outputs"
                                 if left_out or earlier else "") +
                                _subfolder_hint(inputs, holding))
    made = [f for f in (Path(out_dir), *Path(out_dir).parents) if not f.exists()]  # innermost first
    try:  # made now, not at the first write: a place no folder can be made fails before the work
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out_dir}: the folder cannot be made ({err.strerror or err})") from None
    if holding:  # images beside subfolders of images: those are not read, and said so
        tqdm.write(f"note: not read: the images in {listed(holding)} {_ONE_FOLDER}", file=sys.stderr)
    stems = unique_stems(paths)
    for note in _shared_name_notes(stems, out_dir):
        tqdm.write(f"note: {note}", file=sys.stderr)
    bar = tqdm(paths, desc="predict", unit="img", disable=not progress or len(paths) == 1)
    for path in bar:
        try:
            rgb = read_photo(path)
        except ImageReadError as err:
            report.skipped.append((path, str(err)))
            tqdm.write(f"skipped {err}", file=sys.stderr)
            continue
        try:
            check_outputs_free(out_dir, stems[path])  # before the inference it would waste
            depth = estimator.predict(rgb)
            report.written[path] = save_prediction(depth, out_dir, stems[path], colormap)
            if one_value(depth):
                report.flat.append(path)
        except OutputExistsError as err:
            report.skipped.append((path, str(err)))
            tqdm.write(f"skipped {path}: {err}", file=sys.stderr)
    if not report.written:  # every image skipped: no empty folders left behind
        with contextlib.suppress(OSError):  # one that holds something else stays
            for folder in made:
                folder.rmdir()
    return report
