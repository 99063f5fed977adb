"""Migration 0009 on a portal in service: existing centers keep require_card_auth off."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select

from portal.db import create_engine_for, upgrade_to_head
from portal.db.migrate import alembic_config
from portal.db.schema import centers
from portal.registry import add_center
from portal.settings import Settings


def test_upgrade_from_0008_keeps_centers(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for(settings)
    try:
        command.upgrade(alembic_config(engine), "0008_boot_records_index")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO centers (center_id, name, created_ms) VALUES ('old', 'Old', 1)"
            )
        upgrade_to_head(engine)
        add_center(engine, "new", "New", now=2)
        with engine.connect() as conn:
            got = dict(conn.execute(select(centers.c.center_id, centers.c.require_card_auth)).all())
        assert got == {"old": False, "new": False}
        command.downgrade(alembic_config(engine), "0008_boot_records_index")
        upgrade_to_head(engine)
    finally:
        engine.dispose()


def test_upgrade_from_0009_keeps_grants_unbound(settings: Settings) -> None:
    """A grant made before 0010 has no station yet: the first station key to enroll takes it."""
    from portal.db.schema import card_grants

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for(settings)
    try:
        command.upgrade(alembic_config(engine), "0009_cards")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO card_grants (token_hash, count, used, url, created_ms, expires_ms) "
                "VALUES ('ab', 3, 1, 'https://qatysu.kz/c', 1, 2)"
            )
        upgrade_to_head(engine)
        with engine.connect() as conn:
            row = conn.execute(select(card_grants)).one()
        assert (row.used, row.station_key, row.last_at_ms, row.ended_ms) == (1, None, None, None)
        command.downgrade(alembic_config(engine), "0009_cards")
        upgrade_to_head(engine)
    finally:
        engine.dispose()
