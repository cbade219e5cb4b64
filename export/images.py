"""Reading photos and writing depth maps: shared by `depthnas predict` and the demo.

Per prediction three files are written, all at the input's original size:

* ``<stem>-depth.png``   the prediction colourised (inferno: bright = near), for people;
* ``<stem>-depth16.png`` 16-bit grey PNG, min-max scaled to the full 0..65535 range
  (the output is *relative* inverse depth, so its absolute values mean nothing and
  scaling keeps all the precision a 16-bit file can hold);
* ``<stem>-depth.npy``   the raw float32 network output, for anyone who wants numbers.
"""
from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from depthnas.datasets.io import decode_bgr8, to_uint8

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
DEFAULT_COLORMAP = "inferno"


class ImageReadError(ValueError):
    """A file that is not a readable image; the message names the file."""


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode any image PIL reads into uint8 HxWx3 RGB, EXIF rotation applied.

    Alpha is dropped; 16-bit images (grey or colour) and float grey images are
    brought to 8 bits instead of being clipped at 255 or cut to their high byte
    (what a plain ``convert("RGB")`` does), integers by the bit depth their values
    use (a 12-bit image in a 16-bit file by 4095, see `to_uint8`).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # A decompression-bomb warning is an error here: such a file is rejected.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if _is_16_bit_colour(im):  # PIL keeps only the high byte of each channel
                    rgb = cv2.cvtColor(decode_bgr8(path.read_bytes(), path), cv2.COLOR_BGR2RGB)
                    out = Image.fromarray(rgb)
                    out.info["exif"] = im.getexif().tobytes()  # for exif_transpose below
                    return np.asarray(ImageOps.exif_transpose(out))
                return _to_rgb8(ImageOps.exif_transpose(im))
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        # PIL raises UnidentifiedImageError (an OSError) for non-images, OSError or
        # SyntaxError for truncated/corrupt files.
        raise ImageReadError(f"{path}: not a readable image ({err})") from err


def _is_16_bit_colour(im: Image.Image) -> bool:
    """A 16-bit-per-channel colour PNG or TIFF (PIL opens it as 8-bit RGB)."""
    if im.mode not in ("RGB", "RGBA") or not im.tile:
        return False
    args = im.tile[0].args
    rawmode = args if isinstance(args, str) else (args[0] if args else "")
    return isinstance(rawmode, str) and ";16" in rawmode


def _to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        arr = np.asarray(im)
        if im.mode == "F":
            arr = arr.astype(np.float64)
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
            grey = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        else:
            grey = to_uint8(arr)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def _normalise01(depth: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] over the finite values; a constant map becomes all zeros."""
    d = np.asarray(depth, dtype=np.float64)
    finite = np.isfinite(d)
    if not finite.any():
        return np.zeros(d.shape, np.float64)
    lo, hi = float(d[finite].min()), float(d[finite].max())
    if hi <= lo:
        return np.zeros(d.shape, np.float64)
    return np.clip(np.where(finite, (d - lo) / (hi - lo), 0.0), 0.0, 1.0)


@lru_cache(maxsize=8)
def _lut(name: str) -> np.ndarray:
    from matplotlib import colormaps  # deferred: matplotlib import is slow
    try:
        cmap = colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colormap {name!r} (any matplotlib colormap name)") from None
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def check_colormap(name: str) -> None:
    """ValueError for a name matplotlib does not know (before any work is done)."""
    _lut(name)


def colorize(depth: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """uint8 HxWx3 RGB visualisation of a relative inverse-depth map (bright = near)."""
    idx = np.round(_normalise01(depth) * 255.0).astype(np.uint8)
    return _lut(colormap)[idx]


def to_uint16(depth: np.ndarray) -> np.ndarray:
    """Min-max scaled to the full 0..65535 range (not truncated)."""
    return np.round(_normalise01(depth) * 65535.0).astype(np.uint16)


OUTPUT_SUFFIXES = ("-depth.png", "-depth16.png", "-depth.npy")  # what a prediction writes


def output_paths(out_dir: str | Path, stem: str) -> dict[str, Path]:
    return {key: Path(out_dir) / f"{stem}{suffix}"
            for key, suffix in zip(("color", "png16", "npy"), OUTPUT_SUFFIXES)}


def save_prediction(depth: np.ndarray, out_dir: str | Path, stem: str,
                    colormap: str = DEFAULT_COLORMAP) -> dict[str, Path]:
    """Write the colour PNG, the 16-bit PNG and the raw .npy; returns their paths."""
    paths = output_paths(out_dir, stem)
    paths["color"].parent.mkdir(parents=True, exist_ok=True)
    depth = np.asarray(depth, dtype=np.float32)
    _imwrite(paths["color"], cv2.cvtColor(colorize(depth, colormap), cv2.COLOR_RGB2BGR))
    _imwrite(paths["png16"], to_uint16(depth))
    np.save(paths["npy"], depth)
    return paths


def _imwrite(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not write the image")
