"""Reconciliation over HTTP: the reports (JSON, CSV, XLSX, HTML) and the CSV imports.

The report GETs take a bearer token or the pages' session cookie, so the download
links on the auditor pages work as they are. The exports speak the language the
pages would (``?lang=``, the session's, the browser's, the portal's setting); the
words come from the pages' translations, which sit in a layer above this one:
:func:`portal.app.create_app` hands them down as ``app.state.languages``
(decision 0960).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from portal.auth import Auditor, Operator
from portal.cards.registry import card_book
from portal.exceptions import ImportFileError, PortalConfigError
from portal.reconcile.engine import Result
from portal.reconcile.lessons import load_zone
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.report import CSV_DELIMITERS, RENDERERS, ReportOptions
from portal.reconcile.risk import RiskEntry
from portal.reconcile.risk_report import RENDERERS as RISK_RENDERERS
from portal.reconcile.risk_store import run_risk
from portal.reconcile.store import KINDS, apply_import, center_names, run_reconciliation
from portal.state import Portal

router = APIRouter(tags=["reports"])

# The report formats the API offers (docs/reconciliation.md), out of report.RENDERERS
# (the terminal table is the CLI's).
API_FORMATS = ("json", "csv", "xlsx", "html")
RISK_FORMATS = ("json", "csv", "xlsx", "html")


@dataclass(frozen=True, slots=True)
class Languages:
    """The pages' language choice and words (portal.web.i18n), handed to the API."""

    pick: Callable[[str | None, str | None, str, str], str]
    words: Callable[[str], Mapping[str, str]]


def report_options(request: Request, lang: str | None, delimiter: str | None) -> ReportOptions:
    """The language and CSV convention of an export, as the pages would choose them."""
    languages: Languages | None = getattr(request.app.state, "languages", None)
    default = _portal(request).settings.language
    if languages is None:  # an app built without the pages: the portal's language
        return ReportOptions(default, {}, delimiter)
    session = request.session.get("lang") if "session" in request.scope else None
    chosen = languages.pick(lang, session, request.headers.get("accept-language", ""), default)
    return ReportOptions(chosen, languages.words(chosen), delimiter)


# Reconciling a city-month takes seconds: pages and API calls within this many
# seconds of each other share one computation per (period, center).
CACHE_S = 60.0
MAX_IMPORT_BYTES = 32 * 1024 * 1024


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


