"""HTML pages: login with an admin token (session cookie), logout, the device overview."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from portal.auth import authenticate, current_principal
from portal.registry import list_devices
from portal.state import Portal

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))

router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the signed-in principal available as ``principal``."""
    context.setdefault("principal", current_principal(request))
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return render(request, "login.html", error=None)


@router.post("/login", response_model=None)
def login(request: Request, token: str = Form("")) -> Response:
    portal: Portal = request.app.state.portal
    principal = authenticate(portal.engine, token.strip()) if token.strip() else None
    if principal is None:
        return render(request, "login.html", 401, error="Unknown or revoked token.")
    request.session["token_hash"] = principal.token_hash
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout(request: Request) -> RedirectResponse:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", response_model=None)
def overview(request: Request) -> Response:
    principal = current_principal(request)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    portal: Portal = request.app.state.portal
    return render(request, "devices.html", devices=list_devices(portal.engine), principal=principal)
