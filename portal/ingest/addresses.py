"""Where a device's signed uploads come from: runs of one network address per device.

Kept for the clone check (docs/threat-model.md, a device key on two machines):
an honest device changes address now and then (a new DHCP lease, LTE); two
machines with one key uploading in turn switch at every turn. Only an upload
with a verified signature of the device counts (anyone can post junk under a
device id). Behind a reverse proxy every upload has the proxy's address, so
the check sees one address and says nothing.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from portal.db.schema import device_addresses

__all__ = ["note_address"]

_MAX = 64  # the column; an IPv6 address with a zone fits


def note_address(conn: Connection, device_id: str, address: str | None, now: int) -> None:
    """Extend the device's latest run if ``address`` is its address, else start a run.

    The caller holds the device row (ingest's write transaction), so runs of one
    device are written one at a time and ``id`` orders them.
    """
    if not address:
        return
    address = address[:_MAX]
    t = device_addresses
    latest = conn.execute(
        select(t.c.id, t.c.address)
        .where(t.c.device_id == device_id)
        .order_by(t.c.id.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.address == address:
        conn.execute(
            update(t).where(t.c.id == latest.id).values(last_ms=now, uploads=t.c.uploads + 1)
        )
        return
    conn.execute(
        insert(t).values(device_id=device_id, address=address, first_ms=now, last_ms=now, uploads=1)
    )