def parse_day(value: str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise PortalConfigError(f"{name}: {value!r} is not a date YYYY-MM-DD") from None


def period(request: Request, first: str | None, last: str | None) -> tuple[date, date]:
    """The asked period, by default the current month up to today (portal zone)."""
    settings = ReconcileSettings.from_portal(_portal(request).settings)
    today = datetime.fromtimestamp(
        _portal(request).clock() / 1000, tz=load_zone(settings.timezone)
    ).date()
    day2 = parse_day(last, "to") or today
    day1 = parse_day(first, "from") or day2.replace(day=1)
    if day2 < day1:
        raise PortalConfigError(f"to {day2} is before from {day1}")
    if day2 - day1 > timedelta(days=366):
        raise PortalConfigError("a report covers at most 366 days")
    return day1, day2


def reconciled(request: Request, first: date, last: date, center: str | None) -> Result:
    """The reconciliation of the period (one center or all), cached for a minute."""
    portal = _portal(request)
    cache: dict[tuple[Any, ...], tuple[float, Result]] = request.app.state.__dict__.setdefault(
        "reconcile_cache", {}
    )
    key = (first, last, center)
    hit = cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < CACHE_S:
        return hit[1]
    settings = ReconcileSettings.from_portal(portal.settings)
    result = run_reconciliation(
        portal.engine,
        first,
        last,
        settings,
        load_zone(settings.timezone),
        center=center,
        cards=card_book(portal.engine, portal.settings.data_dir),
    )
    for stale in [k for k, (at, _) in cache.items() if now - at >= CACHE_S]:
        del cache[stale]
    cache[key] = (now, result)
    return result


@router.get("/api/v1/reports/reconciliation", response_model=None)
def reconciliation_report(
    request: Request,
    _who: Auditor,
    first: Annotated[str, Query(alias="from", description="First date, YYYY-MM-DD")],
    last: Annotated[str, Query(alias="to", description="Last date (inclusive)")],
    center: Annotated[str | None, Query(description="Only this center")] = None,
    format: Annotated[str, Query(pattern=f"^({'|'.join(API_FORMATS)})$")] = "json",
    lang: Annotated[str | None, Query(description="en, ru or kk (XLSX, HTML, CSV)")] = None,
    delimiter: Annotated[
        str | None,
        Query(
            pattern=f"^({'|'.join(CSV_DELIMITERS)})$",
            description="CSV: comma (`,`, no BOM) or semicolon (`;`, BOM); "
            "by default the language's (ru, kk: semicolon)",
        ),
    ] = None,
) -> Response:
    """docs/reconciliation.md: ``{"from", "to", "rows", "totals"}``, or the report as
    CSV, XLSX or HTML (a download)."""
    day1, day2 = period(request, first, last)
    result = reconciled(request, day1, day2, center)
    zone = load_zone(ReconcileSettings.from_portal(_portal(request).settings).timezone)
    renderer = RENDERERS[format]
    headers = {}
    if renderer.attachment:
        part = f"-{center}" if center and center.isalnum() else ""
        name = f"reconciliation{part}-{day1}-{day2}.{renderer.extension}"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    body = renderer.render(result, zone, report_options(request, lang, delimiter))
    return Response(body, media_type=renderer.media_type, headers=headers)


def risk_entries(request: Request, first: date, last: date) -> list[RiskEntry]:
    """The risk queue of the period with its spot checks, cached for a minute."""
    portal = _portal(request)
    cache: dict[tuple[Any, ...], tuple[float, list[RiskEntry]]] = (
        request.app.state.__dict__.setdefault("risk_cache", {})
    )
    now = time.monotonic()
    hit = cache.get((first, last))
    if hit is not None and now - hit[0] < CACHE_S:
        return hit[1]
    settings = ReconcileSettings.from_portal(portal.settings)
    entries = run_risk(portal.engine, first, last, settings, load_zone(settings.timezone))
    for stale in [k for k, (at, _) in cache.items() if now - at >= CACHE_S]:
        del cache[stale]
    cache[(first, last)] = (now, entries)
    return entries


@router.get("/api/v1/reports/risk", response_model=None)
def risk_report(
    request: Request,
    _who: Auditor,
    first: Annotated[str, Query(alias="from", description="First date, YYYY-MM-DD")],
    last: Annotated[str, Query(alias="to", description="Last date (inclusive)")],
    format: Annotated[str, Query(pattern=f"^({'|'.join(RISK_FORMATS)})$")] = "json",
    lang: Annotated[str | None, Query(description="en, ru or kk (CSV convention)")] = None,
    delimiter: Annotated[
        str | None, Query(pattern=f"^({'|'.join(CSV_DELIMITERS)})$", description="CSV")
    ] = None,
) -> Response:
    """docs/reconciliation.md, "Risk queue": ``{"from", "to", "entries"}``, or CSV."""
    day1, day2 = period(request, first, last)
    entries = risk_entries(request, day1, day2)
    render, media_type = RISK_RENDERERS[format]
    headers = {}
    if format in ("csv", "xlsx", "html"):
        headers["Content-Disposition"] = f'attachment; filename="risk-{day1}-{day2}.{format}"'
    portal: Portal = request.app.state.portal
    with portal.engine.connect() as conn:
        names = center_names(conn)
    options = replace(report_options(request, lang, delimiter), center_names=names)
    body = render(entries, day1, day2, options)
    return Response(body, media_type=media_type, headers=headers)


@router.post("/api/v1/admin/imports/{kind}", response_model=None)
async def import_file(
    request: Request,
    kind: str,
    _who: Operator,
    name: Annotated[str, Query(description="File name used in error messages")] = "upload.csv",
    allow_long: Annotated[
        bool,
        Query(description="Admit schedule lessons longer than lesson_max_min (--allow-long)"),
    ] = False,
) -> JSONResponse:
    """Load a CSV (the request body, as is) like ``qatysu-portal import KIND FILE``.

    422 ``{"error": "import", "detail": "FILE:LINE:COLUMN: ..."}`` and nothing
    stored when a row is bad.
    """
    if kind not in KINDS:
        return JSONResponse({"error": "not_found", "detail": f"no import kind {kind!r}"}, 404)
    data = await request.body()
    if len(data) > MAX_IMPORT_BYTES:
        return JSONResponse(
            {
                "error": "too_large",
                "detail": f"import files are limited to {MAX_IMPORT_BYTES // 2**20} MiB",
            },
            413,
        )
    portal = _portal(request)
    try:
        outcome = apply_import(
            portal.engine,
            kind,
            data,
            name,
            now=portal.clock(),
            allow_long=allow_long,
            settings=ReconcileSettings.from_portal(portal.settings),
        )
    except ImportFileError as exc:
        return JSONResponse({"error": "import", "detail": str(exc)}, 422)
    request.app.state.__dict__.get("reconcile_cache", {}).clear()
    request.app.state.__dict__.get("risk_cache", {}).clear()
    return JSONResponse(
        {
            "kind": kind,
            "rows": outcome.rows,
            "added": outcome.added,
            "changed": outcome.changed,
            "unchanged": outcome.unchanged,
        }
    )
