"""The ``records`` table as ingest writes it: the one INSERT/COPY by which records are stored.

:data:`RECORD_COLUMNS` is the one column list; :func:`batch_rows` and
:func:`record_row` build rows in its order and :func:`insert_records` writes
them in the caller's transaction. Whatever else puts records into a database
(the synthetic city's bulk load) goes through these functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from portal.db.schema import records

__all__ = [
    "RECORD_COLUMNS",
    "batch_rows",
    "held_hashes",
    "insert_records",
    "record_row",
    "stored_hash",
]

RECORD_COLUMNS = (
    "device_id", "seq", "hash", "prev", "type", "wall_ms", "synced", "boot", "mono_ns",
    "anchor", "data", "body", "received_ms", "covered_ms", "sig_checked",
)  # fmt: skip
# ``data`` as it was stored so far: compact, keys in the order received.
_encode_data = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# Plain positional statements for the drivers: the JSON columns get text we already encoded.
_INSERT_SQL = (
    f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(RECORD_COLUMNS))})"
)
_COPY_SQL = f"COPY records ({', '.join(RECORD_COLUMNS)}) FROM STDIN"


def record_row(
    device_id: str,
    r: Mapping[str, Any],
    *,
    received_ms: int,
    covered_ms: int | None,
    sig_checked: bool,
) -> tuple[Any, ...]:
    """The row of one record, ``body`` its compact JSON, in :data:`RECORD_COLUMNS` order."""
    return (
        device_id, r["seq"], r["hash"], r["prev"], r["type"], r["wall_ms"], r["synced"],
        r["boot"], r["mono_ns"], r["anchor"], _encode_data(r["data"]), _encode_data(r),
        received_ms, covered_ms, sig_checked,
    )  # fmt: skip


def batch_rows(
    device_id: str, batch: Sequence[object], datas: list[bytes], now: int
) -> list[tuple[Any, ...]]:
    """The rows of a checked batch, all but ``sig_checked`` (known later): the hot path.

    The tuple of :func:`record_row`, inlined (a call per record would cost
    more than the tuple). ``body`` is the canonical text the content phase
    already built, with ``hash`` and ``sig`` spliced in, which parses back to
    the record; this and a positional executemany spare SQLAlchemy's per-row
    JSON processing.
    """
    rows = []
    for r, data in zip(batch, datas, strict=False):
        assert isinstance(r, dict)
        canonical = data.decode("utf-8")
        rows.append(
            (
                device_id, r["seq"], r["hash"], r["prev"], r["type"], r["wall_ms"],
                r["synced"], r["boot"], r["mono_ns"], r["anchor"], _encode_data(r["data"]),
                f'{canonical[:-1]},"hash":"{r["hash"]}","sig":"{r["sig"]}"}}',
                now,
                now,  # covered_ms: the receipt signed in the same transaction covers it
            )
        )  # fmt: skip
    return rows


def insert_records(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert full rows (:data:`RECORD_COLUMNS` order) in one executemany, or one COPY."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        # COPY streams the rows in one go, where an executemany of INSERTs
        # cost a round trip per row (about 70 µs of wall time each here).
        cursor = conn.connection.cursor()  # psycopg's, in this transaction
        try:
            with cursor.copy(_COPY_SQL) as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        return
    conn.exec_driver_sql(_INSERT_SQL, rows)


def held_hashes(conn: Connection, device_id: str, seqs: list[int]) -> dict[int, str]:
    """Stored hashes of ``device_id`` between the least and the greatest of ``seqs``."""
    if not seqs:
        return {}
    rows = conn.execute(
        select(records.c.seq, records.c.hash).where(
            records.c.device_id == device_id,
            records.c.seq >= min(seqs),
            records.c.seq <= max(seqs),
        )
    )
    return {int(row.seq): row.hash for row in rows}


def stored_hash(conn: Connection, device_id: str, seq: int) -> str | None:
    """The hash stored for ``device_id`` at ``seq``, or None."""
    hash_: str | None = conn.execute(
        select(records.c.hash).where(records.c.device_id == device_id, records.c.seq == seq)
    ).scalar()
    return hash_
