"""The reconciliation's database shell: apply imports, load what the engine reads.

Imports run in one write transaction per file: the parsed rows are compared
with what is stored under the same keys, and only new or changed rows are
written, so importing the same file again changes nothing. Each row written is
also appended to its table's history (``*_versions``) with the import's time
and file, from which the loaders give the engine every schedule version and
each badge's owner by time. Loading reads one
center at a time, only the columns the rules need, in seq order, with the
``data`` of heartbeats left in the database.
"""

from __future__ import annotations

import gc
import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
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

from agent.protocol import normalise_uid
from portal.db.engine import write_transaction
from portal.db.schema import (
    card_counters,
    centers,
    device_addresses,
    devices,
    integrity_events,
    receipts,
    records,
)
from portal.exceptions import ImportFileError, NotFoundError, PortalError
from portal.reconcile import imports
from portal.reconcile.cards import CardBook
from portal.reconcile.engine import CenterInput, Result, reconcile
from portal.reconcile.lessons import (
    ScheduleApproval,
    ScheduleEntry,
    instant_ms,
    load_zone,
    local_ms,
)
from portal.reconcile.model import (
    DATA_TYPES,
    Confirmation,
    DeviceLog,
    IntegrityEvent,
    Member,
    ReconcileSettings,
)
from portal.reconcile.schema import (
    badge_versions,
    badges,
    confirmation_versions,
    confirmations,
    roster,
    roster_versions,
    schedule,
    schedule_approvals,
    schedule_versions,
)

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


def apply_import(
    engine: Engine,
    kind: str,
    data: bytes,
    name: str,
    *,
    now: int,
    allow_long: bool = False,
    settings: ReconcileSettings | None = None,
) -> ImportOutcome:
    """Parse ``data`` (a CSV file called ``name``) and store it, all or nothing.

    ``now`` is the import's time: the history records it and the reconciliation
    judges late schedule changes and badge moves by it. ``settings`` give the
    longest lesson admitted without ``allow_long`` and the zone of local times.
    """
    if kind not in KINDS:
        raise ImportFileError(f"{name}: unknown import kind {kind!r}; use {', '.join(KINDS)}")
    settings = settings or ReconcileSettings()
    with write_transaction(engine) as conn:
        if kind == "roster":
            rows = imports.parse_roster(
                data, name, centers=known_centers(conn), groups=known_groups(conn)
            )
            return _apply_roster(conn, rows, now, name)
        if kind == "schedule":
            entries = imports.parse_schedule(
                data,
                name,
                centers=known_centers(conn),
                groups=known_groups(conn),
                lesson_max_min=settings.lesson_max_min,
                allow_long=allow_long,
            )
            return _apply_schedule(conn, entries, now, name)
        parsed = imports.parse_confirmations(
            data,
            name,
            children=known_children(conn),
            groups=known_groups(conn),
            zone=load_zone(settings.timezone),
        )
        return _apply_confirmations(conn, parsed, now, name)


def _upsert(
    conn: Connection,
    table: Any,
    keys: Sequence[str],
    values: Sequence[str],
    rows: list[dict[str, Any]],
    existing: dict[tuple[Any, ...], tuple[Any, ...]],
    now: int,
    kind: str,
    history: Any,
    file: str,
    extra: Sequence[str] = (),
    version: Mapping[str, Any] | None = None,
) -> ImportOutcome:
    """Write new and changed rows, and each of them as a version in ``history``.

    ``extra`` columns are stored but not compared (derived from the values);
    ``version`` adds columns to the history rows only.
    """
    new, changed, versions = [], [], []
    for row in rows:
        key = tuple(row[k] for k in keys)
        held = existing.get(key)
        if held is None:
            new.append({**row, "imported_ms": now})
        elif held != tuple(row[v] for v in values):
            changed.append(
                {
                    **{f"k_{k}": row[k] for k in keys},
                    **{v: row[v] for v in (*values, *extra)},
                    "imported_ms": now,
                }
            )
        else:
            continue
        versions.append(
            {
                **{c: row[c] for c in (*keys, *values)},
                **(version or {}),
                "imported_ms": now,
                "file": file,
            }
        )
    if new:
        conn.execute(insert(table), new)
    if changed:
        stmt = update(table).where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
        conn.execute(stmt, changed)
    if versions:
        conn.execute(insert(history), versions)
    return ImportOutcome(kind, len(rows), len(new), len(changed))


