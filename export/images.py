"""Reading photos and writing depth maps: shared by `depthnas predict` and the demo.

Per prediction three files are written, all at the input's original size:

* ``<stem>-depth.png``   the prediction colourised (inferno: bright = near), for people;
* ``<stem>-depth16.png`` 16-bit grey PNG, min-max scaled to the full 0..65535 range
  (the output is *relative* inverse depth, so its absolute values mean nothing and
  scaling keeps all the precision a 16-bit file can hold);
* ``<stem>-depth.npy``   the raw float32 network output, for anyone who wants numbers.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
import zlib
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from depthnas.datasets.io import TIFF_MAGIC, decode_bgr8, float_to_uint8, quiet_opencv, to_uint8
from depthnas.io import atomic_write

DEFAULT_COLORMAP = "inferno"


class ImageReadError(ValueError):
    """A file that is not a readable image. The message names the file; `why` is the
    rest of it, which the demo shows under the upload's own name (the server's copy of
    it lies in a temporary folder)."""

    def __init__(self, path: str | Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path, self.why = Path(path), why

    def __reduce__(self):  # rebuilt from both fields, as a worker process sends it back
        return type(self), (self.path, self.why)


def read_photo(path: str | Path) -> np.ndarray:
    """Decode any image PIL reads into uint8 HxWx3 RGB, EXIF rotation applied.

    A photo to predict on is turned upright as its camera meant it; a training image
    is not (`depthnas.datasets.io.read_rgb`): its depth map was made on the stored grid.

    Alpha is dropped; 16-bit images (grey or colour) and float grey images are
    brought to 8 bits instead of being clipped at 255 or cut to their high byte
    (what a plain ``convert("RGB")`` does), integers by the bit depth their values
    use (a 12-bit image in a 16-bit file by 4095, see `to_uint8`).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # These are the user's own files (the demo checks uploads first): a photo
            # over PIL's warning level, 89 M pixels (a 100 MP camera, a panorama), is
            # read; only PIL's error level, twice that, stops it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # the header alone: a pixel bomb stops here
                if _pil_misreads(im):  # a signed or 32-bit integer TIFF: PIL wraps its values
                    rgb = _opencv_tiff(path)
                    if rgb is not None:
                        return rgb
                if _is_16_bit_colour(im):  # PIL keeps only the high byte of each channel
                    rgb = cv2.cvtColor(decode_bgr8(path.read_bytes(), path), cv2.COLOR_BGR2RGB)
                    out = Image.fromarray(rgb)
                    out.info["exif"] = im.getexif().tobytes()  # for exif_transpose below
                    return np.asarray(ImageOps.exif_transpose(out))
                if im.format == "TIFF" and im.getexif().get(0x0112, 1) != 1:
                    # Pillow memory-maps an uncompressed one-band TIFF from a file name
                    # and then drops its Orientation tag unapplied; from bytes it turns it
                    with Image.open(io.BytesIO(path.read_bytes())) as tiff:
                        return _to_rgb8(ImageOps.exif_transpose(tiff))
                return _to_rgb8(ImageOps.exif_transpose(im))
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except Image.DecompressionBombError as err:
        raise ImageReadError(path, f"too many pixels to read ({err})") from err
    except (OSError, ValueError, SyntaxError, cv2.error) as err:
        # PIL raises UnidentifiedImageError (an OSError) for non-images, OSError or
        # SyntaxError for truncated/corrupt files; OpenCV (16-bit colour) cv2.error.
        if path.is_file() and path.stat().st_size == 0:  # a copy that failed, say
            raise ImageReadError(path, "the file is empty (0 bytes)") from None
        try:  # a float or signed colour TIFF, which PIL cannot open
            rgb = _opencv_tiff(path) if path.is_file() else None
        except OSError as why:
            raise ImageReadError(path, f"not a readable image ({why})") from err
        if rgb is None:
            raise ImageReadError(path, f"not a readable image ({err})") from err
        return rgb


def _pil_misreads(im: Image.Image) -> bool:
    """A TIFF of signed integers, or of 32-bit unsigned ones: PIL opens it, but reads
    -1 as 255 and 2**31 as negative (SampleFormat 2 is signed, 3 float)."""
    if im.format != "TIFF":
        return False
    tags = getattr(im, "tag_v2", {})
    formats, bits = tags.get(339, 1), tags.get(258, 8)
    formats = formats if isinstance(formats, tuple) else (formats,)
    bits = bits if isinstance(bits, tuple) else (bits,)
    return 2 in formats or (max(bits) >= 32 and 3 not in formats)


def _opencv_tiff(path: Path) -> np.ndarray | None:
    """A TIFF of float, signed or 32-bit pixels as uint8 RGB, converted as a training
    image is (`depthnas.datasets.io.decode_bgr8`); None for any other file. PIL cannot
    open such colour TIFFs and wraps grey int8 and uint32 values around. OpenCV's TIFF
    decoder applies its Orientation tag, as `read_photo` does for every photo."""
    with open(path, "rb") as f:
        if f.read(4) not in TIFF_MAGIC:
            return None
    try:
        with quiet_opencv():
            img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as why:  # a header OpenCV refuses (a width of millions, say)
        raise ImageReadError(path, f"not a readable image ({why.err or why})") from None
    if img is None or img.dtype in (np.uint8, np.uint16):  # PIL reads these as training does
        return None
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        return None  # two bands, say: PIL says what it makes of them
    img = np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, 2::-1]
    try:
        return np.ascontiguousarray(float_to_uint8(img) if img.dtype.kind == "f" else to_uint8(img))
    except ValueError as why:  # float_to_uint8: no finite value
        raise ImageReadError(path, f"not a readable image ({why})") from None


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
            grey = float_to_uint8(arr)
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


