"""The reconciliation's database shell: apply imports, load what the engine reads.

Imports run in one write transaction per file: the parsed rows are compared
with what is stored under the same keys, and only new or changed rows are
written, so importing the same file again changes nothing. Loading reads one
center at a time, only the columns the rules need, in seq order, with the
``data`` of heartbeats left in the database.
"""

from __future__ import annotations

import gc
import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    func,
    insert,
    select,
    update,
)

from portal.db.engine import write_transaction
from portal.db.schema import (
    centers,
    device_addresses,
    devices,
    integrity_events,
    receipts,
    records,
)
from portal.exceptions import ImportFileError
from portal.reconcile import imports
from portal.reconcile.engine import CenterInput, Result, reconcile
from portal.reconcile.lessons import ScheduleEntry, local_ms
from portal.reconcile.model import (
    DATA_TYPES,
    Confirmation,
    DeviceLog,
    IntegrityEvent,
    Member,
    ReconcileSettings,
)
from portal.reconcile.schema import badges, confirmations, roster, schedule

logger = logging.getLogger(__name__)

KINDS = ("roster", "schedule", "confirmations")
DAY_MS = 86_400_000
# Records received up to this long after the period can still belong to it (a device
# that was offline uploads late; a clock set wrong claims another day).
LATE_MS = 7 * DAY_MS


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    kind: str
    rows: int
    added: int
    changed: int

    @property
    def unchanged(self) -> int:
        return self.rows - self.added - self.changed

    def summary(self, name: str) -> str:
        return (
            f"{name}: {self.rows} {self.kind} rows, {self.added} added, "
            f"{self.changed} changed, {self.unchanged} unchanged"
        )


# --- what is known (for checking an import) ------------------------------------------


def known_centers(conn: Connection) -> set[str]:
    return {r[0] for r in conn.execute(select(centers.c.center_id))}


def known_groups(conn: Connection) -> dict[str, str]:
    out = {
        r.group_id: r.center_id
        for r in conn.execute(select(schedule.c.group_id, schedule.c.center_id).distinct())
    }
    return out


def known_children(conn: Connection) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for r in conn.execute(select(roster.c.child_id, roster.c.group_id)):
        out[r.child_id].add(r.group_id)
    return out


# --- applying imports ------------------------------------------------------------------


def apply_import(engine: Engine, kind: str, data: bytes, name: str, *, now: int) -> ImportOutcome:
    """Parse ``data`` (a CSV file called ``name``) and store it, all or nothing."""
    if kind not in KINDS:
        raise ImportFileError(f"{name}: unknown import kind {kind!r}; use {', '.join(KINDS)}")
    with write_transaction(engine) as conn:
        if kind == "roster":
            rows = imports.parse_roster(
                data, name, centers=known_centers(conn), groups=known_groups(conn)
            )
            return _apply_roster(conn, rows, now)
        if kind == "schedule":
            entries = imports.parse_schedule(
                data, name, centers=known_centers(conn), groups=known_groups(conn)
            )
            return _apply_schedule(conn, entries, now)
        parsed = imports.parse_confirmations(
            data, name, children=known_children(conn), groups=known_groups(conn)
        )
        return _apply_confirmations(conn, parsed, now)


def _upsert(
    conn: Connection,
    table: Any,
    keys: Sequence[str],
    values: Sequence[str],
    rows: list[dict[str, Any]],
    existing: dict[tuple[Any, ...], tuple[Any, ...]],
    now: int,
    kind: str,
) -> ImportOutcome:
    new, changed = [], []
    for row in rows:
        key = tuple(row[k] for k in keys)
        held = existing.get(key)
        if held is None:
            new.append({**row, "imported_ms": now})
        elif held != tuple(row[v] for v in values):
            changed.append(
                {
                    **{f"k_{k}": row[k] for k in keys},
                    **{v: row[v] for v in values},
                    "imported_ms": now,
                }
            )
    if new:
        conn.execute(insert(table), new)
    if changed:
        stmt = update(table).where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
        conn.execute(stmt, changed)
    return ImportOutcome(kind, len(rows), len(new), len(changed))


def _apply_roster(conn: Connection, rows: list[imports.RosterRow], now: int) -> ImportOutcome:
    members: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        members[(r.child_id, r.group_id)] = {
            "child_id": r.child_id,
            "group_id": r.group_id,
            "center_id": r.center_id,
            "child_name": r.child_name,
        }
    held = {
        (x.child_id, x.group_id): (x.center_id, x.child_name) for x in conn.execute(select(roster))
    }
    out = _upsert(
        conn,
        roster,
        ("child_id", "group_id"),
        ("center_id", "child_name"),
        list(members.values()),
        held,
        now,
        "roster",
    )
    owners = {r.badge_uid: {"uid": r.badge_uid, "child_id": r.child_id} for r in rows}
    held_badges = {(x.uid,): (x.child_id,) for x in conn.execute(select(badges))}
    more = _upsert(
        conn, badges, ("uid",), ("child_id",), list(owners.values()), held_badges, now, "badge"
    )
    return ImportOutcome("roster", len(rows), out.added + more.added, out.changed + more.changed)


