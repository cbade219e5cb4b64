"""File readers shared by the loaders: RGB images, 16-bit PNG, npy and PFM depth maps.

Every reader raises :class:`DatasetError` naming the file, because a bare OpenCV
``None`` or a numpy traceback deep inside a DataLoader worker does not tell a user
which of thousands of files is broken.
"""
from __future__ import annotations

import ast
import contextlib
import math
import os
import re
from pathlib import Path

import cv2
import numpy as np

__all__ = ["DatasetError", "hidden", "read_rgb", "to_uint8", "read_png", "read_npy", "read_pfm", "write_pfm", "read_depth_file",
           "IMAGE_SUFFIXES", "PHOTO_SUFFIXES", "DEPTH_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # training images (OpenCV)
PHOTO_SUFFIXES = IMAGE_SUFFIXES + (".gif",)  # photos to predict on (PIL reads GIF too)
DEPTH_SUFFIXES = (".png", ".npy", ".pfm")


def hidden(name: str) -> bool:
    """A name starting with '.': no data set's sample or photo, but a copy's metadata
    (macOS writes `._NAME.jpg` beside each file on a foreign drive) or a tool's folder
    (`.ipynb_checkpoints`, whose copies of images would be read twice)."""
    return name.startswith(".")


class DatasetError(ValueError):
    """Bad dataset input (missing, unpaired, unreadable or invalid files); the message names the file."""


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as uint8 HxWx3 RGB in its stored pixel grid.

    An EXIF orientation tag is ignored: the depth map beside the image has no such
    tag and was made on the stored grid, so rotating the image alone would pair
    pixels with the wrong depth (silently, for a 180-degree tag or a mirror)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e.strerror or e}") from e
    if not data:
        raise DatasetError(f"cannot read image {path}: the file is empty")
    if data[:2] == _JPEG_SOI and _jpeg_truncated(data):
        # OpenCV decodes a cut JPEG without error, filling the missing rows with grey
        raise DatasetError(f"truncated JPEG {path}: the file ends before the image data its "
                           "headers announce (cut short, or corrupt)")
    _check_png_whole(data, f"image {path}")
    try:
        return cv2.cvtColor(decode_bgr8(data, path), cv2.COLOR_BGR2RGB)
    except cv2.error as err:  # decoded to a layout no conversion takes: name the file
        raise DatasetError(f"cannot read image {path}: {getattr(err, 'err', None) or err}") from None


@contextlib.contextmanager
def quiet_opencv():
    """OpenCV logs its own errors for a damaged file ("imdecode_ ... Unexpected end of
    input stream", libtiff's TIFF_Error) to stderr, ahead of the error here that names
    the file: silenced while decoding."""
    from cv2.utils import logging as cv_logging
    level = cv_logging.getLogLevel()
    cv_logging.setLogLevel(cv_logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv_logging.setLogLevel(level)


def decode_bgr8(data: bytes, path: str | Path) -> np.ndarray:
    """uint8 HxWx3 BGR from encoded image bytes, in the stored pixel grid; a 16-bit
    image (PNG, TIFF) is scaled by the bit depth it uses (`to_uint8`), where OpenCV's
    plain colour decode keeps the high byte and turns 12-bit sensor data black, and a
    float TIFF by `float_to_uint8`."""
    buf = np.frombuffer(data, np.uint8)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    with quiet_opencv():
        img = cv2.imdecode(buf, flags | cv2.IMREAD_ANYDEPTH)
        if img is None:  # OpenCV's colour decode refuses a one-channel float TIFF: read as grey
            grey = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH |
                                cv2.IMREAD_IGNORE_ORIENTATION)
            img = None if grey is None else np.repeat(grey[:, :, None], 3, axis=2)
    if img is None:
        raise DatasetError(f"cannot read image {path} (corrupt or unsupported format)")
    if data[:4] in TIFF_MAGIC:
        img = _tiff_stored_grid(img, data)
    if np.issubdtype(img.dtype, np.floating):  # a float TIFF
        try:
            return float_to_uint8(img)
        except ValueError as err:
            raise DatasetError(f"cannot read image {path}: {err}") from None
    return img if img.dtype == np.uint8 else to_uint8(img)  # 16-bit, or a signed or 32-bit TIFF


