"""Gzip request bodies on every endpoint, not only uploads (docs/portal.md, Device API)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx

from portal.registry import create_enroll_token
from portal.state import Portal
from tests.portal.support import SimDevice

GZIP = {"Content-Encoding": "gzip", "Content-Type": "application/json"}


def gz(value: Any) -> bytes:
    return gzip.compress(json.dumps(value).encode())


def test_enrollment_in_gzip(portal: Portal, client: httpx.Client) -> None:
    token = create_enroll_token(portal.engine, "c1", 3_600_000, now=portal.clock())
    body = {"token": token, "public_key": SimDevice().public_key, "hardware": {"model": "pi5"}}
    answer = client.post("/api/v1/enroll", content=gz(body), headers=GZIP)
    assert answer.status_code == 201, answer.text
    assert answer.json()["center_id"] == "c1"


def test_operator_api_in_gzip(client: httpx.Client, operator_token: str) -> None:
    headers = GZIP | {"Authorization": f"Bearer {operator_token}"}
    answer = client.post(
        "/api/v1/admin/centers", content=gz({"center_id": "c2", "name": "Two"}), headers=headers
    )
    assert answer.status_code == 201, answer.text
    listed = client.get(
        "/api/v1/admin/centers", headers={"Authorization": headers["Authorization"]}
    )
    assert {"center_id": "c2", "name": "Two", "district": None} in listed.json()["centers"]


def test_a_bomb_or_bad_gzip_is_refused_without_reaching_the_endpoint(
    portal: Portal, client: httpx.Client
) -> None:
    bomb = gzip.compress(b'{"token": "' + b"a" * (portal.settings.max_body_bytes + 1) + b'"}', 9)
    assert len(bomb) < portal.settings.max_body_bytes
    answer = client.post("/api/v1/enroll", content=bomb, headers=GZIP)
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    answer = client.post("/api/v1/enroll", content=b"not gzip at all", headers=GZIP)
    assert answer.status_code == 400
    assert answer.json()["error"] == "malformed"
    answer = client.post(
        "/api/v1/enroll", content=gz({}), headers=GZIP | {"Content-Encoding": "br"}
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "malformed")
