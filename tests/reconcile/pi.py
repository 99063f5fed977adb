"""A device as the portal sees it: records, uploads, receipts, lost answers and outages.

Builds a :class:`DeviceLog` the way the real agent and ingest fill it: each record
names as anchor the newest receipt the device has *received*, each upload is
answered by a receipt the portal keeps (``receipt_ms``), and the first receipt that
covered a record is its ``covered_ms``. An answer can be lost (the portal signed it,
the device never got it), and the device can be cut off for a while.
"""

from __future__ import annotations

from typing import Any

from portal.reconcile.model import DeviceLog

from .support import MIN, START, S

UID = "04A1B2C3"


class Pi:
    def __init__(self, device: str = "D1", center: str = "C1", boot: str = "b1") -> None:
        self.log = DeviceLog(device, center)
        self.boot = boot
        self.boot_start = START - 6 * 3600 * S
        self.anchor: int | None = None  # server_ms of the newest receipt received
        self.before_last: int | None = None  # the one before it
        self.pending: list[int] = []  # positions not yet covered by a receipt
        self.online = True

    def record(
        self,
        type: str,
        at: int,
        data: dict[str, Any] | None = None,
        *,
        claim: int | None = None,
        synced: bool = True,
        anchor: int | bool | None = True,
    ) -> None:
        """A record made at true time ``at`` (claiming ``claim``), then an upload try."""
        self.log.append(
            seq=len(self.log) + 1,
            type=type,
            wall_ms=at if claim is None else claim,
            synced=synced,
            boot=self.boot,
            mono_ns=(at - self.boot_start) * 1_000_000,
            anchor_ms=self.anchor if anchor is True else (None if anchor is False else anchor),
            covered_ms=None,
            data=data or {},
        )
        self.pending.append(len(self.log) - 1)
        if self.online:
            self.upload(at + 1500)

    def upload(self, at: int, *, lost: bool = False) -> None:
        """The portal stores the pending records and signs a receipt at ``at``."""
        self.log.receipt_ms.append(at)
        for i in self.pending:
            self.log.covered_ms[i] = at
        self.pending = []
        if not lost:
            self.before_last, self.anchor = self.anchor, at

    def boot_record(self, at: int) -> None:
        self.record("boot", at, {"doors": ["front"], "readers": ["main"], "drivers": ["mfrc522"]})

    def tap(self, at: int, uid: str = UID, **kw: Any) -> None:
        """A child at the door: open, tap, closed (the closed comes with the next beat)."""
        self.record("door", at - 3 * S, {"sensor": "front", "state": "open"})
        badge = {"reader": "main", "driver": "mfrc522", "uid": uid, "uid_len": len(uid) // 2}
        self.record("badge", at, badge, **kw)
        self.record("door", at + 8 * S, {"sensor": "front", "state": "closed"})

    def lose_last_answer(self) -> None:
        """The last upload reached the portal (receipt kept) but its answer never came."""
        self.anchor = self.before_last

    def reconnect(self, at: int) -> None:
        """Back in contact: the backlog goes up in one upload, answered."""
        self.online = True
        self.upload(at)


def day(
    pi: Pi,
    taps: list[int],
    *,
    outage: tuple[int, int] | None = None,
    lost_answer: bool = False,
) -> Pi:
    """A lesson day: boot hours before, heartbeats every 5 min, the taps, and an outage
    from ``outage[0]`` to ``outage[1]`` (the last answer before it lost if asked)."""
    first = START - 5 * 3600 * S
    events: list[tuple[int, str]] = [(first, "boot")]
    t = first + MIN
    while t <= START + 4 * 3600 * S:
        events.append((t, "beat"))
        t += 5 * MIN
    events += [(at, "tap") for at in taps]
    events.sort()
    cut = False
    for at, kind in events:
        if outage is not None and not cut and at >= outage[0]:
            cut = True
            if lost_answer:
                pi.lose_last_answer()
            pi.online = False
        if outage is not None and cut and not pi.online and at >= outage[1]:
            pi.reconnect(outage[1])
        if kind == "boot":
            pi.boot_record(at)
        elif kind == "beat":
            pi.record("heartbeat", at, {"pending": len(pi.pending)})
        else:
            pi.tap(at)
    return pi
