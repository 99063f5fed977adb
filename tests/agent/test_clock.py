"""Clock sources (agent/clock.py): the injectable manual clock and the kernel's."""

from __future__ import annotations

import ctypes.util
import logging
import time

import pytest

from agent.clock import Clock, ClockReading, ManualClock, SystemClock, kernel_clock_synced


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(1_000, synced=False, boot="b-1")
    first = clock.read()
    assert first == ClockReading(1_000, False, "b-1", 1_000_000_000)
    assert clock.read() == first
    clock.advance(1.5)
    assert clock.read() == ClockReading(2_500, False, "b-1", 2_500_000_000)
    assert clock.monotonic() == 2.5
    # The club sets the wall clock back: monotonic time still only moves forward.
    clock.wall_ms -= 3_600_000
    clock.advance(0.001)
    assert clock.read().wall_ms < first.wall_ms and clock.read().mono_ns > first.mono_ns
    clock.synced = True
    assert clock.read().synced is True


def test_both_clocks_have_the_clock_shape() -> None:
    clocks: list[Clock] = [ManualClock(), SystemClock()]
    for clock in clocks:
        assert isinstance(clock.read(), ClockReading)
        assert isinstance(clock.monotonic(), float)


def test_system_clock_readings_are_sane() -> None:
    clock = SystemClock()
    before = time.time_ns() // 1_000_000
    reading = clock.read()
    after = time.time_ns() // 1_000_000
    assert before <= reading.wall_ms <= after
    assert isinstance(reading.synced, bool)
    assert reading.boot and reading.boot == clock.read().boot
    later = clock.read()
    assert later.mono_ns >= reading.mono_ns > 0
    assert abs(reading.mono_ns / 1e9 - clock.monotonic()) < 60


def test_boot_id_is_the_kernels_where_there_is_one() -> None:
    from agent.clock import BOOT_ID_PATH

    if BOOT_ID_PATH.exists():
        assert SystemClock().boot == BOOT_ID_PATH.read_text().strip()


def test_adjtimex_returns_a_bool_or_none() -> None:
    assert kernel_clock_synced() in (True, False, None)


def test_sync_state_is_cached_for_its_ttl() -> None:
    clock = SystemClock(sync_ttl_s=3600)
    first = clock.synced()
    assert clock._synced_at is not None
    stamp = clock._synced_at
    assert clock.synced() is first and clock._synced_at == stamp


def test_without_libc_sync_is_unknown_and_records_say_unsynced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A platform without adjtimex (no libc found): the fallback, not a crash.
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert kernel_clock_synced() is None
    clock = SystemClock(sync_ttl_s=0)
    with caplog.at_level(logging.WARNING, logger="agent.clock"):
        assert clock.read().synced is False
        assert clock.read().synced is False
    assert sum("adjtimex unavailable" in r.getMessage() for r in caplog.records) == 1
