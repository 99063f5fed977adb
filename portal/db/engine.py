"""One engine factory for SQLite (WAL) and PostgreSQL (psycopg 3).

Writers that must see a stable head take :func:`write_transaction`: on SQLite
an immediate transaction (the write lock from the first statement), on
PostgreSQL an ordinary one in which the ingest code locks the device row with
``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from portal.db.private_files import create_private, private_dir, refuse_shared
from portal.exceptions import PortalConfigError
from portal.settings import Settings

__all__ = ["create_engine_for", "normalise_url", "write_transaction"]

logger = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("postgresql+psycopg://", "sqlite:///")) or url == "sqlite://":
        return url
    raise PortalConfigError(
        f"database URL {url.split('://')[0]}://... is not supported: "
        "use sqlite:///FILE or postgresql://USER@HOST/DB"
    )


def create_engine_for(settings: Settings, **kwargs: Any) -> Engine:
    url = normalise_url(settings.db_url)
    if url.startswith("sqlite"):
        _private_sqlite_files(settings.data_dir, url)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _private_sqlite_files(data_dir: Path, url: str) -> None:
    """The data dir 0700 and the database 0600 (SQLite gives its -wal, -shm, -journal the same)."""
    private_dir(data_dir)
    name = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not name or name == ":memory:":
        return
    db = Path(name)
    db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    create_private(db)
    for suffix in ("-wal", "-shm", "-journal"):
        side = db.with_name(db.name + suffix)
        if side.exists():
            refuse_shared(side)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself, so that writers can
        # ask for BEGIN IMMEDIATE (pysqlite would otherwise begin lazily).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# SQLite's busy handler polls with sleeps of up to 100 ms, so a writer that
# finds the lock taken idles long after it is free; writers in this process
# queue on a lock instead, which wakes the next one at once. Other processes
# (a CLI next to the server) still meet the busy timeout.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITERS_GUARD = threading.Lock()
_WRITER_WAIT_S = 30.0  # as the busy timeout: then let SQLite decide


def _writer_lock(engine: Engine) -> threading.Lock:
    with _WRITERS_GUARD:
        lock = _SQLITE_WRITERS.get(engine)
        if lock is None:
            lock = _SQLITE_WRITERS[engine] = threading.Lock()
        return lock


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that serialises writers of the same rows on both back ends."""
    if engine.dialect.name != "sqlite":
        with engine.connect() as conn, conn.begin():
            yield conn
        return
    lock = _writer_lock(engine)
    held = lock.acquire(timeout=_WRITER_WAIT_S)
    try:
        with engine.connect() as conn:
            conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn
    finally:
        if held:
            lock.release()
