"""Card tests use the portal's fixtures: a store on SQLite and PostgreSQL, a live server."""

from __future__ import annotations

from tests.portal.conftest import client, live, operator_token, portal, settings

__all__ = ["client", "live", "operator_token", "portal", "settings"]
