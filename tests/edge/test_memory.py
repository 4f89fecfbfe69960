"""edge.memory: with glibc's allocator tuned, a frame-sized buffer freed and allocated again reuses the process's
warm pages instead of faulting in fresh ones every frame. Counted in page faults (getrusage), never in time."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    if {tune}:
        from edge.memory import keep_frame_memory
        assert keep_frame_memory()
    def frame():  # a VGA RGB frame's buffers (measurement, sealed, opened), each written, then all dropped
        buffers = [np.empty(640 * 480 * 3, np.uint8) for _ in range(3)]
        for buffer in buffers:
            buffer.fill(7)
        return sum(int(buffer[-1]) for buffer in buffers)
    for _ in range(5):
        frame()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        frame()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(tune: bool) -> int:
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([sys.executable, "-c", PROBE.format(root=root, tune=tune)], capture_output=True, text=True,
                          check=True)
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
                    reason="glibc's mallopt is a Linux (glibc) facility")
def test_frames_reuse_warm_memory_once_tuned():
    untuned, tuned = _faults(False), _faults(True)
    pages = 640 * 480 * 3 // 4096
    assert untuned >= 50 * pages  # every frame's pages faulted in afresh: the cost edge.memory removes
    assert tuned < 50  # the same 50 frames: warm pages, next to no fault


def test_a_variable_set_by_the_user_is_left_as_set(monkeypatch):
    from edge.memory import keep_frame_memory

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_frame_memory() in (True, False)  # nothing to set: neither knob is touched
