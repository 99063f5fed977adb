"""What a personalisation station calls: a card's keys, sealed to it, and activation.

Both endpoints take the station grant as ``Authorization: Bearer`` (``qatysu-portal
cards issue``), read at most :data:`BODY_LIMIT` bytes of JSON, and never answer with a
key in the clear (docs/cards.md, "Personalising").
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agent.protocol.canonical import parse_json
from agent.protocol.errors import ProtocolError
from portal.api.models import ErrorBody
from portal.api.request_encoding import read_body
from portal.cards.registry import CardRefused, activate_card, station_keys
from portal.exceptions import MalformedRequest
from portal.keys import load_or_create_card_master
from portal.state import Portal

router = APIRouter(prefix="/api/v1/cards", tags=["cards"])

BODY_LIMIT = 1024  # a UID and a 32-byte key, or a UID and a SUN message


def _body(raw: bytes, fields: tuple[str, ...]) -> dict[str, Any]:
    try:
        value = parse_json(raw)
    except ProtocolError as exc:
        raise MalformedRequest(f"body is not JSON: {exc}") from None
    if not isinstance(value, dict) or set(value) != set(fields):
        raise MalformedRequest(f"body must be a JSON object with exactly {', '.join(fields)}")
    return value


def _grant(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _refused(exc: CardRefused) -> JSONResponse:
    return JSONResponse({"error": exc.error, "detail": str(exc)}, status_code=exc.status)


def _unauthorized() -> JSONResponse:
    detail = "a station grant is required (Authorization: Bearer)"
    return JSONResponse({"error": "unauthorized", "detail": detail}, status_code=401)


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    401: {"model": ErrorBody, "description": "unknown, expired or used-up grant"},
    409: {"model": ErrorBody, "description": "card already active"},
    413: {"model": ErrorBody},
}


@router.post("/keys", status_code=201, responses=_ERRORS)
async def card_keys(request: Request) -> Any:
    """The keys of card ``uid`` sealed to ``station_key`` and signed by the portal."""
    portal: Portal = request.app.state.portal
    grant = _grant(request)
    if grant is None:
        return _unauthorized()
    body = _body(await read_body(request, BODY_LIMIT), ("uid", "station_key"))
    try:
        sealed = await run_in_threadpool(
            lambda: station_keys(
                portal.engine,
                load_or_create_card_master(portal.settings.data_dir),
                portal.key,
                grant,
                body["uid"],
                body["station_key"],
                now=portal.clock(),
            )
        )
    except CardRefused as exc:
        return _refused(exc)
    return JSONResponse(sealed, status_code=201)


@router.post("/activate", responses={**_ERRORS, 422: {"model": ErrorBody}})
async def card_activate(request: Request) -> Any:
    """Activate a personalised card with its first SUN read (``picc``, ``mac``)."""
    portal: Portal = request.app.state.portal
    grant = _grant(request)
    if grant is None:
        return _unauthorized()
    body = _body(await read_body(request, BODY_LIMIT), ("uid", "picc", "mac"))
    try:
        counter = await run_in_threadpool(
            lambda: activate_card(
                portal.engine,
                load_or_create_card_master(portal.settings.data_dir),
                grant,
                body["uid"],
                body["picc"],
                body["mac"],
                now=portal.clock(),
            )
        )
    except CardRefused as exc:
        return _refused(exc)
    return {"uid": body["uid"], "state": "active", "counter": counter}
