"""Auditor and operator pages (server-rendered, no JavaScript): centers, a center, a lesson,
the risk queue with spot-check entry, devices."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import desc, select

from portal.api.reports import parse_day, period, reconciled, risk_entries
from portal.auth import current_principal
from portal.db.schema import integrity_events, receipts, records
from portal.exceptions import NotFoundError, PortalConfigError
from portal.reconcile.lessons import load_zone
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.report import row_dict
from portal.reconcile.risk import SpotCheck
from portal.reconcile.risk_store import add_spotcheck
from portal.reconcile.store import center_devices, center_districts, center_names
from portal.reconcile.totals import totals
from portal.registry import list_devices
from portal.state import Portal
from portal.web import charts, formatting, i18n
from portal.web.listing import paged, sorted_by
from portal.web.pages import language, login_required, render

router = APIRouter(include_in_schema=False)

# The overview's filters (``?show=``) and sort keys (``?sort=``).
CENTER_FILTERS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "all": lambda c: True,
    "at_risk": lambda c: c["kzt_at_risk"] > 0,
    "unverifiable": lambda c: c["kzt_unverifiable"] > 0,
    "offline": lambda c: c["offline_lessons"] > 0,
    "clean": lambda c: c["kzt_at_risk"] == 0 and c["kzt_unverifiable"] == 0,
}
CENTER_SORTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda c: c["name"].casefold() or c["center_id"],
    "kzt_at_risk": lambda c: c["kzt_at_risk"],
    "kzt_unverifiable": lambda c: c["kzt_unverifiable"],
    "share_verified": lambda c: -1.0 if c["share_verified"] is None else c["share_verified"],
    "offline_lessons": lambda c: c["offline_lessons"],
    "lessons_total": lambda c: sum(c["lessons"].values()),
}
TREND_WEEKS = 12
RISK_PAGE_ROWS = 200  # the page shows the head of the queue; the CSV has all of it


def _period(request: Request) -> tuple[date, date]:
    return period(request, request.query_params.get("from"), request.query_params.get("to"))


def _error(request: Request, exc: Exception, status: int) -> HTMLResponse:
    # The heading in the page's language; the detail names the field or id, as the API's.
    return render(request, "audit_error.html", status, message=str(exc), code=status)


def _names(request: Request) -> dict[str, str]:
    portal: Portal = request.app.state.portal
    with portal.engine.connect() as conn:
        return center_names(conn)


def _downloads(first: date, last: date, center: str | None = None) -> dict[str, str]:
    base = {"from": first.isoformat(), "to": last.isoformat()}
    if center:
        base["center"] = center
    return {
        f: "/api/v1/reports/reconciliation?" + urlencode({**base, "format": f})
        for f in ("xlsx", "csv", "html", "json")
    }


@router.get("/audit", response_model=None)
def centers_page(request: Request) -> Response:
    if current_principal(request) is None:
        return login_required(request)
    try:
        first, last = _period(request)
    except PortalConfigError as exc:
        return _error(request, exc, 400)
    summary = totals(reconciled(request, first, last, None))
    names = _names(request)
    portal: Portal = request.app.state.portal
    with portal.engine.connect() as conn:
        districts = center_districts(conn)
    params = request.query_params
    show = params.get("show", "all")
    if show not in CENTER_FILTERS:
        show = "all"
    district = params.get("district", "")
    needle = params.get("q", "").strip().casefold()
    rows = [
        {**c, "name": names.get(c["center_id"], ""), "district": districts.get(c["center_id"], "")}
        for c in summary["centers"]
    ]
    rows = [
        c
        for c in sorted(rows, key=lambda c: (c["name"].casefold(), c["center_id"]))
        if CENTER_FILTERS[show](c)
        and (not district or c["district"] == district)
        and (not needle or needle in c["name"].casefold() or needle in c["center_id"].casefold())
    ]
    ordered, sort, order = sorted_by(
        rows, CENTER_SORTS, params, "kzt_at_risk", ascending_first=frozenset({"name"})
    )
    return render(
        request,
        "audit_centers.html",
        first=first,
        last=last,
        totals=summary,
        page=paged(ordered, params),
        sort=sort,
        order=order,
        show=show,
        filters=CENTER_FILTERS,
        sorts=CENTER_SORTS,
        q=params.get("q", ""),
        district=district,
        districts=sorted(set(districts.values()), key=str.casefold),
        downloads=_downloads(first, last),
    )


@router.get("/audit/centers/{center_id}", response_model=None)
def center_page(request: Request, center_id: str) -> Response:
    if current_principal(request) is None:
        return login_required(request)
    try:
        first, last = _period(request)
        result = reconciled(request, first, last, center_id)
        # The trend looks further back than the period: the weeks up to its end.
        monday = last - timedelta(days=last.weekday())
        trend = reconciled(request, monday - timedelta(weeks=TREND_WEEKS - 1), last, center_id)
    except PortalConfigError as exc:
        return _error(request, exc, 400)
    except NotFoundError as exc:
        return _error(request, exc, 404)
    summary = totals(result)
    status = request.query_params.get("status", "")
    rows = sorted(
        (r for r in result.rows if not status or r.status == status),
        key=lambda r: (r.status == "verified", r.date, r.group_id, r.child_id),
    )
    t = i18n.translator(language(request))
    return render(
        request,
        "audit_center.html",
        first=first,
        last=last,
        center_id=center_id,
        center_name=result.center_names.get(center_id, ""),
        child_names=result.child_names,
        center=next(iter(summary["centers"]), None),
        groups=summary["groups"],
        page=paged(rows, request.query_params, per_default=100),
        status_filter=status,
        trend=charts.weekly_trend(charts.weeks_of(trend.rows), lambda k: t.get(k, k)),
        downloads=_downloads(first, last, center_id),
    )


def _lesson_evidence(
    portal: Portal, center_id: str, window: tuple[int, int], reads: list[tuple[str, int]]
) -> tuple[list[int], dict[tuple[str, int], charts.Bracket]]:
    """The heartbeats of the center's devices in the window (device clock), and each
    read's proof: the receipt it anchors to and the one that covered it."""
    brackets: dict[tuple[str, int], charts.Bracket] = {}
    with portal.engine.connect() as conn:
        devices = center_devices(conn, center_id)
        beats = [
            int(ms)
            for (ms,) in conn.execute(
                select(records.c.wall_ms).where(
                    records.c.device_id.in_(devices),
                    records.c.type == "heartbeat",
                    records.c.wall_ms.between(window[0], window[1]),
                )
            )
        ]
        by_device: dict[str, list[int]] = {}
        for device_id, seq in reads:
            by_device.setdefault(device_id, []).append(seq)
        for device_id, seqs in by_device.items():
            query = (
                select(records.c.seq, records.c.covered_ms, receipts.c.server_ms)
                .select_from(records.outerjoin(receipts, receipts.c.hash == records.c.anchor))
                .where(records.c.device_id == device_id, records.c.seq.in_(seqs))
            )
            for seq, covered, anchor in conn.execute(query):
                brackets[(device_id, int(seq))] = charts.Bracket(anchor, covered)
    return sorted(beats), brackets


