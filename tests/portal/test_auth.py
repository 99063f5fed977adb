"""Operator and auditor access: bearer tokens for the API, a session for pages."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from portal.app import create_app
from portal.auth import authenticate, session_principal, start_session
from portal.exceptions import PortalConfigError
from portal.registry import create_admin_token, token_hash
from portal.settings import Settings
from portal.state import Portal, open_portal
from tests.portal.support import LiveServer, SimDevice


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
    home = client.get("/", follow_redirects=False)  # an auditor's home: the audit overview
    assert (home.status_code, home.headers["location"]) == (303, "/audit")
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
    assert away.headers["location"] == "/audit"  # never away: the role's landing page


def _login(client: httpx.Client, token: str) -> str:
    assert client.post("/login", data={"token": token}, follow_redirects=False).status_code == 303
    return client.cookies["qatysu_session"]


def test_a_cookie_copied_before_logout_is_refused_after_it(
    portal: Portal, live: LiveServer, client: httpx.Client, auditor_token: str
) -> None:
    copied = _login(client, auditor_token)
    with httpx.Client(base_url=live.url, cookies={"qatysu_session": copied}) as thief:
        assert thief.get("/api/v1/admin/devices").status_code == 200
        client.post("/logout")
        assert client.get("/api/v1/admin/devices").status_code == 401
        assert thief.get("/api/v1/admin/devices").status_code == 401  # the copy is dead too
        assert thief.get("/", follow_redirects=False).status_code == 401


def test_the_cookie_holds_only_a_random_session_id(
    portal: Portal, client: httpx.Client, auditor_token: str
) -> None:
    cookie = _login(client, auditor_token)
    payload = json.loads(base64.b64decode(cookie.split(".", 1)[0] + "=="))
    assert set(payload) == {"sid"}
    assert token_hash(auditor_token) not in cookie and token_hash(auditor_token) not in str(payload)
    # A second login is a second session; ending one leaves the other.
    with httpx.Client(base_url=client.base_url) as other:
        _login(other, auditor_token)
        client.post("/logout")
        assert other.get("/api/v1/admin/devices").status_code == 200


def test_a_session_ends_at_its_max_age(portal: Portal, auditor_token: str) -> None:
    principal = authenticate(portal.engine, auditor_token)
    assert principal is not None
    now = portal.clock()
    sid = start_session(portal.engine, principal, now, max_age_s=60)
    assert session_principal(portal.engine, sid, now + 59_000) == principal
    assert session_principal(portal.engine, sid, now + 60_000) is None
    assert session_principal(portal.engine, "not-a-session", now) is None


def test_the_session_cookie_is_secure_unless_turned_off(tmp_path: Path) -> None:
    assert Settings().cookie_secure is True
    assert Settings.from_env(environ={"QATYSU_PORTAL_COOKIE_SECURE": "0"}).cookie_secure is False
    with pytest.raises(PortalConfigError, match="QATYSU_PORTAL_COOKIE_SECURE='maybe'"):
        Settings.from_env(environ={"QATYSU_PORTAL_COOKIE_SECURE": "maybe"})
    portal = open_portal(Settings(data_dir=tmp_path / "data"))
    try:
        token = create_admin_token(portal.engine, "aud", "auditor", now=portal.clock())
        with TestClient(create_app(portal.settings, portal=portal)) as http:
            answer = http.post("/login", data={"token": token}, follow_redirects=False)
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "qatysu_session=" in cookie and "secure" in cookie.lower()
    finally:
        portal.close()


def test_the_api_refuses_a_center_id_no_url_can_carry(
    client: httpx.Client, operator_token: str
) -> None:
    for bad in ("bad id/x", "=HYPERLINK(1)", "../c", "-lead", "ц1"):
        refused = client.post(
            "/api/v1/admin/centers",
            json={"center_id": bad, "name": "N"},
            headers=bearer(operator_token),
        )
        assert refused.status_code == 400, bad
        assert "letters, digits" in refused.text


def test_a_center_added_over_the_api_keeps_its_district(
    client: httpx.Client, operator_token: str, auditor_token: str
) -> None:
    body = {"center_id": "d1", "name": "D", "district": " Ауэзовский "}
    created = client.post("/api/v1/admin/centers", json=body, headers=bearer(operator_token))
    assert created.status_code == 201 and created.json()["district"] == "Ауэзовский"
    listed = client.get("/api/v1/admin/centers", headers=bearer(auditor_token)).json()
    assert {"center_id": "d1", "name": "D", "district": "Ауэзовский"} in listed["centers"]
