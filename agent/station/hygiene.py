"""What a Python process can do so that card keys held in memory do not leave it.

No core dump (``RLIMIT_CORE`` 0) and, on Linux, not dumpable (``PR_SET_DUMPABLE`` 0):
processes of the same user cannot ptrace it or read ``/proc/PID/mem``. What it
cannot do (Python's bytes are immutable and freed without being wiped; swap) is
said in docs/cards.md, "The station forgets the keys".
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import resource
import sys

__all__ = ["harden_process"]

_PR_SET_DUMPABLE = 4


def harden_process() -> list[str]:
    """Apply what this platform allows; return what was applied (for --json output)."""
    done: list[str] = []
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        done.append("no core dumps")
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0:
                done.append("not dumpable")
    return done
