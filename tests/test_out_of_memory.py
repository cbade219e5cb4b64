"""A failed allocation is said as such, whichever library failed (depthnas/out_of_memory.py)."""
from __future__ import annotations

import cv2
import pytest


@pytest.mark.parametrize("failure", [
    MemoryError("Unable to allocate 3.2 GiB for an array"),                  # numpy
    RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),            # torch CUDA
    cv2.error("OpenCV(4.x) alloc.cpp:73: error: (-4:Insufficient memory) "
              "Failed to allocate 1073741824 bytes in function 'OutOfMemoryError'"),
    RuntimeError("OpenCV: (-4:Insufficient memory) in resize"),               # the words alone
])
def test_each_library_s_failed_allocation_is_said_as_out_of_memory(failure) -> None:
    from depthnas.out_of_memory import OutOfMemory, said_as_out_of_memory
    with pytest.raises(OutOfMemory, match="use less"):
        with said_as_out_of_memory("use less"):
            raise failure


def test_an_inner_out_of_memory_keeps_its_own_advice() -> None:
    from depthnas.out_of_memory import OutOfMemory, said_as_out_of_memory
    with pytest.raises(OutOfMemory, match="^inner advice$"):
        with said_as_out_of_memory("outer advice"):
            with said_as_out_of_memory("inner advice"):
                raise RuntimeError("CUDA out of memory")
