"""Centers, devices and their tokens: what operators create and devices present.

Tokens are random, shown once, and stored only as their SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from agent.protocol import ZERO_HASH, ProtocolError, public_key_from_b64
from portal.db.engine import write_transaction
from portal.db.schema import admin_tokens, centers, devices, enroll_tokens, integrity_events
from portal.exceptions import EnrollmentRefused, MalformedRequest, NotFoundError, PortalConfigError

__all__ = [
    "ROLES",
    "Enrollment",
    "add_center",
    "create_admin_token",
    "create_enroll_token",
    "enroll_device",
    "list_admin_tokens",
    "list_devices",
    "revoke_admin_tokens",
    "revoke_device",
    "set_district",
    "token_hash",
]

ROLES = ("operator", "auditor")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _center_exists(conn: Connection, center_id: str) -> bool:
    query = select(centers.c.center_id).where(centers.c.center_id == center_id)
    return conn.execute(query).first() is not None


# Ids go into page URLs and file names: keep them to characters that need no escaping.
CENTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def add_center(
    engine: Engine, center_id: str, name: str, *, now: int, district: str | None = None
) -> None:
    """Register a center; its id must match :data:`CENTER_ID` (CLI and API alike)."""
    if not CENTER_ID.fullmatch(center_id):
        raise PortalConfigError(
            f"center id {center_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    with write_transaction(engine) as conn:
        if conn.execute(
            select(centers.c.center_id).where(centers.c.center_id == center_id)
        ).first():
            raise PortalConfigError(f"center {center_id!r} already exists")
        row: dict[str, Any] = {"center_id": center_id, "name": name, "created_ms": now}
        if (where := _district(district)) is not None:
            row["district"] = where  # named only when given: older schemas lack it
        conn.execute(insert(centers).values(**row))


def _district(district: str | None) -> str | None:
    """A district name as given, outer spaces aside; empty is none."""
    if district is None:
        return None
    text = " ".join(district.split())
    if len(text) > 100 or not text.isprintable():
        raise PortalConfigError(f"district {district!r}: at most 100 printable characters")
    return text or None


def set_district(engine: Engine, center_id: str, district: str | None) -> None:
    """Set (or, with None or "", clear) the district of a center."""
    value = _district(district)
    with write_transaction(engine) as conn:
        changed = conn.execute(
            update(centers).where(centers.c.center_id == center_id).values(district=value)
        ).rowcount
    if not changed:
        raise NotFoundError(f"center {center_id!r} does not exist (add it with 'center add')")


def create_enroll_token(engine: Engine, center_id: str, ttl_ms: int, *, now: int) -> str:
    """A new single-use enrollment token for ``center_id``, valid for ``ttl_ms``."""
    if ttl_ms <= 0:
        raise PortalConfigError("the token's time to live must be positive")
    token = "qen_" + secrets.token_urlsafe(24)
    missing = NotFoundError(f"center {center_id!r} does not exist (add it with 'center add')")
    if "\x00" in center_id:  # never a center's id, and PostgreSQL refuses it in a query
        raise missing
    with write_transaction(engine) as conn:
        if not conn.execute(
            select(centers.c.center_id).where(centers.c.center_id == center_id)
        ).first():
            raise missing
        conn.execute(
            insert(enroll_tokens).values(
                token_hash=token_hash(token),
                center_id=center_id,
                created_ms=now,
                expires_ms=now + ttl_ms,
            )
        )
    return token


def create_admin_token(engine: Engine, name: str, role: str, *, now: int) -> str:
    if role not in ROLES:
        raise PortalConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = "qat_" + secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        conn.execute(
            insert(admin_tokens).values(
                token_hash=token_hash(token), name=name, role=role, created_ms=now
            )
        )
    return token


def revoke_admin_tokens(engine: Engine, name: str, *, now: int) -> int:
    """Revoke every live admin token issued under ``name``; how many were revoked."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            update(admin_tokens)
            .where(admin_tokens.c.name == name, admin_tokens.c.revoked_ms.is_(None))
            .values(revoked_ms=now)
        )
        return int(result.rowcount)


def list_admin_tokens(engine: Engine) -> list[dict[str, Any]]:
    """Names, roles and dates of admin tokens (never the tokens, which are not kept)."""
    query = select(
        admin_tokens.c.name,
        admin_tokens.c.role,
        admin_tokens.c.created_ms,
        admin_tokens.c.revoked_ms,
    ).order_by(admin_tokens.c.created_ms)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


@dataclass(frozen=True)
class Enrollment:
    device_id: str
    center_id: str


