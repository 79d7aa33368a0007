"""The engine keeps freed CPU memory for reuse instead of unmapping it (trainables/cpu_memory.py)."""
import ctypes
import platform

import pytest
import torch

from trainables.cpu_memory import retain_freed_memory
from trainables.pair import Pair
from trainables.protocol import Protocol

glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def mallinfo() -> MallInfo2:
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc < 2.33 has no mallinfo2")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2()


@pytest.mark.skipif(not glibc, reason="the setting is glibc's")
def test_large_blocks_come_from_the_heap_and_stay_after_free():
    Pair(Protocol(arch="mlp", width=0.125, compile="off"), 2, (3, 8, 8), (0, 1), "cpu")
    assert retain_freed_memory()  # the CPU pair turned it on; calling again is a no-op
    assert not retain_freed_memory("meta")  # only the CPU's memory is malloc's
    size = 64 << 20
    before = mallinfo()
    x = torch.ones(size // 4)
    during = mallinfo()
    assert during.hblkhd - before.hblkhd < size  # glibc's default would mmap a block this large
    del x
    after = mallinfo()
    assert after.fordblks >= size  # kept as free heap memory, not returned
