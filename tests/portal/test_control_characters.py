"""A NUL or other control character in an id is refused before any route (docs/portal.md).

PostgreSQL refuses NUL in text: before, every such id reached it and answered 500.
"""

from __future__ import annotations

import httpx
import pytest

from tests.portal.support import SimDevice

IDS = ["dev%00x", "%00", "dev%0Ax", "dev%7F", "dev%C2%85"]


@pytest.mark.parametrize("device_id", IDS)
def test_a_control_character_in_a_path_id_is_404(
    client: httpx.Client, operator_token: str, device: SimDevice, device_id: str
) -> None:
    auth = {"Authorization": f"Bearer {operator_token}"}
    base = f"/api/v1/devices/{device_id}"
    for method, url, kw in [
        ("GET", f"{base}/cursor", {}),
        ("POST", f"{base}/records", {"json": {"records": device.batch(1)}}),
        ("POST", f"{base}/gaps", {"json": {"record": {}}}),
        ("GET", f"/api/v1/admin{base}/records", {"headers": auth}),
        ("GET", f"/api/v1/admin{base}/events", {"headers": auth}),
        ("POST", f"/api/v1/admin{base}/revoke", {"headers": auth}),
    ]:
        answer = client.request(method, url, **kw)
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), (url, answer)


def test_a_control_character_in_a_query_is_400(client: httpx.Client, operator_token: str) -> None:
    auth = {"Authorization": f"Bearer {operator_token}"}
    answer = client.get(
        "/api/v1/reports/reconciliation?from=2026-01-01&to=2026-01-02&center=c%001", headers=auth
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "malformed"), answer.text


@pytest.mark.parametrize("bad", ["c\u0000", "c\n1", "\u0085"])
def test_a_control_character_in_a_body_id_is_400(
    client: httpx.Client, operator_token: str, bad: str
) -> None:
    auth = {"Authorization": f"Bearer {operator_token}"}
    for url, body in [
        ("/api/v1/admin/centers", {"center_id": bad, "name": "Two"}),
        ("/api/v1/admin/centers", {"center_id": "c2", "name": bad}),
        ("/api/v1/admin/enroll-tokens", {"center_id": bad}),
        ("/api/v1/enroll", {"token": bad, "public_key": SimDevice().public_key}),
        ("/api/v1/enroll", {"token": "t", "public_key": bad}),
        ("/api/v1/enroll", {"token": "t", "public_key": "k", "agent_version": bad}),
    ]:
        answer = client.post(url, json=body, headers=auth if "admin" in url else {})
        assert (answer.status_code, answer.json()["error"]) == (400, "malformed"), (url, body)