def float_to_uint8(img: np.ndarray) -> np.ndarray:
    """Float pixels to 8 bits: values in [0, 1] as they are (a linear image), whole
    numbers in [0, 255] as 8-bit levels (an 8-bit photo saved as floats: stretching it
    min-max changed its contrast), others min-max over the finite ones (radiance, data
    of any range); NaN and inf become 0."""
    finite = np.isfinite(img)
    if not finite.any():  # NaN or inf everywhere: no picture
        raise ValueError("no finite pixel value in this float image")
    values = img[finite]  # copied once, not per test below
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0.0 and hi <= 1.0:
        lo, scale = 0.0, 1.0
    elif lo >= 0.0 and hi <= 255.0 and np.array_equal(values, np.round(values)):
        lo, scale = 0.0, 255.0
    else:
        scale = hi - lo if hi > lo else np.inf  # a constant image: black
    unit = np.where(finite, (img.astype(np.float64) - lo) / scale, 0.0)
    return np.round(unit * 255.0).astype(np.uint8)


TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic, then BigTIFF
# EXIF orientation -> what turns the displayed image back into the stored one
_UNDO_ORIENTATION = {
    2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
    5: lambda x: x.transpose(1, 0, 2), 6: lambda x: np.rot90(x, 1),
    7: lambda x: x.transpose(1, 0, 2)[::-1, ::-1], 8: lambda x: np.rot90(x, -1)}


def exif_orientation(source: bytes | str | Path) -> int:
    """An image's EXIF Orientation tag (encoded bytes or a path), 1 (as stored) when it
    has none or it cannot be read: the image was (or will be) read without it."""
    import io

    from PIL import Image
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError:
        return 1
    if data[:4] in TIFF_MAGIC:  # PIL cannot open every TIFF OpenCV reads (float colour ones)
        return tiff_orientation(data)
    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - an unreadable tag means none
        return 1


def _tiff_stored_grid(img: np.ndarray, data: bytes) -> np.ndarray:
    """OpenCV's TIFF decoder applies the Orientation tag even when told to ignore it
    (OpenCV 5.0): undo it, so a TIFF pairs with its depth map as every other format does."""
    undo = _UNDO_ORIENTATION.get(tiff_orientation(data))
    return np.ascontiguousarray(undo(img)) if undo is not None else img


# TIFF field types libtiff takes for an integer tag: (bytes, signed) of BYTE, SHORT,
# LONG, SBYTE, SSHORT, SLONG, LONG8, SLONG8
_TIFF_INTEGER_TYPES = {1: (1, False), 3: (2, False), 4: (4, False), 6: (1, True),
                       8: (2, True), 9: (4, True), 16: (8, False), 17: (8, True)}


def tiff_tag(data: bytes, tag: int) -> int | None:
    """One integer tag of a TIFF's first image, read from its first IFD as libtiff
    (OpenCV's TIFF decoder) reads it: one value of any integer type; None when the
    file has none, or one of a type or count libtiff ignores. Read here, not through
    PIL, which cannot open a float, int16 or uint32 colour TIFF."""
    order = {b"II": "little", b"MM": "big"}.get(data[:2])
    if order is None:
        return None
    big = int.from_bytes(data[2:4], order) == 43  # BigTIFF: 8-byte counts and offsets
    word, count_size, entry = (8, 8, 20) if big else (4, 2, 12)
    start = 8 if big else 4
    ifd = int.from_bytes(data[start:start + word], order)
    n = int.from_bytes(data[ifd:ifd + count_size], order)
    for i in range(ifd + count_size, min(ifd + count_size + n * entry, len(data) - entry + 1), entry):
        if int.from_bytes(data[i:i + 2], order) != tag:
            continue
        size, signed = _TIFF_INTEGER_TYPES.get(int.from_bytes(data[i + 2:i + 4], order), (0, False))
        if not size or int.from_bytes(data[i + 4:i + 4 + word], order) != 1:
            return None
        field = data[i + 4 + word:i + 4 + 2 * word]
        if size > word:  # LONG8 in a classic TIFF: the field holds the value's offset
            at = int.from_bytes(field, order)
            field = data[at:at + size]
        return int.from_bytes(field[:size], order, signed=signed)
    return None


