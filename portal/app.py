"""The FastAPI application: routers, error mapping, sessions, lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from portal import __version__
from portal.api import admin, cards, devices, reports
from portal.api.browser_guards import BrowserGuards
from portal.api.models import Health
from portal.api.request_encoding import InflateRequestBodies
from portal.exceptions import (
    ClientGone,
    EnrollmentRefused,
    MalformedRequest,
    NotFoundError,
    PortalConfigError,
    RequestTooLarge,
    RevokedDeviceError,
)
from portal.ingest.reverify import check_unchecked_signatures
from portal.keys import load_or_create_secret
from portal.reconcile.lessons import load_zone
from portal.settings import Settings
from portal.state import Portal, open_portal
from portal.web import auditor, i18n, pages

__all__ = ["create_app", "worker_app"]

logger = logging.getLogger(__name__)

_ENROLL_STATUS = {"unknown": 401, "gone": 410, "conflict": 409}


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


def create_app(settings: Settings, *, portal: Portal | None = None) -> FastAPI:
    """The portal application; opens (and migrates) the store unless ``portal`` is given."""
    load_zone(settings.tz)  # refuse zone data that lacks Asia/Almaty's 2024 change
    state = portal or open_portal(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        checker = None
        if settings.check_signatures == "tail":
            checker = asyncio.create_task(_signature_pass(state))
        yield
        if checker is not None:
            checker.cancel()
        if portal is None:
            state.close()

    app = FastAPI(
        title="Qatysu portal",
        version=__version__,
        description="Enrollment, verified ingest of signed presence records, receipts.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN: off, so no page of
        # the portal pulls code from elsewhere. /openapi.json stays (it is data).
        docs_url=None,
        redoc_url=None,
    )
    app.state.portal = state
    # The report exports speak the pages' language; the API sits below the pages in
    # the layers, so their words are handed down here (decision 0960).
    app.state.languages = reports.Languages(i18n.pick, i18n.translator)
    app.add_middleware(InflateRequestBodies, limit=settings.max_body_bytes)
    app.add_middleware(
        SessionMiddleware,
        secret_key=load_or_create_secret(settings.data_dir),
        session_cookie="qatysu_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    # Outermost: its headers reach every answer, errors and the 413 included.
    app.add_middleware(BrowserGuards)
    app.include_router(devices.router)
    app.include_router(cards.router)
    app.include_router(admin.router)
    app.include_router(pages.router)
    app.include_router(reports.router)
    app.include_router(auditor.router)

    @app.get("/api/v1/health", response_model=Health, tags=["devices"])
    def health() -> Health:
        """Liveness, and the portal key a device pins."""
        return Health(status="ok", portal_public_key=state.public_key)

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone) -> JSONResponse:
        # One line, not a traceback: devices lose power mid-upload all the time.
        logger.info("%s %s: %s", request.method, request.url.path, exc)
        return _error(400, "incomplete", str(exc))

    @app.exception_handler(MalformedRequest)
    async def _malformed(_: Request, exc: MalformedRequest) -> JSONResponse:
        return _error(400, "malformed", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, "malformed", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(RequestTooLarge)
    async def _too_large(_: Request, exc: RequestTooLarge) -> JSONResponse:
        return _error(413, "too_large", str(exc))

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(RevokedDeviceError)
    async def _revoked(_: Request, exc: RevokedDeviceError) -> JSONResponse:
        return _error(403, "revoked", str(exc))

    @app.exception_handler(EnrollmentRefused)
    async def _enroll(_: Request, exc: EnrollmentRefused) -> JSONResponse:
        return _error(_ENROLL_STATUS.get(exc.kind, 400), exc.kind, str(exc))

    @app.exception_handler(PortalConfigError)
    async def _bad_value(_: Request, exc: PortalConfigError) -> JSONResponse:
        return _error(400, "invalid", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": _HTTP_ERRORS.get(exc.status_code, "error"), "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    return app


async def _signature_pass(state: Portal) -> None:
    """Tail mode: check the signatures stored unchecked, in the background."""
    while True:
        try:
            checked, bad = await run_in_threadpool(
                check_unchecked_signatures, state.engine, now=state.clock()
            )
        except Exception:  # the database may be briefly away; try again later
            logger.exception("background signature pass failed")
            checked = 0
        else:
            if bad:
                logger.warning("background pass: %d of %d signatures bad", bad, checked)
        if checked == 0:
            await asyncio.sleep(state.settings.signature_pass_s)


_HTTP_ERRORS = {
    400: "malformed",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
}


def worker_app() -> FastAPI:
    """The app of one ``serve --workers N`` process (uvicorn calls this in each worker).

    The parent migrated the store and made the key; the settings come from the same
    environment (``serve`` puts its --data-dir and --db there). The rate buckets are
    shared in the database so N processes together allow the configured rate.
    """
    from portal.http_server import GuardedH11Protocol

    settings = Settings.from_env()
    GuardedH11Protocol.head_timeout_s = settings.head_timeout_s
    portal = open_portal(settings, migrate=False, shared_limits=True)
    return create_app(settings, portal=portal)
