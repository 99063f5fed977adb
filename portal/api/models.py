"""Pydantic models of the API's JSON, for validation and the OpenAPI document."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator

# What a device says about its board is shown to operators and stored per device:
# a few short facts, never a document.
HARDWARE_MAX_BYTES = 4096
HARDWARE_MAX_DEPTH = 4
HARDWARE_MAX_KEYS = 64

CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


def _no_control(value: str) -> str:
    # PostgreSQL refuses NUL in text, and no id or name holds a control character.
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("holds a control character")
    return value


Text = Annotated[str, AfterValidator(_no_control)]
"""Every string the API takes in a body: ids, tokens, keys, names."""


class Receipt(BaseModel):
    v: int
    device: str
    seq: int
    record_hash: str
    server_ms: int
    hash: str
    sig: str


class ErrorBody(BaseModel):
    error: str
    detail: str = ""


class EnrollRequest(BaseModel):
    token: Text = Field(max_length=200)
    public_key: Text = Field(max_length=200)
    agent_version: Text = Field(default="", max_length=100)
    hardware: dict[str, Any] = Field(default_factory=dict)

    @field_validator("hardware")
    @classmethod
    def _small_hardware(cls, value: dict[str, Any]) -> dict[str, Any]:
        keys = _count_keys(value, HARDWARE_MAX_DEPTH)
        if keys > HARDWARE_MAX_KEYS:
            raise ValueError(f"at most {HARDWARE_MAX_KEYS} keys, {HARDWARE_MAX_DEPTH} levels deep")
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > HARDWARE_MAX_BYTES:
            raise ValueError(f"{size} bytes of JSON; at most {HARDWARE_MAX_BYTES}")
        return value


def _count_keys(value: object, depth: int) -> int:
    """Keys of nested objects (and items of lists); past ``depth`` levels, over any limit."""
    if not isinstance(value, dict | list):
        return 0
    if depth == 0:
        return HARDWARE_MAX_KEYS + 1
    items = list(value.values()) if isinstance(value, dict) else value
    return len(items) + sum(_count_keys(v, depth - 1) for v in items)


class EnrollResponse(BaseModel):
    device_id: str
    center_id: str
    portal_public_key: str


class Accepted(BaseModel):
    receipt: Receipt
    accepted: int
    duplicates: int


class GapAnswer(BaseModel):
    error: str
    expected_seq: int
    receipt: Receipt


class Rejected(BaseModel):
    error: str
    seq: int | None
    reason: str
    detail: str
    receipt: Receipt
    accepted: int = 0
    duplicates: int = 0


class ReceiptAnswer(BaseModel):
    receipt: Receipt


class Health(BaseModel):
    status: str
    portal_public_key: str


class DeviceInfo(BaseModel):
    device_id: str
    center_id: str
    agent_version: str
    enrolled_ms: int
    revoked_ms: int | None
    last_seen_ms: int | None
    head_seq: int
    head_hash: str
    integrity_events: int


class DeviceList(BaseModel):
    devices: list[DeviceInfo]


class RecordList(BaseModel):
    records: list[dict[str, Any]]


class CenterIn(BaseModel):
    center_id: Text = Field(min_length=1, max_length=64)
    name: Text = Field(min_length=1, max_length=200)
    district: Text | None = Field(default=None, max_length=100)


class Center(BaseModel):
    center_id: str
    name: str
    district: str | None = None


class CenterList(BaseModel):
    centers: list[Center]


class EnrollTokenIn(BaseModel):
    center_id: Text = Field(min_length=1, max_length=64)
    ttl_s: int = Field(default=86400, ge=60, le=90 * 86400)


class EnrollTokenOut(BaseModel):
    token: str
    center_id: str
    expires_ms: int


class IntegrityEvent(BaseModel):
    id: int
    device_id: str
    kind: str
    first_seq: int | None
    last_seq: int | None
    reason: str
    detail: str
    at_ms: int


class EventList(BaseModel):
    events: list[IntegrityEvent]


class Revoked(BaseModel):
    device_id: str
    revoked: bool


DEVICE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "malformed request"},
    403: {"model": ErrorBody, "description": "device revoked"},
    404: {"model": ErrorBody, "description": "unknown device"},
    413: {"model": ErrorBody, "description": "too large"},
    429: {"model": ErrorBody, "description": "too many requests; see Retry-After"},
}