def enroll_device(
    engine: Engine,
    token: str,
    public_key: str,
    agent_version: str,
    hardware: dict[str, Any],
    *,
    now: int,
) -> Enrollment:
    """Bind ``public_key`` to a new device of the token's center (docs/portal.md, Device API).

    The same token and key again returns the same device; another key or an
    expired token is ``gone``; an unknown token is ``unknown``.
    """
    try:
        public_key_from_b64(public_key)
    except ProtocolError as exc:
        raise MalformedRequest(f"public_key: {exc}") from exc
    try:
        with write_transaction(engine) as conn:
            # FOR UPDATE: on PostgreSQL two requests with one token would otherwise both
            # read it unused and both enroll (SQLite's writers are serialised already).
            row = conn.execute(
                select(enroll_tokens)
                .where(enroll_tokens.c.token_hash == token_hash(token))
                .with_for_update()
            ).first()
            if row is None:
                raise EnrollmentRefused("unknown", "unknown enrollment token")
            if row.used_by_key is not None:
                if row.used_by_key == public_key and row.device_id:
                    return Enrollment(row.device_id, row.center_id)
                raise EnrollmentRefused("gone", "enrollment token already used by another key")
            if row.expires_ms <= now:
                raise EnrollmentRefused("gone", "enrollment token expired")
            taken = conn.execute(
                select(devices.c.device_id).where(devices.c.public_key == public_key)
            ).scalar()
            if taken is not None:
                raise EnrollmentRefused("conflict", f"this key is already enrolled as {taken}")
            device_id = _new_device_id(conn)
            conn.execute(
                insert(devices).values(
                    device_id=device_id,
                    center_id=row.center_id,
                    public_key=public_key,
                    agent_version=agent_version,
                    hardware=hardware,
                    enrolled_ms=now,
                    head_seq=0,
                    head_hash=ZERO_HASH,
                )
            )
            conn.execute(
                update(enroll_tokens)
                .where(enroll_tokens.c.token_hash == row.token_hash)
                .values(used_by_key=public_key, device_id=device_id)
            )
            return Enrollment(device_id, row.center_id)
    except IntegrityError as exc:
        # One key with two tokens at the same moment: the unique key column decides.
        raise EnrollmentRefused("conflict", "this key is being enrolled right now") from exc


def _new_device_id(conn: Connection) -> str:
    while True:
        candidate = "dev-" + secrets.token_hex(5)
        if (
            conn.execute(
                select(devices.c.device_id).where(devices.c.device_id == candidate)
            ).first()
            is None
        ):
            return candidate


def revoke_device(engine: Engine, device_id: str, *, now: int) -> bool:
    """Refuse the device from now on; False if it was already revoked."""
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(devices.c.revoked_ms).where(devices.c.device_id == device_id)
        ).first()
        if row is None:
            raise NotFoundError(f"device {device_id!r} is not enrolled")
        if row.revoked_ms is not None:
            return False
        conn.execute(update(devices).where(devices.c.device_id == device_id).values(revoked_ms=now))
        return True


def list_devices(engine: Engine) -> list[dict[str, Any]]:
    """Devices with center, last seen, head and their count of integrity events."""
    events = (
        select(integrity_events.c.device_id, func.count().label("n"))
        .group_by(integrity_events.c.device_id)
        .subquery()
    )
    query = (
        select(
            devices.c.device_id,
            devices.c.center_id,
            devices.c.agent_version,
            devices.c.enrolled_ms,
            devices.c.revoked_ms,
            devices.c.last_seen_ms,
            devices.c.head_seq,
            devices.c.head_hash,
            func.coalesce(events.c.n, 0).label("integrity_events"),
        )
        .select_from(devices.outerjoin(events, events.c.device_id == devices.c.device_id))
        .order_by(devices.c.center_id, devices.c.device_id)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def list_centers(engine: Engine) -> list[dict[str, Any]]:
    """Every center's id, name and district, in id order."""
    query = select(centers.c.center_id, centers.c.name, centers.c.district).order_by(
        centers.c.center_id
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def list_enroll_tokens(engine: Engine) -> list[dict[str, Any]]:
    """Enrollment tokens by hash (the tokens are not kept), center, expiry and use."""
    query = select(
        enroll_tokens.c.token_hash,
        enroll_tokens.c.center_id,
        enroll_tokens.c.expires_ms,
        enroll_tokens.c.device_id,
    ).order_by(enroll_tokens.c.created_ms)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def revoke_enroll_token(engine: Engine, hash_prefix: str, *, now: int) -> int:
    """Expire the unused token whose hash starts with ``hash_prefix`` (at least 8 hex).

    There is no revoked column: expiring it now refuses it exactly as an old one.
    """
    if len(hash_prefix) < 8 or any(c not in "0123456789abcdef" for c in hash_prefix):
        raise PortalConfigError(f"{hash_prefix!r}: give at least 8 hex digits of the token's id")
    with write_transaction(engine) as conn:
        rows = conn.execute(
            select(enroll_tokens.c.token_hash).where(
                enroll_tokens.c.token_hash.startswith(hash_prefix, autoescape=True),
                enroll_tokens.c.used_by_key.is_(None),
                enroll_tokens.c.expires_ms > now,
            )
        ).all()
        if len(rows) != 1:
            what = "no live unused" if not rows else "more than one"
            raise NotFoundError(f"{what} enrollment token with id {hash_prefix!r}")
        conn.execute(
            update(enroll_tokens)
            .where(enroll_tokens.c.token_hash == rows[0].token_hash)
            .values(expires_ms=now)
        )
    return 1