def _apply_roster(
    conn: Connection, rows: list[imports.RosterRow], now: int, file: str
) -> ImportOutcome:
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
    _upsert(
        conn,
        roster,
        ("child_id", "group_id"),
        ("center_id", "child_name"),
        list(members.values()),
        held,
        now,
        "roster",
        roster_versions,
        file,
    )
    owners = {r.badge_uid: {"uid": r.badge_uid, "child_id": r.child_id} for r in rows}
    held_badges = {(x.uid,): (x.child_id,) for x in conn.execute(select(badges))}
    _upsert(
        conn,
        badges,
        ("uid",),
        ("child_id",),
        list(owners.values()),
        held_badges,
        now,
        "badge",
        badge_versions,
        file,
    )
    # The operator counts file lines, each one (membership, badge) pair: changed if a
    # stored value it names differs, added if either is new, else unchanged (summing
    # the two tables' counts said "2 added, -1 unchanged" for one new line).
    added = changed = 0
    for r in rows:
        member = held.get((r.child_id, r.group_id))
        owner = held_badges.get((r.badge_uid,))
        if (member is not None and member != (r.center_id, r.child_name)) or (
            owner is not None and owner != (r.child_id,)
        ):
            changed += 1
        elif member is None or owner is None:
            added += 1
    return ImportOutcome("roster", len(rows), added, changed)


def _apply_schedule(
    conn: Connection, entries: list[ScheduleEntry], now: int, file: str
) -> ImportOutcome:
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
    # The city's first schedule import is its baseline: it applies from the beginning
    # (a schedule imported once, after lessons already took place, is no late change).
    first = conn.execute(select(schedule_versions.c.version).limit(1)).first() is None
    return _upsert(
        conn,
        schedule,
        ("group_id", "weekday", "valid_from"),
        values,
        rows,
        held,
        now,
        "schedule",
        schedule_versions,
        file,
        version={"baseline": first},
    )


