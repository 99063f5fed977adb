"""Storage: tables, the engine factory and migrations."""

from __future__ import annotations

from portal.db.engine import create_engine_for, normalise_url, write_transaction
from portal.db.migrate import upgrade_to_head

__all__ = ["create_engine_for", "normalise_url", "upgrade_to_head", "write_transaction"]