def _apply_schedule(conn: Connection, entries: list[ScheduleEntry], now: int) -> ImportOutcome:
    rows = [
        {
            "group_id": e.group_id,
            "center_id": e.center_id,
            "weekday": e.weekday,
            "valid_from": e.valid_from.isoformat() if e.valid_from else "",
            "valid_to": e.valid_to.isoformat() if e.valid_to else "",
            "start": f"{e.start:%H:%M}",
            "end": f"{e.end:%H:%M}",
            "price_kzt": e.price_kzt,
        }
        for e in entries
    ]
    values = ("center_id", "valid_to", "start", "end", "price_kzt")
    held = {
        (x.group_id, x.weekday, x.valid_from): tuple(x._mapping[v] for v in values)
        for x in conn.execute(select(schedule))
    }
    return _upsert(
        conn, schedule, ("group_id", "weekday", "valid_from"), values, rows, held, now, "schedule"
    )


def _apply_confirmations(conn: Connection, parsed: list[Confirmation], now: int) -> ImportOutcome:
    rows = [
        {
            "child_id": c.child_id,
            "group_id": c.group_id,
            "date": c.date.isoformat(),
            "confirmed_at": c.confirmed_at,
            "signer": c.signer,
        }
        for c in parsed
    ]
    held: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    if rows:
        lo, hi = min(r["date"] for r in rows), max(r["date"] for r in rows)
        query = select(confirmations).where(confirmations.c.date.between(lo, hi))
        held = {
            (x.child_id, x.group_id, x.date): (x.confirmed_at, x.signer)
            for x in conn.execute(query)
        }
    return _upsert(
        conn,
        confirmations,
        ("child_id", "group_id", "date"),
        ("confirmed_at", "signer"),
        rows,
        held,
        now,
        "confirmations",
    )


# --- loading for the engine ------------------------------------------------------------


def load_schedule(conn: Connection) -> list[ScheduleEntry]:
    def day(text: str) -> date | None:
        return date.fromisoformat(text) if text else None

    return [
        ScheduleEntry(
            r.group_id,
            r.center_id,
            r.weekday,
            time.fromisoformat(r.start),
            time.fromisoformat(r.end),
            int(r.price_kzt),
            day(r.valid_from),
            day(r.valid_to),
        )
        for r in conn.execute(select(schedule).order_by(schedule.c.group_id, schedule.c.weekday))
    ]


def load_members(conn: Connection) -> list[Member]:
    owned: dict[str, set[str]] = defaultdict(set)
    for r in conn.execute(select(badges.c.uid, badges.c.child_id)):
        owned[r.child_id].add(r.uid)
    return [
        Member(
            r.child_id, r.group_id, r.center_id, frozenset(owned.get(r.child_id, ())), r.child_name
        )
        for r in conn.execute(select(roster))
    ]


def load_confirmations(conn: Connection, first: date, last: date) -> list[Confirmation]:
    query = select(
        confirmations.c.child_id,
        confirmations.c.group_id,
        confirmations.c.date,
        confirmations.c.confirmed_at,
        confirmations.c.signer,
    ).where(confirmations.c.date.between(first.isoformat(), last.isoformat()))
    days: dict[str, date] = {}  # a month has 31 dates and 100,000 confirmations
    out = []
    for child, group, day, at, signer in conn.execute(query):
        when = days.get(day)
        if when is None:
            when = days[day] = date.fromisoformat(day)
        out.append(Confirmation(child, group, when, at, signer))
    return out


def center_devices(conn: Connection, center_id: str) -> list[str]:
    query = select(devices.c.device_id).where(devices.c.center_id == center_id)
    return sorted(r[0] for r in conn.execute(query.order_by(devices.c.device_id)))


# The hot read, as plain SQL on the driver's cursor: a million rows through SQLAlchemy's
# result objects cost more than the query itself. ``{p}`` is the driver's placeholder.
_LOG_SQL = (
    "SELECT seq, type, wall_ms, synced, boot, mono_ns, anchor, covered_ms FROM records "
    "WHERE device_id = {p} AND seq BETWEEN {p} AND {p} ORDER BY seq"
)
_DATA_SQL = (
    "SELECT seq, data FROM records WHERE device_id = {p} AND seq BETWEEN {p} AND {p} "
    "AND type IN ({types})"
)


_DECODER = json.JSONDecoder()


def _sql(conn: Connection, template: str) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return template.format(p=mark, types=", ".join(f"'{t}'" for t in DATA_TYPES))


