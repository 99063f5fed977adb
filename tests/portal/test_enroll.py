"""Enrollment over HTTP: single-use, expiring tokens bound to a center (SPEC section 3)."""

from __future__ import annotations

import httpx

from agent.protocol import public_key_b64, public_key_from_b64
from portal.registry import create_enroll_token
from portal.state import Portal
from tests.portal.support import SimDevice


def _enroll(client: httpx.Client, token: str, key: str) -> httpx.Response:
    return client.post(
        "/api/v1/enroll",
        json={
            "token": token,
            "public_key": key,
            "agent_version": "0.1.0",
            "hardware": {"model": "pi5"},
        },
    )


def test_enroll_then_retry_with_same_key_gets_the_same_answer(
    portal: Portal, client: httpx.Client
) -> None:
    token = create_enroll_token(portal.engine, "c1", 60_000, now=portal.clock())
    sim = SimDevice()
    first = _enroll(client, token, sim.public_key)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["center_id"] == "c1"
    assert body["device_id"].startswith("dev-")
    assert body["portal_public_key"] == public_key_b64(portal.key)
    public_key_from_b64(body["portal_public_key"])
    again = _enroll(client, token, sim.public_key)
    assert again.status_code == 201
    assert again.json() == body


def test_token_used_by_another_key_is_gone(portal: Portal, client: httpx.Client) -> None:
    token = create_enroll_token(portal.engine, "c1", 60_000, now=portal.clock())
    assert _enroll(client, token, SimDevice().public_key).status_code == 201
    other = _enroll(client, token, SimDevice().public_key)
    assert other.status_code == 410
    assert "another key" in other.json()["detail"]


def test_expired_token_is_gone(portal: Portal, client: httpx.Client) -> None:
    token = create_enroll_token(portal.engine, "c1", 1, now=portal.clock() - 10_000)
    assert _enroll(client, token, SimDevice().public_key).status_code == 410


def test_unknown_token_is_unauthorized(client: httpx.Client) -> None:
    assert _enroll(client, "qen_nonsense", SimDevice().public_key).status_code == 401


def test_bad_public_key_is_malformed(portal: Portal, client: httpx.Client) -> None:
    token = create_enroll_token(portal.engine, "c1", 60_000, now=portal.clock())
    response = _enroll(client, token, "not base64!")
    assert response.status_code == 400
    assert response.json()["error"] == "malformed"
    missing = client.post("/api/v1/enroll", json={"public_key": SimDevice().public_key})
    assert missing.status_code == 400
