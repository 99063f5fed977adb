"""Operator and auditor API under /api/v1/admin (bearer token or login session)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from portal.api.models import (
    Center,
    CenterIn,
    CenterList,
    DeviceInfo,
    DeviceList,
    EnrollTokenIn,
    EnrollTokenOut,
    ErrorBody,
    EventList,
    IntegrityEvent,
    RecordList,
    Revoked,
)
from portal.auth import Auditor, Operator
from portal.db.schema import centers, devices, integrity_events, records
from portal.exceptions import NotFoundError, PortalError
from portal.reconcile.store import HISTORY_KINDS, approve_schedule, history
from portal.registry import add_center, create_enroll_token, list_devices, revoke_device
from portal.state import Portal

_AUTH = {
    400: {"model": ErrorBody, "description": "malformed request"},
    401: {"model": ErrorBody, "description": "no valid token"},
    403: {"model": ErrorBody, "description": "needs an operator"},
    404: {"model": ErrorBody, "description": "not found"},
}
router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=_AUTH)  # type: ignore[arg-type]


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


def _known_device(portal: Portal, device_id: str) -> None:
    with portal.engine.connect() as conn:
        found = conn.execute(
            select(devices.c.device_id).where(devices.c.device_id == device_id)
        ).first()
    if found is None:
        raise NotFoundError(f"device {device_id!r} is not enrolled")


@router.get("/devices", response_model=DeviceList)
def get_devices(request: Request, _: Auditor) -> DeviceList:
    """Every device with its center, last contact, head and integrity events."""
    return DeviceList(devices=[DeviceInfo(**row) for row in list_devices(_portal(request).engine)])


@router.get("/devices/{device_id}/records", response_model=RecordList)
def get_records(
    device_id: str,
    request: Request,
    _: Auditor,
    after_seq: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> RecordList:
    """Stored records of one device as received, in seq order."""
    portal = _portal(request)
    _known_device(portal, device_id)
    with portal.engine.connect() as conn:
        rows = conn.execute(
            select(records.c.body)
            .where(records.c.device_id == device_id, records.c.seq > after_seq)
            .order_by(records.c.seq)
            .limit(limit)
        )
        return RecordList(records=[row.body for row in rows])


@router.get("/devices/{device_id}/events", response_model=EventList)
def get_events(device_id: str, request: Request, _: Auditor) -> EventList:
    """The device's integrity events: declared holes, signed records refused, forks."""
    portal = _portal(request)
    _known_device(portal, device_id)
    with portal.engine.connect() as conn:
        rows = conn.execute(
            select(integrity_events)
            .where(integrity_events.c.device_id == device_id)
            .order_by(integrity_events.c.id)
        )
        return EventList(events=[IntegrityEvent(**row._mapping) for row in rows])


@router.post("/devices/{device_id}/revoke", response_model=Revoked)
def post_revoke(device_id: str, request: Request, _: Operator) -> Revoked:
    """Refuse the device from now on; its history stays."""
    portal = _portal(request)
    changed = revoke_device(portal.engine, device_id, now=portal.clock())
    return Revoked(device_id=device_id, revoked=changed)


@router.get("/centers", response_model=CenterList)
def get_centers(request: Request, _: Auditor) -> CenterList:
    with _portal(request).engine.connect() as conn:
        rows = conn.execute(
            select(centers.c.center_id, centers.c.name, centers.c.district).order_by(
                centers.c.center_id
            )
        )
        return CenterList(
            centers=[Center(center_id=r.center_id, name=r.name, district=r.district) for r in rows]
        )


@router.post("/centers", response_model=Center, status_code=201)
def post_center(body: CenterIn, request: Request, _: Operator) -> Center:
    portal = _portal(request)
    add_center(portal.engine, body.center_id, body.name, now=portal.clock(), district=body.district)
    with portal.engine.connect() as conn:
        stored = conn.execute(
            select(centers.c.district).where(centers.c.center_id == body.center_id)
        ).scalar()
    return Center(center_id=body.center_id, name=body.name, district=stored)


@router.post("/enroll-tokens", response_model=EnrollTokenOut, status_code=201)
def post_enroll_token(body: EnrollTokenIn, request: Request, _: Operator) -> EnrollTokenOut:
    """A single-use enrollment token for a center, shown once."""
    portal = _portal(request)
    now = portal.clock()
    token = create_enroll_token(portal.engine, body.center_id, body.ttl_s * 1000, now=now)
    return EnrollTokenOut(token=token, center_id=body.center_id, expires_ms=now + body.ttl_s * 1000)


@router.get("/history/{kind}/{key}", response_model=None)
def get_history(kind: str, key: str, request: Request, _: Auditor) -> JSONResponse:
    """Every stored version of KEY's rows, oldest first (``qatysu-portal history``): KIND is
    schedule or approvals (KEY a group), roster or confirmations (a child), badge (a UID)."""
    if kind not in HISTORY_KINDS:
        raise NotFoundError(f"no history {kind!r}; use {', '.join(HISTORY_KINDS)}")
    try:
        versions: list[dict[str, Any]] = history(_portal(request).engine, kind, key)
    except PortalError as exc:  # a badge UID that is no hex
        return JSONResponse({"error": "invalid", "detail": str(exc)}, 400)
    if not versions:
        raise NotFoundError(f"no {kind} history for {key!r}")
    return JSONResponse({"kind": kind, "key": key, "versions": versions})


class ApprovalIn(BaseModel):
    group_id: str = Field(min_length=1, max_length=64)
    first: date
    last: date | None = None
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)


@router.post("/schedule/approvals", response_model=None, status_code=201)
def post_approval(body: ApprovalIn, request: Request, _: Operator) -> JSONResponse:
    """Approve a group's schedule as it stands now for its lessons ``first`` .. ``last``
    (``qatysu-portal schedule approve``)."""
    portal = _portal(request)
    try:
        done = approve_schedule(
            portal.engine,
            body.group_id,
            body.first,
            body.last or body.first,
            by=body.by,
            note=body.note,
            now=portal.clock(),
        )
    except NotFoundError:
        raise
    except PortalError as exc:
        return JSONResponse({"error": "invalid", "detail": str(exc)}, 400)
    request.app.state.__dict__.get("reconcile_cache", {}).clear()
    return JSONResponse(
        {
            "group_id": done.group_id,
            "first": done.first.isoformat(),
            "last": done.last.isoformat(),
            "approved_ms": done.approved_ms,
            "by": done.by,
            "note": done.note,
        },
        201,
    )
