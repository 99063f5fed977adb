"""Security headers on every answer; writes with the page cookie only from the portal's origin."""

from __future__ import annotations

import httpx
import pytest

from portal.state import Portal
from tests.portal.support import LiveServer

HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def _login(client: httpx.Client, token: str, origin: str | None) -> httpx.Response:
    headers = {"origin": origin} if origin else {}
    return client.post(
        "/login", data={"token": token, "next": "/"}, headers=headers, follow_redirects=False
    )


@pytest.mark.parametrize("path", ["/login", "/", "/api/v1/health", "/no-such-page", "/audit"])
def test_every_answer_carries_the_security_headers(client: httpx.Client, path: str) -> None:
    answer = client.get(path)
    for name, value in HEADERS.items():
        assert answer.headers.get(name) == value, (path, name)
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src" not in policy  # no script is allowed from anywhere


def test_login_from_another_site_is_refused(
    client: httpx.Client, live: LiveServer, auditor_token: str
) -> None:
    refused = _login(client, auditor_token, "https://evil.example")
    assert refused.status_code == 403
    assert "qatysu_session" not in client.cookies
    accepted = _login(client, auditor_token, live.url)
    assert accepted.status_code == 303
    assert "qatysu_session" in client.cookies


def test_a_copied_cookie_cannot_log_out_or_import_from_another_site(
    client: httpx.Client, live: LiveServer, operator_token: str
) -> None:
    assert _login(client, operator_token, live.url).status_code == 303
    evil = {"origin": "https://evil.example"}
    assert client.post("/logout", headers=evil, follow_redirects=False).status_code == 403
    upload = client.post(
        "/api/v1/admin/imports/roster",
        files={"file": ("r.csv", b"child_id,badge_uid,center_id,group_id\n")},
        headers=evil,
    )
    assert upload.status_code == 403
    assert upload.json()["error"] == "forbidden"
    # A page that hides its origin (sandboxed frame, no-referrer) sends "null".
    hidden = client.post("/logout", headers={"origin": "null"}, follow_redirects=False)
    assert hidden.status_code == 403
    referred = {"origin": "null", "referer": "https://evil.example/page"}
    assert client.post("/logout", headers=referred, follow_redirects=False).status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303  # still logged in
    same = client.post("/logout", headers={"origin": live.url}, follow_redirects=False)
    assert same.status_code == 303


def test_bearer_writes_and_device_posts_need_no_origin(
    client: httpx.Client, portal: Portal, operator_token: str
) -> None:
    answer = client.post(
        "/api/v1/admin/centers",
        json={"center_id": "c2", "name": "Two"},
        headers={"authorization": f"Bearer {operator_token}", "origin": "https://other.example"},
    )
    assert answer.status_code == 201
    # An enrollment attempt from a device: no cookie, no Origin, judged on its token.
    enroll = client.post(
        "/api/v1/enroll", json={"token": "nope", "public_key": "AAAA", "hardware": {}}
    )
    assert enroll.status_code in (400, 401)


def test_api_docs_that_load_a_cdn_are_off(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200