# ``group_id:path``: a group id with "/" arrives encoded (%2F) and is decoded before routing.
@router.get("/audit/centers/{center_id}/lessons/{group_id:path}/{day}", response_model=None)
def lesson_page(request: Request, center_id: str, group_id: str, day: str) -> Response:
    if current_principal(request) is None:
        return login_required(request)
    portal: Portal = request.app.state.portal
    try:
        when = parse_day(day, "date")
        assert when is not None
        result = reconciled(request, when, when, center_id)
    except PortalConfigError as exc:
        return _error(request, exc, 400)
    except NotFoundError as exc:
        return _error(request, exc, 404)
    found = sorted(
        (r for r in result.rows if r.group_id == group_id),
        key=lambda r: (result.child_names.get(r.child_id, "").casefold(), r.child_id),
    )
    lesson = next((r.lesson for r in found if r.lesson), None)
    coverage = next((r.coverage for r in found if r.coverage), None)
    settings = ReconcileSettings.from_portal(portal.settings)
    zone = load_zone(portal.settings.tz)
    timeline = None
    if lesson is not None:
        window = (
            (coverage.window_start_ms, coverage.window_end_ms)
            if coverage
            else (
                lesson.start_ms - settings.margin_s * 1000,
                lesson.end_ms + settings.margin_s * 1000,
            )
        )
        beats, brackets = _lesson_evidence(
            portal, center_id, window, [(r.device_id, r.seq) for row in found for r, _ in row.reads]
        )
        t = i18n.translator(language(request))
        timeline = charts.lesson_timeline(
            found,
            window=window,
            heartbeats=beats,
            brackets=brackets,
            names=result.child_names,
            word=lambda k: t.get(k, k),
            zone=zone,
            door_open_max_ms=settings.door_open_max_ms,
        )
    rows = [row_dict(r, zone) for r in found]
    doors = sorted(
        {d for r in found for d in r.doors}, key=lambda d: (d.time_ms, d.device_id, d.seq)
    )
    return render(
        request,
        "audit_lesson.html",
        center_id=center_id,
        center_name=result.center_names.get(center_id, ""),
        child_names=result.child_names,
        group_id=group_id,
        day=when,
        rows=rows,
        doors=doors,
        lesson=lesson,
        timeline=timeline,
        coverage=rows[0]["evidence"]["heartbeats"] if rows else None,
        clock=lambda ms: formatting.clock(ms, zone),
    )


