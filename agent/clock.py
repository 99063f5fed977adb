"""Where a record's time comes from: wall clock, NTP-sync state, boot id, monotonic ns.

:class:`SystemClock` reads the kernel; tests and simulations pass any object
with the :class:`Clock` shape instead (inject the clock).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.protocol.canonical import MONO_EPOCH_NS, boot_epoch

__all__ = [
    "MONO_EPOCH_NS",
    "Clock",
    "ClockReading",
    "ManualClock",
    "SystemClock",
    "boot_epoch",
    "kernel_clock_synced",
    "synced_from_adjtimex",
]

logger = logging.getLogger(__name__)

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_TIME_ERROR = 5  # adjtimex return value: clock not synchronised
_STA_UNSYNC = 0x0040
# Records carry integers below 2**53 (exact in every JSON reader); CLOCK_MONOTONIC in
# nanoseconds passes that after 104 days of uptime, which a Pi at a club door reaches.
# So the kernel's boot is cut into epochs of MONO_EPOCH_NS (about 52 days), each a boot
# of its own for the records: id ``<boot id>.<n>`` from the second epoch on, mono_ns
# counted from the epoch's start. Every process of one kernel boot agrees on both.


@dataclass(frozen=True)
class ClockReading:
    wall_ms: int
    synced: bool
    boot: str
    mono_ns: int


class Clock(Protocol):
    """Must provide :meth:`read` (for records) and :meth:`monotonic` (for timers)."""

    def read(self) -> ClockReading: ...

    def monotonic(self) -> float: ...


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (x86_64 and aarch64 share this layout):
    # modes, then ten longs, struct timeval, then eleven more fields, then padding.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("tv_sec", ctypes.c_long),
        ("tv_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


def kernel_clock_synced() -> bool | None:
    """The kernel's view (adjtimex with modes 0, read-only), or None where unavailable."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return synced_from_adjtimex(state, timex.status)


def synced_from_adjtimex(state: int, status: int) -> bool:
    """What adjtimex's return value and ``status`` word say: synchronised or not."""
    return state != _TIME_ERROR and not (status & _STA_UNSYNC)


def _read_boot_id() -> str:
    try:
        return BOOT_ID_PATH.read_text("ascii").strip()
    except OSError:
        # Not Linux: a per-process id keeps mono_ns comparisons honest (they
        # only ever compare within one boot id).
        return f"process-{uuid.uuid4()}"


class SystemClock:
    """The real clocks. The sync state is cached for ``sync_ttl_s`` (one syscall)."""

    def __init__(self, sync_ttl_s: float = 10.0) -> None:
        self.boot = _read_boot_id()
        self._sync_ttl_s = sync_ttl_s
        self._synced = False
        self._synced_at: float | None = None
        self._warned = False

    def synced(self) -> bool:
        now = time.monotonic()
        if self._synced_at is None or now - self._synced_at > self._sync_ttl_s:
            state = kernel_clock_synced()
            if state is None and not self._warned:
                logger.warning("adjtimex unavailable: records will say synced=false")
                self._warned = True
            self._synced = bool(state)
            self._synced_at = now
        return self._synced

    def read(self) -> ClockReading:
        boot, mono_ns = boot_epoch(self.boot, time.monotonic_ns())
        return ClockReading(
            wall_ms=time.time_ns() // 1_000_000,
            synced=self.synced(),
            boot=boot,
            mono_ns=mono_ns,
        )

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; for tests and simulations."""

    def __init__(
        self, wall_ms: int = 1_700_000_000_000, *, synced: bool = True, boot: str = "test-boot"
    ) -> None:
        self.wall_ms = wall_ms
        self.synced = synced
        self.boot = boot
        self.mono_ns = 1_000_000_000

    def advance(self, seconds: float) -> None:
        self.wall_ms += round(seconds * 1000)
        self.mono_ns += round(seconds * 1e9)

    def read(self) -> ClockReading:
        return ClockReading(self.wall_ms, self.synced, self.boot, self.mono_ns)

    def monotonic(self) -> float:
        return self.mono_ns / 1e9
