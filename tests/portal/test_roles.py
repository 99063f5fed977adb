"""Every operator and auditor route, found from the app itself: who may call it.

Walking the routes instead of listing them means a new write route is checked
the day it is added: an auditor token is refused (403) on every write, and no
route under /api/v1/admin or /api/v1/reports answers without a token (401).
"""

from __future__ import annotations

import re

import httpx
import pytest

from portal.app import create_app
from portal.settings import Settings

_PROTECTED = ("/api/v1/admin", "/api/v1/reports")


def _protected_routes(settings: Settings) -> list[tuple[str, str]]:
    """(method, path) of every protected route the app publishes in its OpenAPI schema."""
    paths = create_app(settings).openapi()["paths"]
    found = []
    for path, operations in paths.items():
        if path.startswith(_PROTECTED):
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            found.extend((method.upper(), concrete) for method in sorted(operations))
    return found


def test_every_write_refuses_an_auditor_and_every_route_needs_a_token(
    client: httpx.Client, settings: Settings, auditor_token: str
) -> None:
    routes = _protected_routes(settings)
    writes = [(m, p) for m, p in routes if m not in ("GET", "HEAD")]
    # The inventory itself: if these disappear the test would check nothing.
    assert ("POST", "/api/v1/admin/enroll-tokens") in writes
    assert ("POST", "/api/v1/admin/devices/x/revoke") in writes
    assert ("POST", "/api/v1/admin/centers") in writes
    for method, path in routes:
        anonymous = client.request(method, path, json={})
        assert anonymous.status_code == 401, (method, path)
    auditor = {"authorization": f"Bearer {auditor_token}"}
    for method, path in writes:
        answer = client.request(method, path, json={}, headers=auditor)
        assert answer.status_code == 403, (method, path, answer.text)


@pytest.mark.parametrize("ttl_s", [3600])
def test_an_operator_may_create_an_enroll_token(
    client: httpx.Client, operator_token: str, ttl_s: int
) -> None:
    answer = client.post(
        "/api/v1/admin/enroll-tokens",
        json={"center_id": "c1", "ttl_s": ttl_s},
        headers={"authorization": f"Bearer {operator_token}"},
    )
    assert answer.status_code == 201 and answer.json()["center_id"] == "c1"
