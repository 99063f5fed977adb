"""HTML pages: the frame every page shares, login with a token (session cookie), logout.

Every page speaks the language :func:`language` picks and gets the same helpers
(translations, number and time formatting, links that keep the query).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import QueryParams

from portal.auth import Principal, authenticate, current_principal, end_session, start_session
from portal.reconcile.lessons import load_zone
from portal.reconcile.rules import STATUSES
from portal.state import Portal
from portal.web import formatting, i18n

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
# One path segment of a link: Jinja's urlencode leaves "/" as it is, and a group id
# from a schedule file may hold one (or "?", "#", a space).
TEMPLATES.env.filters["segment"] = lambda value: quote(str(value), safe="")

router = APIRouter(include_in_schema=False)


def language(request: Request) -> str:
    """``?lang=`` (kept in the session), the session's, the browser's, the portal's."""
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
    return lang


def query(params: QueryParams, **changes: Any) -> str:
    """The current query with ``changes`` (None drops a key), as ``?a=1&b=2`` or ``""``.

    ``lang`` never carries over: once chosen it lives in the session.
    """
    kept = {k: v for k, v in params.items() if k != "lang"}
    for key, value in changes.items():
        if value is None:
            kept.pop(key, None)
        else:
            kept[key] = str(value)
    return ("?" + urlencode(kept)) if kept else ""


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page in the request's language, with the signed-in principal."""
    portal: Portal = request.app.state.portal
    lang = language(request)
    zone = load_zone(portal.settings.tz)
    page: dict[str, Any] = {
        "principal": current_principal(request),
        "lang": lang,
        "t": i18n.translator(lang),
        "langs": i18n.LANGS,
        "lang_names": i18n.NAMES,
        "path": request.url.path,
        "statuses": STATUSES,
        "qs": partial(query, request.query_params),
        "zone": zone,
        "num": partial(formatting.number, lang=lang),
        "pct": partial(formatting.percent, lang=lang),
        "when": partial(formatting.local_time, zone=zone),
        **context,
    }
    response = TEMPLATES.TemplateResponse(request, name, page, status_code=status)
    response.headers["Content-Language"] = lang
    return response


def landing(principal: Principal) -> str:
    """Where a sign-in lands: auditors on the audit overview, operators on the devices."""
    return "/audit/devices" if principal.role == "operator" else "/audit"


def login_required(request: Request) -> HTMLResponse:
    """A page asked for without a session: 401 (docs/portal.md, Device API), with the login form.

    The form comes back to the page asked for once the token is accepted.
    """
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(request, "login.html", 401, error=None, next=target)


def _safe_next(target: str) -> str:
    # Only a path on this site: never an absolute or scheme-relative address.
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return render(request, "login.html", error=None)


@router.post("/login", response_model=None)
def login(
    request: Request, token: str = Form(""), next_: str = Form("/", alias="next")
) -> Response:
    portal: Portal = request.app.state.portal
    target = _safe_next(next_)
    principal = authenticate(portal.engine, token.strip()) if token.strip() else None
    if principal is None:
        return render(request, "login.html", 401, error="unknown_token", next=target)
    old = request.session.get("sid")
    if isinstance(old, str):
        end_session(portal.engine, old, portal.clock())
    # A fresh id at every login: a cookie planted before it is never the signed-in one.
    lang = request.session.get("lang")
    request.session.clear()
    if lang is not None:
        request.session["lang"] = lang
    request.session["sid"] = start_session(
        portal.engine, principal, portal.clock(), portal.settings.session_max_age_s
    )
    return RedirectResponse(landing(principal) if target == "/" else target, status_code=303)


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    session_id = request.session.get("sid")
    if isinstance(session_id, str):
        portal: Portal = request.app.state.portal
        end_session(portal.engine, session_id, portal.clock())
    lang = request.session.get("lang")
    request.session.clear()
    if lang is not None:  # the language is the browser's choice, not the session's
        request.session["lang"] = lang
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_model=None)
def home(request: Request) -> Response:
    principal = current_principal(request)
    if principal is None:
        return login_required(request)
    return RedirectResponse(landing(principal), status_code=303)
