"""Frame-sized memory kept by the process instead of handed back to the kernel after every frame.

A frame's buffers (a VGA RGB measurement is 0.9 MB; its sealed copy, its opened copy and the model's input as
much again) are allocated and freed once a frame. glibc's allocator serves a block that large with ``mmap`` and
returns it with ``munmap`` (the threshold starts at 128 KiB), or trims the freed top of its heap back to the
kernel once more than twice that is free: the next frame's buffers are then fresh pages, and every page is a
fault. On this project's 2-core x86_64 virtual machine that made sealing plus opening a VGA frame cost 2.5-2.8 ms
instead of 0.7 ms (``benchmarks/bench_seal.py``), the faults costing more than the cipher.

:func:`keep_frame_memory` sets two of glibc's documented knobs (``mallopt(3)``), as the environment variables
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` would:

- ``M_MMAP_THRESHOLD`` = 32 MiB (glibc's largest on 64-bit): blocks up to a 4K RGB frame come from the heap;
- ``M_TRIM_THRESHOLD`` = 64 MiB: up to that much free memory stays in the process for the next frames.

So a running camera keeps at most 64 MiB it is not using, and its frames reuse warm pages. Elsewhere (musl,
macOS, a libc without ``mallopt``) it does nothing. Set either variable yourself and it is left as you set it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20


def keep_frame_memory() -> bool:
    """Tune glibc's allocator for frame-sized buffers (see the module's docstring); True when it was set."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and done
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        done = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
    return done