def tiff_orientation(data: bytes) -> int:
    """The Orientation tag (274), 1 (as stored) when there is none libtiff applies:
    the turn OpenCV gives a TIFF, even told to ignore it."""
    return tiff_tag(data, 274) or 1


def tiff_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a TIFF's first IFD (tags 256 and 257), without decoding a
    pixel; None when they cannot be read."""
    w, h = tiff_tag(data, 256), tiff_tag(data, 257)
    return (w, h) if w and h else None


# Bit depths sensors store in 16-bit files; values are read against the smallest
# that holds the image's maximum.
_SENSOR_BITS = (8, 10, 12, 14, 16)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """uint8 from an integer image, scaled by the bit depth its values use: 10- to
    14-bit sensor data is stored in 16-bit files, and its 0..4095 read as 0..65535 is
    almost black. The depth is the smallest of 8, 10, 12, 14 and 16 bits that holds
    the image's maximum (a dark 12-bit frame whose maximum fits 10 bits is read as
    10-bit: brighter, never clipped), or the maximum's own bit length beyond 16.
    Negative values read as 0; a signed type's full scale (32767 of int16) as 255."""
    top = max(int(img.max()), 0) if img.size else 0
    bits = next((b for b in _SENSOR_BITS if top < 2**b), top.bit_length())
    if np.issubdtype(img.dtype, np.signedinteger):  # its sign bit holds no level
        bits = min(bits, np.iinfo(img.dtype).bits - 1)
    scaled = img.astype(np.float64) * (255.0 / (2**bits - 1))
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


_JPEG_SOI = b"\xff\xd8"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_whole(data: bytes, what: str) -> None:
    """A PNG must run to its IEND chunk: libpng prints "libpng error: PNG input buffer is
    incomplete" on a cut one itself, straight to stderr, before OpenCV says anything.
    Walks the chunks by their lengths; what follows IEND is never looked at."""
    if data[:8] != _PNG_SIGNATURE:
        return
    i, n = 8, len(data)
    while i + 8 <= n:
        length, kind = int.from_bytes(data[i:i + 4], "big"), data[i + 4:i + 8]
        i += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            if i <= n:
                return
            break
    raise DatasetError(f"truncated PNG {what}: the file ends before its last chunk (IEND)")