def load_center(conn: Connection, center_id: str, lo_ms: int, hi_ms: int) -> CenterInput:
    """The center's records that may fall in ``[lo_ms, hi_ms]``, device by device."""
    inp = CenterInput(center_id)
    log_sql, data_sql = _sql(conn, _LOG_SQL), _sql(conn, _DATA_SQL)
    loads = _DECODER.raw_decode  # stored data is compact JSON: no whitespace to skip
    for device_id in center_devices(conn, center_id):
        # Anchors name receipts signed before the record was made: at most LATE_MS early.
        server_ms: dict[str, int] = dict(
            conn.execute(
                select(receipts.c.hash, receipts.c.server_ms).where(
                    receipts.c.device_id == device_id,
                    receipts.c.server_ms.between(lo_ms - LATE_MS, hi_ms + LATE_MS),
                )
            ).all()
        )
        # Received time grows with seq, so the period is one seq range.
        bounds = conn.execute(
            select(func.min(records.c.seq), func.max(records.c.seq))
            .where(records.c.device_id == device_id)
            .where(records.c.received_ms.between(lo_ms - DAY_MS, hi_ms + LATE_MS))
        ).one()
        first_seq, last_seq = bounds if bounds[0] is not None else (1, 0)
        log = DeviceLog(device_id, center_id)
        cursor = conn.connection.cursor()
        try:
            # Every record from the narrow index ix_records_reconcile, then the data of
            # the few types the rules look into (heartbeats are most of the rows).
            cursor.execute(log_sql, (device_id, first_seq, last_seq))
            rows = cursor.fetchall()  # one fetch, then columns: no per-row Python
            cursor.execute(data_sql, (device_id, first_seq, last_seq))
            payload = {
                seq: d if isinstance(d, dict) else loads(d)[0] for seq, d in cursor.fetchall()
            }
        finally:
            cursor.close()
        # The receipt timeline stale_anchor reads: the period's receipts and the first
        # one ever (an anchor "" is honest only before it).
        timeline = sorted(server_ms.values())
        first_ever = conn.execute(
            select(func.min(receipts.c.server_ms)).where(receipts.c.device_id == device_id)
        ).scalar()
        if first_ever is not None and (not timeline or first_ever < timeline[0]):
            timeline.insert(0, int(first_ever))
        log.receipt_ms = timeline
        log.uploads = [
            (int(r.first_ms), int(r.last_ms), str(r.address))
            for r in conn.execute(
                select(
                    device_addresses.c.first_ms,
                    device_addresses.c.last_ms,
                    device_addresses.c.address,
                )
                .where(
                    device_addresses.c.device_id == device_id,
                    device_addresses.c.last_ms >= lo_ms - DAY_MS,
                    device_addresses.c.first_ms <= hi_ms + LATE_MS,
                )
                .order_by(device_addresses.c.id)
            )
        ]
        if rows:
            seqs, kinds, walls, synced, boots, monos, anchors, covered = zip(*rows, strict=True)
            _resolve_anchors(conn, device_id, set(anchors), server_ms)
            get = server_ms.get
            log.seq = list(seqs)
            log.type = list(kinds)
            log.wall_ms = list(walls)
            log.synced = list(map(bool, synced))
            log.boot = list(boots)
            log.mono_ns = list(monos)
            log.anchor_ms = list(map(get, anchors))  # "" (no receipt yet) is no key: None
            log.covered_ms = list(covered)
            log.data = list(map(payload.get, seqs))
        inp.logs.append(log)
        for r in conn.execute(
            select(
                integrity_events.c.kind,
                integrity_events.c.first_seq,
                integrity_events.c.last_seq,
                integrity_events.c.at_ms,
                integrity_events.c.reason,
            ).where(integrity_events.c.device_id == device_id)
        ):
            inp.events.append(
                IntegrityEvent(device_id, r.kind, r.first_seq, r.last_seq, r.at_ms, r.reason)
            )
    return inp


def _resolve_anchors(
    conn: Connection, device_id: str, anchors: set[str], server_ms: dict[str, int]
) -> None:
    """Add the receipts named as anchors but signed before the loaded range (few: an old
    anchor is a device that was out of contact, or one that kept using an old receipt)."""
    missing = sorted(a for a in anchors if a and a not in server_ms)
    for k in range(0, len(missing), 500):
        server_ms.update(
            conn.execute(
                select(receipts.c.hash, receipts.c.server_ms).where(
                    receipts.c.device_id == device_id,
                    receipts.c.hash.in_(missing[k : k + 500]),
                )
            ).all()
        )


@contextmanager
def _no_gc() -> Iterator[None]:
    """Millions of small objects: the cyclic collector only slows the load down."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_reconciliation(
    engine: Engine,
    first: date,
    last: date,
    settings: ReconcileSettings,
    zone: ZoneInfo,
    *,
    center: str | None = None,
) -> Result:
    """Reconcile ``first`` .. ``last`` (inclusive) from the database."""
    lo = local_ms(first, time(0), zone) - settings.margin_s * 1000
    hi = local_ms(last + timedelta(days=1), time(0), zone)
    with engine.connect() as conn, _no_gc():
        known = known_centers(conn)
        if center is not None and center not in known:
            from portal.exceptions import NotFoundError

            raise NotFoundError(f"center {center!r} is not registered")
        return reconcile(
            first,
            last,
            schedule=load_schedule(conn),
            members=load_members(conn),
            confirmations=load_confirmations(conn, first, last),
            load_center=lambda c: load_center(conn, c, lo, hi),
            settings=settings,
            zone=zone,
            centers=None if center is None else [center],
        )
