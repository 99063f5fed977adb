"""What a personalisation station calls: enrollment, a card's keys sealed to it, activation.

``POST /station`` binds a station grant (``qatysu-portal cards issue``) to the
station's own Ed25519 key, once. ``/keys`` and ``/activate`` are then authenticated
by that key alone (``Authorization: QatysuStation KEY AT_MS SIGNATURE`` over the
method, path, time and body; agent.protocol.card_keys): no bearer secret crosses the
network after enrollment, a captured request is refused when sent again, and a club
device's key is refused with 403. Every body is read bounded (:data:`BODY_LIMIT`),
and no answer carries a key in the clear (docs/cards.md, "Personalising").
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agent.protocol import public_key_b64
from agent.protocol.canonical import parse_json
from agent.protocol.errors import ProtocolError
from portal.api.models import ErrorBody
from portal.api.request_encoding import read_body
from portal.cards.registry import (
    CardRefused,
    StationRequest,
    activate_card,
    enroll_station,
    station_keys,
)
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


def _refused(exc: CardRefused) -> JSONResponse:
    return JSONResponse({"error": exc.error, "detail": str(exc)}, status_code=exc.status)


def _signed(request: Request, path: str, raw: bytes) -> StationRequest:
    # The route's own path, not the URL's: a proxy's prefix must not break signatures.
    return StationRequest(request.headers.get("authorization"), "POST", router.prefix + path, raw)


def _unsigned(request: Request) -> JSONResponse | None:
    """401 before the body is read when no station signature is offered at all."""
    if request.headers.get("authorization"):
        return None
    detail = "a station signature is required (Authorization: QatysuStation ...)"
    return JSONResponse({"error": "unauthorized", "detail": detail}, status_code=401)


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    401: {"model": ErrorBody, "description": "no, unknown, stale or replayed station signature"},
    403: {"model": ErrorBody, "description": "a club device's key"},
    409: {"model": ErrorBody, "description": "card already active, or another station's"},
    413: {"model": ErrorBody},
}


@router.post("/station", status_code=201, responses={**_ERRORS, 410: {"model": ErrorBody}})
async def card_station(request: Request) -> Any:
    """Bind the grant ``grant`` to the station key ``public_key``; answer the pinned key."""
    portal: Portal = request.app.state.portal
    body = _body(await read_body(request, BODY_LIMIT), ("grant", "public_key"))
    if not isinstance(body["grant"], str) or not body["grant"]:
        raise MalformedRequest("grant must be text")
    try:
        done = await run_in_threadpool(
            lambda: enroll_station(
                portal.engine, body["grant"], body["public_key"], now=portal.clock()
            )
        )
    except CardRefused as exc:
        return _refused(exc)
    return JSONResponse({**done, "portal_public_key": public_key_b64(portal.key)}, 201)


@router.post("/keys", status_code=201, responses=_ERRORS)
async def card_keys(request: Request) -> Any:
    """The keys of card ``uid`` sealed to ``station_key`` and signed by the portal."""
    portal: Portal = request.app.state.portal
    if (refused := _unsigned(request)) is not None:
        return refused
    raw = await read_body(request, BODY_LIMIT)
    body = _body(raw, ("uid", "station_key", "resume"))
    try:
        sealed = await run_in_threadpool(
            lambda: station_keys(
                portal.engine,
                load_or_create_card_master(portal.settings.data_dir),
                portal.key,
                _signed(request, "/keys", raw),
                body["uid"],
                body["station_key"],
                body["resume"],
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
    if (refused := _unsigned(request)) is not None:
        return refused
    raw = await read_body(request, BODY_LIMIT)
    body = _body(raw, ("uid", "picc", "mac"))
    try:
        counter = await run_in_threadpool(
            lambda: activate_card(
                portal.engine,
                load_or_create_card_master(portal.settings.data_dir),
                _signed(request, "/activate", raw),
                body["uid"],
                body["picc"],
                body["mac"],
                now=portal.clock(),
            )
        )
    except CardRefused as exc:
        return _refused(exc)
    return {"uid": body["uid"], "state": "active", "counter": counter}