def _apply_confirmations(
    conn: Connection, parsed: list[Confirmation], now: int, file: str
) -> ImportOutcome:
    rows: list[dict[str, Any]] = [
        {
            "child_id": c.child_id,
            "group_id": c.group_id,
            "date": c.date.isoformat(),
            "confirmed_at": c.confirmed_at,
            "signer": c.signer,
            "confirmed_ms": c.confirmed_ms,
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
        confirmation_versions,
        file,
        extra=("confirmed_ms",),
    )


# --- schedule approvals and history ------------------------------------------------------


def approve_schedule(
    engine: Engine, group_id: str, first: date, last: date, *, by: str, note: str, now: int
) -> ScheduleApproval:
    """Approve the group's schedule as it stands ``now`` for its lessons ``first`` .. ``last``."""
    [done] = _approve(engine, [group_id], None, first, last, by=by, note=note, now=now)
    return done


def approve_backlog(
    engine: Engine,
    first: date,
    last: date,
    *,
    by: str,
    note: str,
    now: int,
    center: str | None = None,
) -> list[ScheduleApproval]:
    """Approve every group's schedule (of ``center``, or of the city) as it stands ``now``
    for ``first`` .. ``last``: the backlog of schedules first imported after their lessons."""
    return _approve(engine, None, center, first, last, by=by, note=note, now=now)


def _approve(
    engine: Engine,
    group_ids: list[str] | None,
    center: str | None,
    first: date,
    last: date,
    *,
    by: str,
    note: str,
    now: int,
) -> list[ScheduleApproval]:
    if not by.strip():
        raise PortalError("an approval needs the name of the operator (--by)")
    if last < first:
        raise PortalError(f"--to {last} is before {first}")
    with write_transaction(engine) as conn:
        groups = known_groups(conn)
        if group_ids is None:
            if center is not None and center not in groups.values():
                raise NotFoundError(f"center {center!r} has no schedule")
            group_ids = sorted(g for g, c in groups.items() if center in (None, c))
        for group_id in group_ids:
            if group_id not in groups:
                raise NotFoundError(f"group {group_id!r} is not in the schedule")
        done = [
            ScheduleApproval(group_id, first, last, now, by.strip(), note) for group_id in group_ids
        ]
        if done:
            conn.execute(
                insert(schedule_approvals),
                [
                    {
                        "group_id": a.group_id,
                        "first": first.isoformat(),
                        "last": last.isoformat(),
                        "approved_ms": now,
                        "by": a.by,
                        "note": note,
                    }
                    for a in done
                ],
            )
    return done


def load_approvals(conn: Connection) -> list[ScheduleApproval]:
    return [
        ScheduleApproval(
            r.group_id,
            date.fromisoformat(r.first),
            date.fromisoformat(r.last),
            int(r.approved_ms),
            r.by,
            r.note,
        )
        for r in conn.execute(select(schedule_approvals).order_by(schedule_approvals.c.id))
    ]


HISTORY_KINDS = ("schedule", "roster", "badge", "confirmations", "approvals")


def history(engine: Engine, kind: str, key: str) -> list[dict[str, Any]]:
    """Every stored version of the rows of ``key`` (a group for ``schedule`` and
    ``approvals``, a child for ``roster`` and ``confirmations``, a badge UID for
    ``badge``), oldest first, as plain dicts."""
    if kind not in HISTORY_KINDS:
        raise PortalError(f"no history {kind!r}; use {', '.join(HISTORY_KINDS)}")
    if kind == "approvals":
        query = (
            select(schedule_approvals)
            .where(schedule_approvals.c.group_id == key)
            .order_by(schedule_approvals.c.id)
        )
    else:
        table, column = {
            "schedule": (schedule_versions, "group_id"),
            "roster": (roster_versions, "child_id"),
            "confirmations": (confirmation_versions, "child_id"),
            "badge": (badge_versions, "uid"),
        }[kind]
        if kind == "badge":
            try:
                key = normalise_uid(key, what="badge uid")
            except ValueError as exc:
                raise PortalError(str(exc)) from None
        query = select(table).where(table.c[column] == key).order_by(table.c.version)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


# --- loading for the engine ------------------------------------------------------------


def load_schedule(conn: Connection) -> list[ScheduleEntry]:
    """Every version of every schedule row, each with the time it was imported (None for
    the baseline) and the time the next version of its key replaced it (None: current)."""

    def day(text: str) -> date | None:
        return date.fromisoformat(text) if text else None

    v = schedule_versions.c
    query = select(schedule_versions).order_by(v.group_id, v.weekday, v.valid_from, v.version)
    rows = list(conn.execute(query))
    out = []
    for n, r in enumerate(rows):
        nxt = rows[n + 1] if n + 1 < len(rows) else None
        same_key = nxt is not None and (nxt.group_id, nxt.weekday, nxt.valid_from) == (
            r.group_id,
            r.weekday,
            r.valid_from,
        )
        out.append(
            ScheduleEntry(
                r.group_id,
                r.center_id,
                r.weekday,
                time.fromisoformat(r.start),
                time.fromisoformat(r.end),
                int(r.price_kzt),
                day(r.valid_from),
                day(r.valid_to),
                imported_ms=None if r.baseline else int(r.imported_ms),
                replaced_ms=int(nxt.imported_ms) if same_key and nxt is not None else None,
            )
        )
    return out


def load_members(conn: Connection) -> list[Member]:
    """Memberships with their badges, each with the time range it holds.

    A badge's first owner has it from the beginning, each later owner from the import
    that moved it, until the next move. A child's memberships in its first roster
    import hold from the beginning, one added later from its import on.
    """
    periods: dict[str, list[tuple[str, int | None, int | None]]] = defaultdict(list)
    b = badge_versions.c
    held: list[tuple[str, str, int]] = [
        (r.uid, r.child_id, int(r.imported_ms))
        for r in conn.execute(select(b.uid, b.child_id, b.imported_ms).order_by(b.uid, b.version))
    ]
    for n, (uid, child, _at) in enumerate(held):
        since = None if n == 0 or held[n - 1][0] != uid else _at
        nxt = held[n + 1] if n + 1 < len(held) and held[n + 1][0] == uid else None
        periods[child].append((uid, since, None if nxt is None else nxt[2]))
    r_ = roster_versions.c
    joined: dict[tuple[str, str], int] = {}
    first_seen: dict[str, int] = {}
    for child, group, at in conn.execute(select(r_.child_id, r_.group_id, r_.imported_ms)):
        joined[(child, group)] = min(int(at), joined.get((child, group), int(at)))
        first_seen[child] = min(int(at), first_seen.get(child, int(at)))
    out = []
    for r in conn.execute(select(roster)):
        key = (r.child_id, r.group_id)
        start = joined.get(key)
        member_from = None if start is None or start == first_seen[r.child_id] else start
        spans: dict[tuple[int | None, int | None], set[str]] = defaultdict(set)
        for uid, since, until in periods.get(r.child_id, ()):
            lo = since if member_from is None else max(member_from, since or member_from)
            if until is not None and lo is not None and until <= lo:
                continue  # the badge had moved away before the membership began
            spans[(lo, until)].add(uid)
        if not spans:
            spans[(member_from, None)] = set()
        for (lo, hi), uids in spans.items():
            out.append(
                Member(r.child_id, r.group_id, r.center_id, frozenset(uids), r.child_name, lo, hi)
            )
    return out


def load_confirmations(
    conn: Connection, first: date, last: date, zone: ZoneInfo | None = None
) -> list[Confirmation]:
    """The period's confirmations; ``confirmed_ms`` stored before the import history is
    read from ``confirmed_at`` in ``zone`` (the portal's)."""
    c_ = confirmations.c
    query = select(
        c_.child_id, c_.group_id, c_.date, c_.confirmed_at, c_.signer, c_.confirmed_ms
    ).where(c_.date.between(first.isoformat(), last.isoformat()))
    days: dict[str, date] = {}  # a month has 31 dates and 100,000 confirmations
    out = []
    for child, group, day, at, signer, ms in conn.execute(query):
        when = days.get(day)
        if when is None:
            when = days[day] = date.fromisoformat(day)
        if ms is None and at and zone is not None:
            ms = instant_ms(at, zone)
        out.append(Confirmation(child, group, when, at, signer, ms))
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
        log.boot_before = latest_boot_before(conn, device_id, log.seq[0] if log.seq else first_seq)
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


# The latest boot record before a seq: one seek on the partial index ix_records_boots
# (the literal ``type = 'boot'`` is what lets both back ends use it).
_BOOT_SQL = (
    "SELECT data FROM records WHERE device_id = {p} AND type = 'boot' AND seq < {p} "
    "ORDER BY seq DESC LIMIT 1"
)


def latest_boot_before(conn: Connection, device_id: str, seq: int) -> dict[str, Any] | None:
    """The data of the device's latest ``boot`` record before ``seq``, however old.

    A device booted once at install, months before the period, has no boot record in
    the loaded range; its doors and readers are still those this record declared.
    """
    cursor = conn.connection.cursor()
    try:
        cursor.execute(_sql(conn, _BOOT_SQL), (device_id, seq))
        row = cursor.fetchone()
    finally:
        cursor.close()
    if row is None:
        return None
    data = row[0] if isinstance(row[0], dict) else _DECODER.raw_decode(row[0])[0]
    return data if isinstance(data, dict) else None


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
    cards: CardBook | None = None,
) -> Result:
    """Reconcile ``first`` .. ``last`` (inclusive) from the database.

    ``cards`` (from :func:`portal.cards.registry.card_book`) checks each read by its
    card; the counters it accepts are kept for later periods (decision 0921).
    """
    lo = local_ms(first, time(0), zone) - settings.margin_s * 1000
    hi = local_ms(last + timedelta(days=1), time(0), zone)
    with engine.connect() as conn, _no_gc():
        known = known_centers(conn)
        if center is not None and center not in known:
            raise NotFoundError(f"center {center!r} is not registered")
        if cards is not None:
            cards = CardBook(cards.keys, cards.require_auth, load_card_counters(conn, lo, hi))
        members = load_members(conn)
        result = reconcile(
            first,
            last,
            schedule=load_schedule(conn),
            members=members,
            confirmations=load_confirmations(conn, first, last, zone),
            load_center=lambda c: load_center(conn, c, lo, hi),
            settings=settings,
            zone=zone,
            centers=None if center is None else [center],
            approvals=load_approvals(conn),
            cards=cards,
        )
        result.child_names = {m.child_id: m.child_name for m in members if m.child_name}
        result.center_names = center_names(conn)
    if result.card_accepted:
        keep_card_counters(engine, result.card_accepted)
    return result


