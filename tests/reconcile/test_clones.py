"""Two machines with one device key (device_clone_suspected): the log's and the uploads' signs.

The signs from the chain (a boot id coming back, a boot without its boot record,
mono_ns going back in a boot) and from the upload addresses (switching back and
forth within minutes) taint the device's reads in lesson windows they overlap.
The real portal's side (addresses noted at ingest) is tests/portal/test_addresses.py.
"""

from __future__ import annotations

import pytest

from portal.reconcile.clones import address_signs, log_signs
from portal.reconcile.model import DeviceLog, ReconcileSettings
from portal.reconcile.trusted_time import place

from .pi import Pi, day
from .support import END, MIN, START, S, confirm, run, status

TAP = START - 10 * MIN
CLONE = "device_clone_suspected"


def _around(log: DeviceLog, lo: int, hi: int) -> list[int]:
    """Positions of records made from ``lo`` to ``hi`` (true time: mono from boot start)."""
    start = START - 6 * 3600 * S
    return [i for i, m in enumerate(log.mono_ns) if lo <= start + m // 1_000_000 <= hi]


def test_an_honest_day_has_no_clone_sign() -> None:
    pi = day(Pi(), [TAP])
    assert log_signs(pi.log, pi.log.wall_ms) == []
    assert status(run([pi.log], [confirm()])) == ("verified", ())


def test_a_second_boot_id_interleaved_in_the_chain_is_a_clone() -> None:
    # A second Pi with the key continued the chain for 20 minutes under its own boot id,
    # then the first one went on: A ... B ... A, no boot record between.
    pi = day(Pi(), [TAP])
    for i in _around(pi.log, TAP - 15 * MIN, TAP - 2 * MIN):
        pi.log.boot[i] = "other"
    got = status(run([pi.log], [confirm()]))
    assert got[0] == "suspect" and CLONE in got[1]


def test_an_honest_reboot_starts_with_its_boot_record() -> None:
    pi = day(Pi(), [])
    pi.boot = "b2"
    pi.boot_start = START - 20 * MIN  # a fresh monotonic clock
    pi.boot_record(START - 19 * MIN)
    pi.tap(TAP)
    pi.record("heartbeat", START + 4 * 3600 * S)
    log = pi.log
    assert log_signs(log, place(log, 120 * S).times) == []


def test_a_new_boot_id_without_its_boot_record_is_a_clone() -> None:
    # A machine that takes over under its own boot id and writes no boot record.
    pi = day(Pi(), [])
    pi.boot = "b2"
    pi.boot_start = START - 20 * MIN
    pi.tap(TAP)
    got = status(run([pi.log], [confirm()]))
    assert got[0] == "suspect" and CLONE in got[1]


def test_mono_going_back_inside_one_boot_is_a_clone() -> None:
    # The second machine copies the boot id, but its monotonic clock is its own.
    pi = day(Pi(), [TAP])
    for i in _around(pi.log, TAP - 15 * MIN, TAP + 15 * MIN):
        pi.log.mono_ns[i] -= 3600 * S * 1_000_000
    got = status(run([pi.log], [confirm()]))
    assert got[0] == "suspect" and CLONE in got[1]


def test_a_sign_outside_the_lesson_window_does_not_taint_it() -> None:
    pi = day(Pi(), [TAP])
    for i in _around(pi.log, END + 60 * MIN, END + 80 * MIN):
        pi.log.boot[i] = "other"
    assert status(run([pi.log], [confirm()])) == ("verified", ())


# --- upload addresses -----------------------------------------------------------------

S3 = ReconcileSettings()


def runs(*spec: tuple[int, int, str]) -> list[tuple[int, int, str]]:
    return [(TAP + a * MIN, TAP + b * MIN, addr) for a, b, addr in spec]


def test_two_machines_uploading_in_turn_are_a_clone() -> None:
    turns = runs((-60, -6, "A"), (-5, -5, "B"), (-4, -3, "A"), (-2, -2, "B"), (-1, 30, "A"))
    assert address_signs(turns, S3.clone_switches, S3.clone_window_ms)
    pi = day(Pi(), [TAP])
    pi.log.uploads = turns
    got = status(run([pi.log], [confirm()]))
    assert got[0] == "suspect" and CLONE in got[1]


@pytest.mark.parametrize(
    "spec",
    [
        [(-300, -6, "A"), (-5, 300, "B")],  # a new DHCP lease or LTE address, once
        [(-300, -6, "A"), (-5, -3, "B"), (-2, 300, "A")],  # a failover link, and back
        [(-300, -200, "A"), (-150, -100, "B"), (-50, -20, "A"), (10, 300, "B")],  # hours apart
    ],
)
def test_honest_address_changes_are_not_a_clone(spec: list[tuple[int, int, str]]) -> None:
    turns = runs(*spec)
    assert address_signs(turns, S3.clone_switches, S3.clone_window_ms) == []
    pi = day(Pi(), [TAP])
    pi.log.uploads = turns
    assert status(run([pi.log], [confirm()])) == ("verified", ())


def test_the_switch_count_and_window_are_settings() -> None:
    turns = runs((-60, -6, "A"), (-5, -3, "B"), (-2, 300, "A"))
    assert address_signs(turns, 2, 10 * MIN) != []
    assert address_signs(turns, 2, 2 * MIN) == []
    assert address_signs(turns, 0, 10 * MIN) == []  # 0 turns the check off