def _risk(request: Request, status: int = 200, **extra: Any) -> Response:
    try:
        first, last = _period(request)
    except PortalConfigError as exc:
        return _error(request, exc, 400)
    entries = risk_entries(request, first, last)
    names = _names(request)
    return render(
        request,
        "audit_risk.html",
        status,
        first=first,
        last=last,
        entries=entries[:RISK_PAGE_ROWS],
        names=names,
        downloads={
            f: "/api/v1/reports/risk?"
            + urlencode({"from": first.isoformat(), "to": last.isoformat(), "format": f})
            for f in ("xlsx", "csv", "html", "json")
        },
        saved=request.query_params.get("saved") == "1",
        **extra,
    )


@router.get("/audit/risk", response_model=None)
def risk_page(request: Request) -> Response:
    """The risk queue (docs/reconciliation.md, "Risk queue"): where to send inspectors."""
    if current_principal(request) is None:
        return login_required(request)
    return _risk(request)


@router.post("/audit/risk/spotchecks", response_model=None)
def record_spotcheck(
    request: Request,
    center: str = Form(""),
    day: str = Form("", alias="date"),
    present: str = Form(""),
    note: str = Form(""),
) -> Response:
    """An inspector's count, entered by an operator (as ``qatysu-portal spotcheck add``)."""
    principal = current_principal(request)
    if principal is None:
        return login_required(request)
    if not principal.can_write:
        return render(request, "audit_error.html", 403, message="operators only")
    portal: Portal = request.app.state.portal
    try:
        when = parse_day(day, "date")
        if when is None:
            raise PortalConfigError("date: required (YYYY-MM-DD)")
        if not present.strip().isdigit():
            raise PortalConfigError(f"present: {present!r} is not a count of children")
        check = SpotCheck(center, when, int(present), note=note.strip(), by=principal.name)
        add_spotcheck(portal.engine, check, now=portal.clock())
    except (PortalConfigError, NotFoundError) as exc:
        return _risk(request, 400, form_error=str(exc), form={"center": center, "date": day})
    request.app.state.__dict__.get("risk_cache", {}).clear()
    back = {k: v for k, v in request.query_params.items() if k in ("from", "to")}
    return RedirectResponse("/audit/risk?" + urlencode({**back, "saved": "1"}), status_code=303)


@router.get("/audit/devices", response_model=None)
def devices_page(request: Request) -> Response:
    """Devices for operators: online now or silent since, clock offset, backlog, version,
    integrity events; times in the portal's zone."""
    if current_principal(request) is None:
        return login_required(request)
    portal: Portal = request.app.state.portal
    now = portal.clock()
    online_ms = 2 * portal.settings.heartbeat_interval_s * 1000
    found = list_devices(portal.engine)
    names = _names(request)
    with portal.engine.connect() as conn:
        for d in found:
            beat = conn.execute(
                select(records.c.data)
                .where(records.c.device_id == d["device_id"], records.c.type == "heartbeat")
                .order_by(desc(records.c.seq))
                .limit(1)
            ).scalar()
            d["backlog"] = beat.get("pending") if isinstance(beat, dict) else None
            d["online"] = d["last_seen_ms"] is not None and now - d["last_seen_ms"] <= online_ms
            d["center_name"] = names.get(d["center_id"], "")
            # The newest record that has both receipts: its device time against them.
            newest = conn.execute(
                select(records.c.wall_ms, records.c.covered_ms, receipts.c.server_ms)
                .select_from(records.join(receipts, receipts.c.hash == records.c.anchor))
                .where(records.c.device_id == d["device_id"], records.c.covered_ms.is_not(None))
                .order_by(desc(records.c.seq))
                .limit(1)
            ).first()
            d["offset"] = (
                None
                if newest is None
                else (newest.wall_ms - newest.covered_ms, newest.wall_ms - newest.server_ms)
            )
        events = [
            dict(r._mapping)
            for r in conn.execute(
                select(integrity_events).order_by(desc(integrity_events.c.at_ms)).limit(200)
            )
        ]
    lang = language(request)
    return render(
        request,
        "audit_devices.html",
        devices=found,
        events=events,
        now=now,
        tz=portal.settings.tz,
        secs=lambda ms: formatting.seconds(ms, lang),
    )


__all__ = ["router"]
