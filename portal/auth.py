"""Operator and auditor authentication: bearer tokens for the API, a session for pages.

Tokens are stored as SHA-256 only. Roles: ``operator`` reads and writes,
``auditor`` reads. A page session lives in the ``sessions`` table: the signed cookie
carries only a random session id, so logging out, the token's revocation or the
session's age ends every copy of that cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine, insert, select, update

from portal.db.schema import admin_tokens, sessions
from portal.registry import token_hash

__all__ = [
    "Auditor",
    "Operator",
    "Principal",
    "authenticate",
    "current_principal",
    "end_session",
    "require_auditor",
    "require_operator",
    "session_principal",
    "start_session",
]


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    token_hash: str

    @property
    def can_write(self) -> bool:
        return self.role == "operator"


def authenticate(engine: Engine, token: str) -> Principal | None:
    """The principal a token stands for, or None for an unknown or revoked one."""
    return _by_hash(engine, token_hash(token))


def _by_hash(engine: Engine, digest: str) -> Principal | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(admin_tokens.c.name, admin_tokens.c.role, admin_tokens.c.revoked_ms).where(
                admin_tokens.c.token_hash == digest
            )
        ).first()
    if row is None or row.revoked_ms is not None:
        return None
    return Principal(row.name, row.role, digest)


def _session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def start_session(engine: Engine, principal: Principal, now_ms: int, max_age_s: int) -> str:
    """A new server-side session for ``principal``; the returned id goes in the cookie."""
    session_id = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            insert(sessions).values(
                id_hash=_session_hash(session_id),
                token_hash=principal.token_hash,
                created_ms=now_ms,
                expires_ms=now_ms + max_age_s * 1000,
            )
        )
    return session_id


def end_session(engine: Engine, session_id: str, now_ms: int) -> None:
    """Revoke a session: every copy of its cookie is refused from now on."""
    with engine.begin() as conn:
        conn.execute(
            update(sessions)
            .where(sessions.c.id_hash == _session_hash(session_id))
            .where(sessions.c.revoked_ms.is_(None))
            .values(revoked_ms=now_ms)
        )


def session_principal(engine: Engine, session_id: str, now_ms: int) -> Principal | None:
    """The principal of a live session: not revoked, not expired, its token not revoked."""
    with engine.connect() as conn:
        row = conn.execute(
            select(
                admin_tokens.c.name,
                admin_tokens.c.role,
                admin_tokens.c.token_hash,
                admin_tokens.c.revoked_ms,
                sessions.c.revoked_ms.label("ended_ms"),
                sessions.c.expires_ms,
            )
            .join(admin_tokens, admin_tokens.c.token_hash == sessions.c.token_hash)
            .where(sessions.c.id_hash == _session_hash(session_id))
        ).first()
    if row is None or row.revoked_ms is not None or row.ended_ms is not None:
        return None
    if now_ms >= row.expires_ms:
        return None
    return Principal(row.name, row.role, row.token_hash)


_UNASKED = object()  # request.state holds no answer yet


def current_principal(request: Request) -> Principal | None:
    """Who is asking: the bearer token first, then the login session.

    Answered once per request (a page's handler and its renderer both ask).
    """
    cached = getattr(request.state, "principal", _UNASKED)
    if cached is not _UNASKED:
        return cast("Principal | None", cached)
    principal = _principal(request)
    request.state.principal = principal
    return principal


def _principal(request: Request) -> Principal | None:
    portal = request.app.state.portal
    engine: Engine = portal.engine
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return authenticate(engine, credential.strip())
    if "session" in request.scope:
        session_id = request.session.get("sid")
        if isinstance(session_id, str):
            return session_principal(engine, session_id, portal.clock())
    return None


def require_auditor(request: Request) -> Principal:
    """Any authenticated operator or auditor (read access)."""
    principal = current_principal(request)
    if principal is None:
        raise HTTPException(
            401, "a valid admin token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal


def require_operator(request: Request) -> Principal:
    """An operator (write access); auditors get 403."""
    principal = require_auditor(request)
    if not principal.can_write:
        raise HTTPException(403, "this action needs an operator token")
    return principal


Auditor = Annotated[Principal, Depends(require_auditor)]
Operator = Annotated[Principal, Depends(require_operator)]
