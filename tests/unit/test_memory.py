"""mailbot.memory: on glibc (this machine, the Debian image) the allocator takes the settings
that keep the robot's memory near what it holds (mallopt answers 1 for each)."""

from __future__ import annotations

import ctypes
import ctypes.util

from mailbot import memory


def test_tune_malloc_sets_a_fixed_mmap_threshold_and_two_arenas():
    assert memory.tune_malloc() is True
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    # setting the same values again succeeds: they are values glibc accepts, not ignored ones
    assert libc.mallopt(memory.M_MMAP_THRESHOLD, memory.MMAP_FROM) == 1
    assert libc.mallopt(memory.M_ARENA_MAX, memory.ARENAS) == 1
