"""How the robot's processes ask the C allocator to hand memory back.

The robot handles messages of tens of megabytes (a 稿件 with its video) between thousands of
small ones. glibc's malloc raises its mmap threshold each time such a block is freed, so later
large blocks come from the heap and stay there after they are freed: the process keeps the
peak of every message it ever held. A fixed threshold (large blocks are always mapped, and
unmapped when freed) and at most two arenas (one per thread otherwise) keep the robot and its
parse workers near what they hold now. Measured with `bench/ingest --huge` (bench/README.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("mailbot.memory")

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_FROM = 1 << 20  # blocks from 1 MiB up are mapped, and returned when freed
ARENAS = 2


def tune_malloc() -> bool:
    """Set the allocator as described above; False where it is not glibc (then nothing changes)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_FROM) == 1 and mallopt(M_ARENA_MAX, ARENAS) == 1
    if not done:
        log.debug("mallopt refused the settings; the allocator keeps its defaults")
    return done
