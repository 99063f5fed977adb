"""Clock sources (agent/clock.py): the injectable manual clock and the kernel's."""

from __future__ import annotations

import ctypes.util
import logging
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.clock import (
    MONO_EPOCH_NS,
    Clock,
    ClockReading,
    ManualClock,
    SystemClock,
    boot_epoch,
    kernel_clock_synced,
    synced_from_adjtimex,
)
from agent.protocol import ZERO_HASH, EncodingError, build_record


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


@pytest.mark.parametrize("clock", [ManualClock(), SystemClock()], ids=["manual", "system"])
def test_monotonic_and_mono_ns_are_one_clock_in_seconds_and_nanoseconds(clock: Clock) -> None:
    # Timers use monotonic(), records carry mono_ns: the portal bridges a boot's
    # records by mono_ns, so the two must be the same clock in different units.
    before = clock.monotonic()
    reading = clock.read()
    after = clock.monotonic()
    assert before - 1e-3 <= reading.mono_ns / 1e9 <= after + 1e-3
    assert clock.read().mono_ns >= reading.mono_ns


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


@pytest.mark.parametrize(
    ("state", "status", "synced"),
    [
        (0, 0x0000, True),  # TIME_OK, PLL running
        (1, 0x0001, True),  # TIME_INS (leap second pending) is still synchronised
        (5, 0x0000, False),  # TIME_ERROR: the kernel says not synchronised
        (0, 0x0040, False),  # STA_UNSYNC set by hand (e.g. after settimeofday)
        (0, 0x2041, False),  # STA_UNSYNC among other bits
    ],
)
def test_adjtimex_answers_are_read_as_the_kernel_means_them(
    state: int, status: int, synced: bool
) -> None:
    assert synced_from_adjtimex(state, status) is synced


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


def test_a_pi_up_for_months_still_writes_records() -> None:
    """CLOCK_MONOTONIC passes 2**53 ns after 104 days; records must stay exact integers."""
    key = Ed25519PrivateKey.generate()
    for uptime_ns in (0, MONO_EPOCH_NS - 1, MONO_EPOCH_NS, 2**53 + 5, 400 * 86_400 * 10**9):
        boot, mono_ns = boot_epoch("6f1d2a8e", uptime_ns)
        assert 0 <= mono_ns < MONO_EPOCH_NS
        build_record(
            key, device="d", seq=1, prev=ZERO_HASH, type="heartbeat", wall_ms=1,
            synced=True, boot=boot, mono_ns=mono_ns, anchor="", data={},
        )  # fmt: skip
    assert boot_epoch("b", MONO_EPOCH_NS - 1) == ("b", MONO_EPOCH_NS - 1)
    assert boot_epoch("b", MONO_EPOCH_NS + 7) == ("b.1", 7)
    # Two readings of one epoch keep their true interval; epochs never share an id.
    (b1, m1), (b2, m2) = (
        boot_epoch("b", 3 * MONO_EPOCH_NS + 10),
        boot_epoch("b", 3 * MONO_EPOCH_NS + 99),
    )
    assert b1 == b2 == "b.3" and m2 - m1 == 89
    with pytest.raises(EncodingError):  # what the raw counter did after 104 days
        build_record(
            key, device="d", seq=1, prev=ZERO_HASH, type="heartbeat", wall_ms=1,
            synced=True, boot="b", mono_ns=2**53 + 5, anchor="", data={},
        )  # fmt: skip
