"""A failed allocation said as such, with what to change: numpy, OpenCV, torch (CPU and
CUDA) and onnxruntime each raise their own type, in their own words, and only the
words tell an allocation from any other failure."""
from __future__ import annotations

import contextlib
from typing import Iterator

_SAID = ("out of memory", "can't allocate memory", "Failed to allocate", "Insufficient memory")


class OutOfMemory(MemoryError):
    """Too little memory for what was asked; the message says what to ask for instead.
    The commands print it as one line (a bare MemoryError keeps its traceback: where
    it happened is then the news)."""


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or any(s in str(err) for s in _SAID)


@contextlib.contextmanager
def said_as_out_of_memory(message: str) -> Iterator[None]:
    """Raise a failed allocation inside as OutOfMemory(message); anything else as it is."""
    try:
        yield
    except Exception as err:
        if not is_out_of_memory(err) or isinstance(err, OutOfMemory):
            raise
        raise OutOfMemory(message) from err