def load_card_counters(
    conn: Connection, lo_ms: int, hi_ms: int
) -> dict[str, list[tuple[int, str, int, int]]]:
    """Counters accepted by earlier runs: per card the highest before ``lo_ms`` (all a
    read of the period must exceed) and each one in ``[lo_ms, hi_ms)`` (a read there
    not loaded this time still orders those after it)."""
    c = card_counters.c
    out: dict[str, list[tuple[int, str, int, int]]] = defaultdict(list)
    before = select(c.uid, func.max(c.counter)).where(c.time_ms < lo_ms).group_by(c.uid)
    for uid, counter in conn.execute(before):
        out[uid].append((lo_ms - 1, "", 0, int(counter)))
    during = select(c.uid, c.time_ms, c.device_id, c.seq, c.counter).where(
        c.time_ms >= lo_ms, c.time_ms < hi_ms
    )
    for uid, t, dev, seq, counter in conn.execute(during):
        out[uid].append((int(t), dev, int(seq), int(counter)))
    return out


def keep_card_counters(engine: Engine, accepted: list[tuple[str, str, int, int, int]]) -> None:
    """Store the accepted SUN reads (once each: a rerun of a period adds nothing)."""
    rows = [
        {"uid": u, "device_id": d, "seq": q, "counter": n, "time_ms": t}
        for u, d, q, n, t in accepted
    ]
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
        for k in range(0, len(rows), 1000):
            conn.execute(upsert(card_counters).on_conflict_do_nothing(), rows[k : k + 1000])


def center_names(conn: Connection) -> dict[str, str]:
    """Each registered center's display name, by id."""
    return {r.center_id: r.name for r in conn.execute(select(centers.c.center_id, centers.c.name))}


def center_districts(conn: Connection) -> dict[str, str]:
    """Each registered center's district, by id (centers without one are left out)."""
    query = select(centers.c.center_id, centers.c.district).where(centers.c.district.is_not(None))
    return {r.center_id: r.district for r in conn.execute(query)}
