"""Auditor pages (server-rendered, no JavaScript): centers, a center, a lesson, devices."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import desc, select

from portal.api.reports import parse_day, period, reconciled, risk_entries
from portal.auth import Principal, current_principal
from portal.db.schema import integrity_events, records
from portal.exceptions import NotFoundError, PortalConfigError
from portal.reconcile.lessons import load_zone
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.report import row_dict
from portal.reconcile.rules import STATUSES
from portal.reconcile.totals import totals
from portal.registry import list_devices
from portal.state import Portal
from portal.web import i18n
from portal.web.pages import login_required, render

router = APIRouter(include_in_schema=False)


def _context(request: Request) -> tuple[Principal | None, dict[str, Any]]:
    """Who is asking, and the language, translations and period every page shows."""
    principal = current_principal(request)
    portal: Portal = request.app.state.portal
    asked = request.query_params.get("lang")
    lang = i18n.pick(
        asked,
        request.session.get("lang"),
        request.headers.get("accept-language", ""),
        portal.settings.language,
    )
    if asked in i18n.LANGS:
        request.session["lang"] = asked
    zone = load_zone(ReconcileSettings.from_portal(portal.settings).timezone)
    keep = {k: v for k, v in request.query_params.items() if k in ("from", "to")}
    return principal, {
        "lang": lang,
        "t": i18n.translator(lang),
        "langs": i18n.LANGS,
        "zone": zone,
        "query": ("?" + urlencode(keep)) if keep else "",
        "path": request.url.path,
        "statuses": STATUSES,
        "principal": principal,
        "when": lambda ms: (
            "—"
            if ms is None
            else datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%Y-%m-%d %H:%M")
        ),
        "pct": lambda x: "—" if x is None else f"{x:.1%}",
    }


def _page(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> HTMLResponse:
    response = render(request, name, status, **ctx)
    response.headers["Content-Language"] = ctx["lang"]
    return response


def _error(request: Request, ctx: dict[str, Any], exc: Exception, status: int) -> HTMLResponse:
    return _page(request, "audit_error.html", {**ctx, "message": str(exc)}, status)


@router.get("/audit", response_model=None)
def centers_page(request: Request) -> Response:
    principal, ctx = _context(request)
    if principal is None:
        return login_required(request)
    try:
        first, last = period(
            request, request.query_params.get("from"), request.query_params.get("to")
        )
    except PortalConfigError as exc:
        return _error(request, ctx, exc, 400)
    result = reconciled(request, first, last, None)
    return _page(
        request,
        "audit_centers.html",
        {**ctx, "first": first, "last": last, "totals": totals(result)},
    )


@router.get("/audit/centers/{center_id}", response_model=None)
def center_page(request: Request, center_id: str) -> Response:
    principal, ctx = _context(request)
    if principal is None:
        return login_required(request)
    try:
        first, last = period(
            request, request.query_params.get("from"), request.query_params.get("to")
        )
        result = reconciled(request, first, last, center_id)
    except PortalConfigError as exc:
        return _error(request, ctx, exc, 400)
    except NotFoundError as exc:
        return _error(request, ctx, exc, 404)
    summary = totals(result)
    rows = sorted(
        result.rows, key=lambda r: (r.status == "verified", r.date, r.group_id, r.child_id)
    )
    return _page(
        request,
        "audit_center.html",
        {
            **ctx,
            "first": first,
            "last": last,
            "center_id": center_id,
            "center": next(iter(summary["centers"]), None),
            "groups": summary["groups"],
            "rows": rows,
        },
    )


@router.get("/audit/centers/{center_id}/lessons/{group_id}/{day}", response_model=None)
def lesson_page(request: Request, center_id: str, group_id: str, day: str) -> Response:
    principal, ctx = _context(request)
    if principal is None:
        return login_required(request)
    try:
        when = parse_day(day, "date")
        assert when is not None
        result = reconciled(request, when, when, center_id)
    except PortalConfigError as exc:
        return _error(request, ctx, exc, 400)
    except NotFoundError as exc:
        return _error(request, ctx, exc, 404)
    rows = [row_dict(r, ctx["zone"]) for r in result.rows if r.group_id == group_id]
    lesson = next((r.lesson for r in result.rows if r.group_id == group_id and r.lesson), None)
    return _page(
        request,
        "audit_lesson.html",
        {
            **ctx,
            "center_id": center_id,
            "group_id": group_id,
            "day": when,
            "rows": rows,
            "lesson": lesson,
            "coverage": rows[0]["evidence"]["heartbeats"] if rows else None,
        },
    )


@router.get("/audit/risk", response_model=None)
def risk_page(request: Request) -> Response:
    """The risk queue (docs/reconciliation.md, "Risk queue"): where to send inspectors."""
    principal, ctx = _context(request)
    if principal is None:
        return login_required(request)
    try:
        first, last = period(
            request, request.query_params.get("from"), request.query_params.get("to")
        )
    except PortalConfigError as exc:
        return _error(request, ctx, exc, 400)
    entries = risk_entries(request, first, last)
    return _page(
        request,
        "audit_risk.html",
        {**ctx, "first": first, "last": last, "entries": entries[:RISK_PAGE_ROWS]},
    )


RISK_PAGE_ROWS = 200  # the page shows the head of the queue; the CSV has all of it


@router.get("/audit/devices", response_model=None)
def devices_page(request: Request) -> Response:
    principal, ctx = _context(request)
    if principal is None:
        return login_required(request)
    portal: Portal = request.app.state.portal
    found = list_devices(portal.engine)
    with portal.engine.connect() as conn:
        for d in found:
            beat = conn.execute(
                select(records.c.data)
                .where(records.c.device_id == d["device_id"], records.c.type == "heartbeat")
                .order_by(desc(records.c.seq))
                .limit(1)
            ).scalar()
            d["backlog"] = beat.get("pending") if isinstance(beat, dict) else None
        events = [
            dict(r._mapping)
            for r in conn.execute(
                select(integrity_events).order_by(desc(integrity_events.c.at_ms)).limit(200)
            )
        ]
    return _page(request, "audit_devices.html", {**ctx, "devices": found, "events": events})


__all__ = ["router"]