def _jpeg_truncated(data: bytes) -> bool:
    """True when the file ends before the image's end-of-image marker.

    Walks the marker segments from the start, skipping each scan's entropy-coded
    data (where 0xFF is followed by 0x00 or a restart marker), until the EOI: what a
    camera appends after it (a motion photo's video) is never looked at. A layout
    this walk does not follow is left to the decoder, not called truncated."""
    n, i = len(data), 2
    while True:
        if i >= n:
            return True
        if data[i] != 0xFF:
            return False
        while i < n and data[i] == 0xFF:  # fill bytes before a marker
            i += 1
        if i >= n:
            return True
        marker = data[i]
        i += 1
        if marker == 0xD9:  # EOI
            return False
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            continue
        if i + 2 > n:
            return True
        i += int.from_bytes(data[i:i + 2], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return True
                if data[j + 1] == 0x00 or 0xD0 <= data[j + 1] <= 0xD7:
                    i = j + 2
                    continue
                i = j
                break


def read_png(path: str | Path, *, unknown: int = 0) -> np.ndarray:
    """Read a single-channel PNG keeping its bit depth (uint8 or uint16); a transparent
    pixel of one with alpha reads as `unknown`, the format's mark for no measurement."""
    try:  # read here, not by cv2.imread, which fails on a file name that is not UTF-8
        data = Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read depth map {path}: {e.strerror or e}") from e
    if not data:  # said as an empty image is: an export that stopped before writing
        raise DatasetError(f"cannot read depth map {path}: the file is empty")
    _check_png_whole(data, f"depth map {path}")
    try:
        with quiet_opencv():
            arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:  # a header of too many pixels, say: name the file
        raise DatasetError(f"cannot read depth map {path}: {getattr(err, 'err', None) or err}") from None
    if arr is None:
        raise DatasetError(f"cannot read depth map {path} (corrupt or unsupported format)")
    return _single_channel(arr, path, unknown)


def _single_channel(arr: np.ndarray, path: str | Path, unknown: float = 0) -> np.ndarray:
    """HxW from a map some tools save as 3 identical channels (+ alpha: a transparent
    pixel holds `unknown`). Channels that differ are a colour picture of depth (a
    colour map), not depth: an error."""
    if arr.ndim == 2:
        return arr
    colour = arr[:, :, :3]
    same = colour == colour[:, :, :1]
    if np.issubdtype(arr.dtype, np.floating):
        same |= np.isnan(colour) & np.isnan(colour[:, :, :1])
    if not same.all():
        raise DatasetError(f"depth map {path} has {arr.shape[2]} channels that differ: a colour "
                           "image, not a depth map (a colour-mapped visualisation cannot be read "
                           "back as depth); store depth as a single-channel PNG, npy or PFM")
    values = arr[:, :, 0].copy()
    if arr.shape[2] == 4:  # renderers and capture tools mark unknown pixels transparent
        values[arr[:, :, 3] == 0] = unknown
    return values


def read_npy(path: str | Path, *, allow_bool: bool = False) -> np.ndarray:
    """Read a real-valued npy array, squeezing a trailing singleton channel (DIODE stores
    HxWx1). ``allow_bool``: a validity mask may be stored as booleans."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            if magic == b"\x93NUMPY":
                _check_npy_size(fh, path)
        if magic == b"\x93NUMPY":
            arr = np.load(str(path), allow_pickle=False)
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DatasetError(f"cannot read array {path}: {e}") from e
    if magic != b"\x93NUMPY":  # numpy would call any other file "pickled data"
        raise DatasetError(f"cannot read array {path}: not a .npy file "
                           f"({'empty' if not magic else 'it does not start with the .npy header'})")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    real = (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
            or (allow_bool and arr.dtype == np.bool_))
    if arr.ndim != 2 or not real:
        raise DatasetError(f"expected a 2-D real-valued map in {path}, got shape {arr.shape} "
                           f"dtype {arr.dtype}")
    return arr


def _check_npy_size(fh, path: str | Path) -> None:
    """An npy file must hold the data its header announces: numpy allocates the
    header's shape before reading, so a cut or corrupt file declaring 200000x200000
    floats failed with MemoryError (149 GiB), naming no file."""
    fmt = np.lib.format
    fh.seek(0)
    version = fmt.read_magic(fh)
    if version in ((1, 0), (2, 0)):
        shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else
                           fmt.read_array_header_2_0)(fh)
    elif version == (3, 0):  # 2.0's layout with a UTF-8 header, which numpy reads privately
        length = int.from_bytes(fh.read(4), "little")
        try:
            header = ast.literal_eval(fh.read(length).decode("utf-8"))
            shape, dtype = tuple(header["shape"]), fmt.descr_to_dtype(header["descr"])
        except (SyntaxError, ValueError, KeyError, TypeError):  # np.load names what is wrong
            return
        if not all(isinstance(n, int) and n >= 0 for n in shape):  # ('a',): np.load's to say
            return
    else:  # a later version: np.load says what it makes of it
        return
    needed = math.prod(shape) * dtype.itemsize
    found = os.fstat(fh.fileno()).st_size - fh.tell()
    if found < needed:
        raise DatasetError(f"cannot read array {path}: its header announces shape {shape} "
                           f"{dtype} ({needed} bytes of data), the file holds {found} "
                           "(cut short, or corrupt)")


# Each header field ends at one whitespace character, or CRLF from a Windows writer;
# the scale's line may carry spaces before its line end ("-1.0 \n"), which taken as
# data would shift every value by a few bytes, unseen within the slack below.
_PFM_SLACK = 16  # bytes tolerated after the data
_PFM_HEADER = re.compile(rb"^(PF|Pf)\s+(\d+)\s+(\d+)\s+(-?[\d.eE+-]+)")
_PFM_LINE_END = re.compile(rb"[ \t]*(?:\r\n|\n|\r)")


def _pfm_data_start(data: bytes, scale_end: int, needed: int) -> int | None:
    """Where the data starts: after the scale's line end with any spaces before it,
    or after the one whitespace character of a header on one line ("Pf 2 2 -1.0 "),
    whose first data byte may be 10 or 13. Of two readings the one the file's size
    fits exactly wins, then one it fits within the slack. None: no whitespace ends
    the scale (a bad header)."""
    ends = [scale_end + 1] if scale_end < len(data) and data[scale_end:scale_end + 1].isspace() else []
    line = _PFM_LINE_END.match(data, scale_end)
    if line:
        ends.insert(0, line.end())
    sizes = [len(data) - e for e in ends]
    for fits in (lambda n: n == needed, lambda n: needed <= n <= needed + _PFM_SLACK):
        fitting = [e for e, n in zip(ends, sizes) if fits(n)]
        if fitting:
            return fitting[0]
    return ends[0] if ends else None


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file as float32 HxW (grey) or HxWx3 (colour), rows top-to-bottom.

    PFM stores rows bottom-to-top; a negative scale means little-endian.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read PFM {path}: {e}") from e
    m = _PFM_HEADER.match(data)
    if m is None:
        raise DatasetError(f"not a PFM file (bad header): {path}")
    channels = 3 if m.group(1) == b"PF" else 1
    width, height = int(m.group(2)), int(m.group(3))
    try:
        scale = float(m.group(4))
    except ValueError:
        scale = 0.0
    if scale == 0.0 or not math.isfinite(scale):  # its sign says the byte order: none here
        raise DatasetError(f"not a PFM file (bad header): {path}: scale "
                           f"{m.group(4).decode('ascii')!r} is not a non-zero number")
    dtype = np.dtype("<f4") if scale < 0 else np.dtype(">f4")
    count = width * height * channels
    start = _pfm_data_start(data, m.end(), count * 4)
    if start is None:
        raise DatasetError(f"not a PFM file (bad header): {path}: no line end after the scale")
    body = data[start:]
    # A few bytes after the data are padding or a newline; more is a header whose size
    # does not describe the data (reading it would pair the values with wrong pixels).
    if not count * 4 <= len(body) <= count * 4 + _PFM_SLACK:
        what = "truncated PFM" if len(body) < count * 4 else "PFM with trailing bytes (wrong size in the header?)"
        raise DatasetError(f"{what} {path}: {width}x{height}x{channels} needs {count * 4} data "
                           f"bytes, found {len(body)}")
    arr = np.frombuffer(body, dtype=dtype, count=count).astype(np.float32)
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.ascontiguousarray(np.flipud(arr.reshape(shape)))


def write_pfm(path: str | Path, array: np.ndarray) -> None:
    """Write float32 HxW or HxWx3 (rows top-to-bottom) as little-endian PFM."""
    arr = np.asarray(array, np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        kind = b"Pf"
    elif arr.ndim == 3 and arr.shape[2] == 3:
        kind = b"PF"
    else:
        raise ValueError(f"PFM holds HxW or HxWx3 arrays, got shape {arr.shape}")
    h, w = arr.shape[:2]
    body = np.flipud(arr).astype("<f4").tobytes()
    Path(path).write_bytes(kind + b"\n%d %d\n-1.0\n" % (w, h) + body)


def read_depth_file(path: str | Path, *, png_scale: float = 1.0) -> np.ndarray:
    """Read a depth/disparity map (png, npy or pfm) as float32 HxW.

    PNG integer values are multiplied by ``png_scale`` (e.g. 1e-3 for millimetres).
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return read_png(path).astype(np.float32) * np.float32(png_scale)
    if suffix == ".npy":
        return read_npy(path).astype(np.float32)
    if suffix == ".pfm":
        return _single_channel(read_pfm(path), path)
    raise DatasetError(f"unsupported depth file type {suffix!r}: {path} (use png, npy or pfm)")

