"""Keep freed CPU memory in the process, as CUDA's caching allocator does on the GPU.

PyTorch's CPU allocator is the C library's malloc. glibc serves blocks over its mmap threshold
(at most 32 MiB) with a fresh mmap and unmaps them on free, so a training step that allocates
the same large activations every time page-faults and zeroes them again every time: on a
ResNet-18 (width 0.25) at batch 512 that was ~30% of the process's time, in the kernel.
Serving every block from the heap and never trimming it makes later steps reuse earlier steps'
pages: 565 -> 663 images/s compiled, 353 -> 502 eager.
The cost: the process keeps its peak memory until it exits (there, 2.8 GiB instead of at most
1.9 GiB; flat over 30 epochs), which a training worker does anyway.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

import torch

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_MAX_INT = 2 ** 31 - 1

_retained = False


def retain_freed_memory(device: torch.device | str = "cpu") -> bool:
    """Before training on `device`: if it is the CPU, make glibc's malloc keep freed blocks for
    reuse (process-wide, idempotent). Returns whether `device`'s freed memory is now kept: False
    for other devices (their memory is not malloc's) and where the C library is not glibc."""
    global _retained
    if torch.device(device).type != "cpu":
        return False
    if _retained:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt returns 1 on success; both must hold, or large blocks would still be unmapped
    _retained = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, _MAX_INT))
    return _retained
