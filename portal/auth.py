"""Operator and auditor authentication: bearer tokens for the API, a session for pages.

Tokens are stored as SHA-256 only. Roles: ``operator`` reads and writes,
``auditor`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine, select

from portal.db.schema import admin_tokens
from portal.registry import token_hash

__all__ = [
    "Auditor",
    "Operator",
    "Principal",
    "authenticate",
    "current_principal",
    "require_auditor",
    "require_operator",
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


def current_principal(request: Request) -> Principal | None:
    """Who is asking: the bearer token first, then the login session."""
    engine: Engine = request.app.state.portal.engine
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return authenticate(engine, credential.strip())
    if "session" in request.scope:
        digest = request.session.get("token_hash")
        if isinstance(digest, str):
            return _by_hash(engine, digest)
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
