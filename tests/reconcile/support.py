"""Small builders for hand-made device logs (reconciliation tests)."""

from __future__ import annotations

from datetime import date, time
from types import EllipsisType
from typing import Any
from zoneinfo import ZoneInfo

from portal.reconcile.engine import CenterInput, Result, reconcile
from portal.reconcile.lessons import ScheduleEntry, local_ms
from portal.reconcile.model import (
    Confirmation,
    DeviceLog,
    IntegrityEvent,
    Member,
    ReconcileSettings,
)

ZONE = ZoneInfo("Asia/Almaty")
DAY = date(2024, 6, 3)  # a Monday, UTC+5
START = local_ms(DAY, time(15, 0), ZONE)
END = local_ms(DAY, time(16, 30), ZONE)
S = 1000
MIN = 60 * S
SCHEDULE = [ScheduleEntry("G1", "C1", 1, time(15, 0), time(16, 30), 3000)]
MEMBERS = [
    Member("K1", "G1", "C1", frozenset({"04A1B2C3"})),
    Member("K2", "G1", "C1", frozenset({"04A1B2C4"})),
]


# A connected device: each record names the receipt of the upload before it (under a
# heartbeat interval earlier) and is covered by its own upload seconds later.
CONNECTED = ...
ANCHOR_BEFORE = 60 * S
COVERED_AFTER = 2 * S


class Log:
    """Appends synced records to a device log, one heartbeat every 5 minutes by default.

    Unless given, a record's receipt bounds are a connected device's (``CONNECTED``);
    pass None for a bound the record lacks.
    """

    def __init__(self, device: str = "D1", center: str = "C1", boot: str = "b1") -> None:
        self.log = DeviceLog(device, center)
        self.seq = 0
        self.boot = boot
        self.boot_start = START - 3 * 3600 * S

    def add(
        self,
        type: str,
        at: int,
        data: dict[str, Any] | None = None,
        *,
        wall: int | None = None,
        synced: bool = True,
        anchor_ms: int | EllipsisType | None = CONNECTED,
        covered_ms: int | EllipsisType | None = CONNECTED,
        boot: str | None = None,
    ) -> int:
        self.seq += 1
        if anchor_ms is CONNECTED:
            anchor_ms = at - ANCHOR_BEFORE
        if covered_ms is CONNECTED:
            covered_ms = at + COVERED_AFTER
        assert not isinstance(anchor_ms, EllipsisType)
        assert not isinstance(covered_ms, EllipsisType)
        self.log.append(
            seq=self.seq,
            type=type,
            wall_ms=at if wall is None else wall,
            synced=synced,
            boot=boot or self.boot,
            mono_ns=(at - self.boot_start) * 1_000_000,
            anchor_ms=anchor_ms,
            covered_ms=covered_ms,
            data=data or {},
        )
        return self.seq

    def boot_record(
        self,
        at: int,
        doors: tuple[str, ...] = ("front",),
        readers: dict[str, str] | None = None,
        **kw: Any,
    ) -> int:
        """A boot record as the agent writes it: doors, readers and each one's driver."""
        pairs = {"main": "mfrc522"} if readers is None else readers
        data = {
            "doors": list(doors),
            "readers": list(pairs),
            "drivers": sorted(set(pairs.values())),
            "reader_drivers": pairs,
        }
        return self.add("boot", at, data, **kw)

    def badge(
        self, at: int, uid: str, reader: str = "main", driver: str = "mfrc522", **kw: Any
    ) -> int:
        return self.add(
            "badge",
            at,
            {"reader": reader, "driver": driver, "uid": uid, "uid_len": len(uid) // 2},
            **kw,
        )

    def door(self, at: int, state: str, sensor: str = "front") -> int:
        return self.add("door", at, {"sensor": sensor, "state": state})

    def heartbeats(self, lo: int, hi: int, every: int = 5 * MIN) -> None:
        t = lo
        while t <= hi:
            self.add("heartbeat", t, {"pending": 0})
            t += every


def sorted_log(log: DeviceLog) -> DeviceLog:
    """The log re-ordered by time (tests add records out of order) and renumbered."""
    order = sorted(range(len(log)), key=lambda i: log.mono_ns[i])
    out = DeviceLog(log.device_id, log.center_id)
    for n, i in enumerate(order, 1):
        out.append(
            seq=n,
            type=log.type[i],
            wall_ms=log.wall_ms[i],
            synced=log.synced[i],
            boot=log.boot[i],
            mono_ns=log.mono_ns[i],
            anchor_ms=log.anchor_ms[i],
            covered_ms=log.covered_ms[i],
            data=log.data[i],
        )
    return out


def run(
    logs: list[DeviceLog],
    confirmations: list[Confirmation],
    events: list[IntegrityEvent] | None = None,
    settings: ReconcileSettings | None = None,
    schedule: list[ScheduleEntry] | None = None,
    last: date = DAY,
) -> Result:
    return reconcile(
        DAY,
        last,
        schedule=schedule or SCHEDULE,
        members=MEMBERS,
        confirmations=confirmations,
        load_center=lambda c: CenterInput(
            c, [lg for lg in logs if lg.center_id == c], list(events or [])
        ),
        settings=settings or ReconcileSettings(),
        zone=ZONE,
    )


def confirm(child: str = "K1", day: date = DAY) -> Confirmation:
    return Confirmation(child, "G1", day, f"{day} 20:00", "parent")


def status(result: Result, child: str = "K1") -> tuple[str, tuple[str, ...]]:
    rows = [r for r in result.rows if r.child_id == child]
    assert len(rows) == 1, rows
    return rows[0].status, rows[0].reasons
