"""Operator and auditor access: bearer tokens for the API, a session for pages."""

from __future__ import annotations

import httpx

from portal.state import Portal
from tests.portal.support import SimDevice


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_admin_api_needs_a_token(client: httpx.Client, device: SimDevice) -> None:
    for path in ("/api/v1/admin/devices", f"/api/v1/admin/devices/{device.device_id}/records"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=bearer("qat_wrong")).status_code == 401
    assert client.post(f"/api/v1/admin/devices/{device.device_id}/revoke").status_code == 401


def test_auditor_reads_but_cannot_write(
    client: httpx.Client, device: SimDevice, auditor_token: str
) -> None:
    listed = client.get("/api/v1/admin/devices", headers=bearer(auditor_token))
    assert listed.status_code == 200
    assert [d["device_id"] for d in listed.json()["devices"]] == [device.device_id]
    events = client.get(
        f"/api/v1/admin/devices/{device.device_id}/events", headers=bearer(auditor_token)
    )
    assert events.status_code == 200 and events.json() == {"events": []}
    refused = client.post(
        f"/api/v1/admin/devices/{device.device_id}/revoke", headers=bearer(auditor_token)
    )
    assert refused.status_code == 403
    assert (
        client.post(
            "/api/v1/admin/centers",
            json={"center_id": "c9", "name": "N"},
            headers=bearer(auditor_token),
        ).status_code
        == 403
    )


def test_operator_writes(client: httpx.Client, device: SimDevice, operator_token: str) -> None:
    created = client.post(
        "/api/v1/admin/centers",
        json={"center_id": "c9", "name": "Nine"},
        headers=bearer(operator_token),
    )
    assert created.status_code == 201
    token = client.post(
        "/api/v1/admin/enroll-tokens",
        json={"center_id": "c9", "ttl_s": 600},
        headers=bearer(operator_token),
    )
    assert token.status_code == 201
    sim = SimDevice()
    enrolled = client.post(
        "/api/v1/enroll",
        json={
            "token": token.json()["token"],
            "public_key": sim.public_key,
            "agent_version": "x",
            "hardware": {},
        },
    )
    assert enrolled.status_code == 201 and enrolled.json()["center_id"] == "c9"
    revoked = client.post(
        f"/api/v1/admin/devices/{device.device_id}/revoke", headers=bearer(operator_token)
    )
    assert revoked.json() == {"device_id": device.device_id, "revoked": True}
    unknown = client.post("/api/v1/admin/devices/dev-none/revoke", headers=bearer(operator_token))
    assert unknown.status_code == 404


def test_login_session_for_pages(portal: Portal, client: httpx.Client, auditor_token: str) -> None:
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 401 and 'name="token"' in page.text  # the login form
    assert client.get("/login").status_code == 200
    bad = client.post("/login", data={"token": "qat_nope"}, follow_redirects=False)
    assert bad.status_code == 401
    good = client.post("/login", data={"token": auditor_token}, follow_redirects=False)
    assert good.status_code == 303
    assert "qatysu_session" in client.cookies
    overview = client.get("/")
    assert overview.status_code == 200 and "Devices" in overview.text
    assert client.get("/api/v1/admin/devices").status_code == 200
    client.post("/logout")
    assert client.get("/api/v1/admin/devices").status_code == 401


def test_a_revoked_token_ends_its_session(
    portal: Portal, client: httpx.Client, operator_token: str
) -> None:
    from portal.registry import revoke_admin_tokens

    assert client.post("/login", data={"token": operator_token}).status_code == 303
    assert client.get("/api/v1/admin/devices").status_code == 200
    assert revoke_admin_tokens(portal.engine, "op", now=portal.clock()) == 1
    assert client.get("/api/v1/admin/devices").status_code == 401
    assert client.get("/api/v1/admin/devices", headers=bearer(operator_token)).status_code == 401


def test_a_page_without_a_session_is_401_and_login_returns_to_it(
    client: httpx.Client, auditor_token: str
) -> None:
    for path in ("/audit?from=2024-04-01", "/audit/devices"):
        page = client.get(path, follow_redirects=False)
        assert page.status_code == 401, path
        assert 'name="next"' in page.text and path.replace("&", "&amp;") in page.text
    back = client.post(
        "/login", data={"token": auditor_token, "next": "/audit/devices"}, follow_redirects=False
    )
    assert (back.status_code, back.headers["location"]) == (303, "/audit/devices")
    client.post("/logout")
    away = client.post(
        "/login", data={"token": auditor_token, "next": "//evil.example/"}, follow_redirects=False
    )
    assert away.headers["location"] == "/"
