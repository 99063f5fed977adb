"""What devices call: enroll, upload records, declare gaps, ask for the cursor."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from portal.api.models import (
    DEVICE_ERRORS,
    Accepted,
    EnrollRequest,
    EnrollResponse,
    ErrorBody,
    GapAnswer,
    ReceiptAnswer,
    Rejected,
)
from portal.api.request_encoding import read_body
from portal.exceptions import MalformedRequest, RequestTooLarge
from portal.ingest.abuse import record_abuse
from portal.ingest.batch import ingest_batch
from portal.ingest.body import parse_envelope
from portal.ingest.gaps import declare_gap
from portal.ingest.outcome import IngestOutcome
from portal.ingest.receipts import cursor_receipt
from portal.registry import enroll_device
from portal.state import Portal

router = APIRouter(prefix="/api/v1", tags=["devices"])

_RECORDS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["records"],
                    "properties": {
                        "records": {"type": "array", "items": {"type": "object"}, "maxItems": 5000}
                    },
                }
            }
        },
    }
}
_GAP_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["record"],
                    "properties": {"record": {"type": "object"}},
                }
            }
        },
    }
}


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


@router.post(
    "/enroll",
    status_code=201,
    response_model=EnrollResponse,
    responses={
        400: {"model": ErrorBody},
        401: {"model": ErrorBody, "description": "unknown token"},
        409: {"model": ErrorBody, "description": "key already enrolled"},
        410: {"model": ErrorBody, "description": "token used by another key or expired"},
    },
)
def enroll(body: EnrollRequest, request: Request) -> EnrollResponse:
    """Register a device key with a single-use enrollment token."""
    portal = _portal(request)
    done = enroll_device(
        portal.engine,
        body.token,
        body.public_key,
        body.agent_version,
        body.hardware,
        now=portal.clock(),
    )
    return EnrollResponse(
        device_id=done.device_id, center_id=done.center_id, portal_public_key=portal.public_key
    )


def _limited(
    portal: Portal, device_id: str, request: Request, record: object = None
) -> JSONResponse | None:
    assert portal.limiter is not None
    client = request.client.host if request.client else None
    wait = portal.limiter.take(portal.rate_key(device_id, client, record))
    if wait is None:
        return None
    return JSONResponse(
        {"error": "rate_limited", "detail": f"retry in {wait:.1f} s"},
        status_code=429,
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


@router.post(
    "/devices/{device_id}/records",
    response_model=Accepted,
    responses={
        **DEVICE_ERRORS,
        409: {"model": GapAnswer, "description": "the batch starts beyond the expected seq"},
        422: {"model": Rejected, "description": "the first bad record; the valid prefix is stored"},
    },
    openapi_extra=_RECORDS_BODY,
)
async def upload_records(device_id: str, request: Request) -> JSONResponse:
    """Store the longest valid prefix of a batch and answer with a signed receipt."""
    portal = _portal(request)
    try:
        body = await read_body(request, portal.settings.max_body_bytes)
        # Parsing and checking are CPU work: off the event loop, in worker threads.
        batch = await run_in_threadpool(_parse_batch, portal, body)
    except (MalformedRequest, RequestTooLarge):
        limited = _limited(portal, device_id, request)  # junk: the sender's bucket
        if limited is not None:
            return limited
        async with _logged_refusal(request, portal, device_id):
            raise
    first = batch[0] if batch else None
    limited = await run_in_threadpool(_limited, portal, device_id, request, first)
    if limited is not None:
        return limited
    client = request.client.host if request.client else None
    outcome = await run_in_threadpool(_ingest_parsed, portal, device_id, batch, client)
    return JSONResponse(outcome.body(), status_code=outcome.status)


@asynccontextmanager
async def _logged_refusal(request: Request, portal: Portal, device_id: str) -> AsyncIterator[None]:
    """Keep a line of evidence for a malformed or oversized upload, then let it answer."""
    try:
        yield
    except (MalformedRequest, RequestTooLarge) as exc:
        kind = "malformed" if isinstance(exc, MalformedRequest) else "too_large"
        client = request.client.host if request.client else None
        detail, now = str(exc), portal.clock()
        await run_in_threadpool(
            lambda: record_abuse(portal.engine, device_id, kind, detail, client=client, now=now)
        )
        raise


def _parse_batch(portal: Portal, body: bytes) -> list[Any]:
    batch = parse_envelope(body, "records")
    if not isinstance(batch, list):
        raise MalformedRequest("'records' must be a list")
    if len(batch) > portal.settings.max_batch_records:
        raise RequestTooLarge(
            f"{len(batch)} records in one batch; at most {portal.settings.max_batch_records}"
        )
    return batch


def _ingest_parsed(
    portal: Portal, device_id: str, batch: list[Any], client: str | None
) -> IngestOutcome:
    return ingest_batch(
        portal.engine,
        portal.key,
        device_id,
        batch,
        now=portal.clock(),
        signatures=portal.settings.check_signatures,
        pool=portal.pool,
        client=client,
    )


@router.post(
    "/devices/{device_id}/gaps",
    response_model=ReceiptAnswer,
    responses={**DEVICE_ERRORS, 422: {"model": Rejected, "description": "declaration refused"}},
    openapi_extra=_GAP_BODY,
)
async def declare_gaps(device_id: str, request: Request) -> JSONResponse:
    """Record a lost range declared by a signed ``gap`` record (docs/protocol.md)."""
    portal = _portal(request)
    try:
        record = parse_envelope(await read_body(request, portal.settings.max_body_bytes), "record")
    except (MalformedRequest, RequestTooLarge):
        limited = _limited(portal, device_id, request)  # junk: the sender's bucket
        if limited is not None:
            return limited
        async with _logged_refusal(request, portal, device_id):
            raise
    limited = await run_in_threadpool(_limited, portal, device_id, request, record)
    if limited is not None:
        return limited
    outcome = await run_in_threadpool(
        declare_gap, portal.engine, portal.key, device_id, record, now=portal.clock()
    )
    body = {"receipt": outcome.receipt} if outcome.status == 200 else outcome.body()
    return JSONResponse(body, status_code=outcome.status)


@router.get(
    "/devices/{device_id}/cursor",
    response_model=ReceiptAnswer,
    responses={k: v for k, v in DEVICE_ERRORS.items() if k in (403, 404, 429)},
)
def cursor(device_id: str, request: Request) -> JSONResponse:
    """A signed receipt for the device's stored head."""
    portal = _portal(request)
    limited = _limited(portal, device_id, request)  # unsigned: the client's bucket
    if limited is not None:
        return limited
    receipt = cursor_receipt(portal.engine, portal.key, device_id, portal.clock())
    return JSONResponse({"receipt": receipt})
