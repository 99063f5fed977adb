"""Enrollment over HTTP: single-use, expiring tokens bound to a center (docs/portal.md)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from agent.protocol import public_key_b64, public_key_from_b64
from portal.db.schema import devices
from portal.exceptions import EnrollmentRefused
from portal.registry import create_enroll_token, enroll_device
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


def test_one_token_raced_by_two_keys_enrolls_one_device(portal: Portal) -> None:
    """Two devices presenting the same token at the same moment: one wins, one is refused."""
    rounds = 15
    for _ in range(rounds):
        token = create_enroll_token(portal.engine, "c1", 3_600_000, now=portal.clock())
        keys = [SimDevice().public_key, SimDevice().public_key]
        start = threading.Barrier(2)

        def attempt(key: str, token: str = token, start: threading.Barrier = start) -> str:
            start.wait()
            try:
                return enroll_device(
                    portal.engine, token, key, "t", {}, now=portal.clock()
                ).device_id
            except EnrollmentRefused as exc:
                return exc.kind

        with ThreadPoolExecutor(2) as pool:
            answers = sorted(pool.map(attempt, keys))
        assert answers[1] == "gone" and answers[0].startswith("dev-"), answers
    with portal.engine.connect() as conn:
        enrolled = conn.execute(select(func.count()).select_from(devices)).scalar_one()
    assert enrolled == rounds


def test_one_key_raced_with_two_tokens_enrolls_once(portal: Portal) -> None:
    """A device retrying with two tokens at once: one device, the other answer a conflict."""
    for _ in range(15):
        tokens = [
            create_enroll_token(portal.engine, "c1", 3_600_000, now=portal.clock())
            for _ in range(2)
        ]
        key = SimDevice().public_key
        start = threading.Barrier(2)

        def attempt(token: str, key: str = key, start: threading.Barrier = start) -> str:
            start.wait()
            try:
                done = enroll_device(portal.engine, token, key, "t", {}, now=portal.clock())
            except EnrollmentRefused as exc:
                return exc.kind
            return done.device_id

        with ThreadPoolExecutor(2) as pool:
            answers = sorted(pool.map(attempt, tokens))
        assert answers[0] == "conflict" and answers[1].startswith("dev-"), answers
