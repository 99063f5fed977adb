"""The risk queue's database shell: spot checks stored and read, the queue computed.

The scoring itself is :func:`portal.reconcile.risk.risk_queue` (pure); this module
runs the reconciliation with the reads kept (for departures and lone arrivals),
loads the roster, lessons and spot checks, and hands them over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select

from portal.db.engine import write_transaction
from portal.exceptions import NotFoundError, PortalConfigError
from portal.reconcile.engine import Result, reconcile
from portal.reconcile.index import CenterIndex, Read
from portal.reconcile.lessons import Lesson, lessons, local_ms
from portal.reconcile.model import Member, ReconcileSettings
from portal.reconcile.risk import RiskEntry, SpotCheck, risk_queue
from portal.reconcile.schema import spotchecks
from portal.reconcile.store import (
    _no_gc,
    known_centers,
    load_center,
    load_confirmations,
    load_members,
    load_schedule,
)

MAX_PRESENT = 10_000  # more children than any club has: a typing error
MAX_NOTE = 2000


def add_spotcheck(engine: Engine, check: SpotCheck, *, now: int) -> int:
    """Store an inspector's count; refuses an unknown center or an impossible count."""
    if not 0 <= check.present <= MAX_PRESENT:
        raise PortalConfigError(
            f"--present: {check.present} is not a count of children (0..{MAX_PRESENT})"
        )
    if len(check.note) > MAX_NOTE or len(check.by) > 200:
        raise PortalConfigError(f"--note is limited to {MAX_NOTE} characters, --by to 200")
    with write_transaction(engine) as conn:
        if check.center_id not in known_centers(conn):
            raise NotFoundError(f"center {check.center_id!r} is not registered")
        row = conn.execute(
            insert(spotchecks)
            .values(
                center_id=check.center_id,
                date=check.date.isoformat(),
                present=check.present,
                note=check.note,
                by=check.by,
                recorded_ms=now,
            )
            .returning(spotchecks.c.id)
        ).one()
        return int(row[0])


def load_spotchecks(engine: Engine, first: date, last: date) -> list[SpotCheck]:
    query = (
        select(spotchecks)
        .where(spotchecks.c.date.between(first.isoformat(), last.isoformat()))
        .order_by(spotchecks.c.center_id, spotchecks.c.date, spotchecks.c.id)
    )
    with engine.connect() as conn:
        return [
            SpotCheck(
                r.center_id, date.fromisoformat(r.date), r.present, r.note, r.by, r.recorded_ms
            )
            for r in conn.execute(query)
        ]


@dataclass(slots=True)
class RiskInputs:
    """What :func:`risk_queue` reads besides the spot checks."""

    result: Result
    members: list[Member]
    lessons: list[Lesson]
    reads: dict[str, Sequence[Read]]


def run_for_risk(
    engine: Engine,
    first: date,
    last: date,
    settings: ReconcileSettings,
    zone: ZoneInfo,
) -> RiskInputs:
    """Reconcile ``first`` .. ``last`` from the database, keeping every center's reads."""
    lo = local_ms(first, time(0), zone) - settings.margin_s * 1000
    hi = local_ms(last + timedelta(days=1), time(0), zone)
    reads: dict[str, Sequence[Read]] = {}

    def keep(center_id: str, index: CenterIndex) -> None:
        reads[center_id] = index.reads

    with engine.connect() as conn, _no_gc():
        schedule = load_schedule(conn)
        members = load_members(conn)
        result = reconcile(
            first,
            last,
            schedule=schedule,
            members=members,
            confirmations=load_confirmations(conn, first, last),
            load_center=lambda c: load_center(conn, c, lo, hi),
            settings=settings,
            zone=zone,
            observe=keep,
        )
    return RiskInputs(result, members, lessons(schedule, first, last, zone), reads)


def run_risk(
    engine: Engine, first: date, last: date, settings: ReconcileSettings, zone: ZoneInfo
) -> list[RiskEntry]:
    """The ranked queue of the period, with its spot checks."""
    inputs = run_for_risk(engine, first, last, settings, zone)
    return risk_queue(
        inputs.result,
        members=inputs.members,
        lessons=inputs.lessons,
        reads=inputs.reads,
        spotchecks=load_spotchecks(engine, first, last),
    )


__all__ = ["RiskInputs", "add_spotcheck", "load_spotchecks", "run_for_risk", "run_risk"]
