"""HTML pages: login with an admin token (session cookie), logout, the device overview."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from portal.auth import authenticate, current_principal, end_session, start_session
from portal.registry import list_devices
from portal.state import Portal

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))

router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the signed-in principal available as ``principal``."""
    context.setdefault("principal", current_principal(request))
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)


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
        return render(request, "login.html", 401, error="Unknown or revoked token.", next=target)
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
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    session_id = request.session.get("sid")
    if isinstance(session_id, str):
        portal: Portal = request.app.state.portal
        end_session(portal.engine, session_id, portal.clock())
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_model=None)
def overview(request: Request) -> Response:
    principal = current_principal(request)
    if principal is None:
        return login_required(request)
    portal: Portal = request.app.state.portal
    return render(request, "devices.html", devices=list_devices(portal.engine), principal=principal)