def one_value(depth: np.ndarray) -> bool:
    """A map of one value everywhere (or of none finite): the model saw no depth in the
    photo. A briefly trained model does this, or one shown photos unlike its training
    images (a dead final ReLU outputs 0): its PNGs are one flat colour."""
    d = np.asarray(depth, dtype=np.float64)
    finite = d[np.isfinite(d)]
    if finite.size == 0:
        return True
    if d.size == 1:  # a one-pixel photo's map has one value, whatever the model
        return False
    lo, hi = float(finite.min()), float(finite.max())
    return hi - lo <= 1e-6 * max(abs(lo), abs(hi), 1e-12)


def to_uint16(depth: np.ndarray) -> np.ndarray:
    """Min-max scaled to the full 0..65535 range (not truncated)."""
    return np.round(_normalise01(depth) * 65535.0).astype(np.uint16)


OUTPUT_SUFFIXES = ("-depth.png", "-depth16.png", "-depth.npy")  # what a prediction writes


# A file name stops at 255 bytes; an output adds "-depth16.png" to its stem, and the
# temporary file it is written to first adds more.
_MAX_STEM_BYTES = 200


def fit_stem(stem: str) -> str:
    """`stem`, or for one too long to name an output a prefix of it and a hash of the
    whole: before, one such photo stopped the run with "File name too long"."""
    raw = os.fsencode(stem)  # as the file system stores it: a name that is not UTF-8
    if len(raw) <= _MAX_STEM_BYTES:  # (an old zip, a camera) must not stop the run
        return stem
    prefix, size = "", 0
    for ch in stem:  # whole characters: a cut through a UTF-8 sequence is no name
        size += len(os.fsencode(ch))
        if size > _MAX_STEM_BYTES - 20:
            break
        prefix += ch
    return f"{prefix}_{hashlib.sha256(raw).hexdigest()[:16]}"


def output_paths(out_dir: str | Path, stem: str) -> dict[str, Path]:
    return {key: Path(out_dir) / f"{stem}{suffix}"
            for key, suffix in zip(("color", "png16", "npy"), OUTPUT_SUFFIXES)}


# A tEXt chunk in every PNG predict writes: "<stem>-depth.png" is also how RGB-D
# folders name their sensor depth, and only a file carrying it is overwritten.
_MARK = b"tEXt" + b"Software\0depthnas"
_MARK_CHUNK = len(_MARK[4:]).to_bytes(4, "big") + _MARK + zlib.crc32(_MARK).to_bytes(4, "big")
_AFTER_IHDR = 8 + 25  # the PNG signature, then the IHDR chunk (4 + 4 + 13 + 4 bytes)


class OutputExistsError(ValueError):
    """An output name is taken by a file predict did not write; the message names it."""


def written_by_depthnas(path: Path, paths: dict[str, Path]) -> bool:
    """Whether `path`, one of a prediction's `paths`, is an earlier prediction's output:
    a PNG carries the mark; a .npy counts when the 16-bit PNG written before it does."""
    png = path if path.suffix.lower() == ".png" else paths["png16"]
    try:
        with open(png, "rb") as fh:
            head = fh.read(_AFTER_IHDR + len(_MARK_CHUNK))
    except OSError:
        return False
    return head[_AFTER_IHDR:] == _MARK_CHUNK


def check_outputs_free(out_dir: str | Path, stem: str) -> None:
    """OutputExistsError when a file predict did not write takes one of the names."""
    paths = output_paths(out_dir, stem)
    foreign = [p for p in paths.values() if p.exists() and not written_by_depthnas(p, paths)]
    if foreign:
        raise OutputExistsError(f"{foreign[0]} exists and carries no depthnas mark (a file of "
                                "yours, or a prediction of a depthnas before the mark): not "
                                "overwritten; delete it, or predict into another --out folder")


def save_prediction(depth: np.ndarray, out_dir: str | Path, stem: str,
                    colormap: str = DEFAULT_COLORMAP) -> dict[str, Path]:
    """Write the colour PNG, the 16-bit PNG and the raw .npy, each whole or not at
    all; returns their paths. A name taken by a file predict did not write (a
    sensor's depth map, say) is an OutputExistsError, and nothing is written."""
    check_outputs_free(out_dir, stem)
    paths = output_paths(out_dir, stem)
    depth = np.asarray(depth, dtype=np.float32)
    # the 16-bit PNG first: its mark vouches for the .npy written after it
    _write(paths["png16"], lambda tmp: _write_png(tmp, to_uint16(depth)))
    _write(paths["npy"], lambda tmp: _write_npy(tmp, depth))
    _write(paths["color"], lambda tmp: _write_png(
        tmp, cv2.cvtColor(colorize(depth, colormap), cv2.COLOR_RGB2BGR)))
    return paths


def _write(path: Path, write) -> None:
    """Whole or not at all, and a failure (a full disk) names the file."""
    try:
        atomic_write(path, write, fsync=False)
    except OSError as err:
        raise OSError(f"{path}: could not write it ({err.strerror or err})") from err


def _write_png(tmp: str, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise OSError("PNG encoding failed")
    data = buf.tobytes()
    Path(tmp).write_bytes(data[:_AFTER_IHDR] + _MARK_CHUNK + data[_AFTER_IHDR:])


def _write_npy(tmp: str, depth: np.ndarray) -> None:
    with open(tmp, "wb") as fh:  # a path would get ".npy" appended
        np.save(fh, depth)
