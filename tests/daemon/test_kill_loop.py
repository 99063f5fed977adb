"""SIGKILL the daemon at random moments while taps arrive and uploads run."""

from __future__ import annotations

from tests.daemon.scenarios import kill_loop
from tests.daemon.support import Device, LivePortal

KILLS = 30


def test_no_confirmed_tap_is_lost_or_duplicated_across_30_kills(
    device: Device, portal: LivePortal
) -> None:
    log, check = kill_loop(portal, device, KILLS, seed=6)
    assert check.failure is None, check.failure
    assert check.missing == [], f"{len(check.missing)} confirmed taps missing at the portal"
    assert check.duplicated == []
    # The loop did exercise something: many taps confirmed, and taps the daemon
    # never confirmed (killed mid-way) did not break the chain either.
    assert check.confirmed >= KILLS
    assert len(log.sent) >= check.confirmed and check.badges >= check.confirmed
