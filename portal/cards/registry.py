"""The card registry: station grants, keys for a station, activation, import, revocation.

Grants are like enrollment tokens: random, printed once, stored as their SHA-256, good
for ``count`` cards until they expire. Keys leave only through :func:`station_keys`,
sealed to the station's X25519 key and signed by the portal (agent.protocol.card_keys).
No function here returns or logs a key in the clear except :func:`card_book`, which
hands them to the reconciliation in memory.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, insert, select, update

from agent.protocol.card_keys import CardKeyError, seal_bundle
from agent.protocol.ntag424 import KIND, SunMessage, check_sun, sun_from_card_field
from portal.cards.imports import parse_cards
from portal.cards.keys import (
    SunKeys,
    derived_bundle,
    derived_sun_keys,
    open_at_rest,
    seal_at_rest,
)
from portal.db.engine import write_transaction
from portal.db.schema import card_grants, cards, centers
from portal.exceptions import (
    ImportFileError,
    MalformedRequest,
    NotFoundError,
    PortalConfigError,
    PortalError,
)
from portal.keys import load_or_create_card_master
from portal.reconcile.cards import CardBook, CardKey
from portal.registry import token_hash

__all__ = [
    "ACTIVE",
    "STATES",
    "CardRefused",
    "ImportResult",
    "activate_card",
    "card_book",
    "create_grant",
    "import_cards",
    "list_cards",
    "revoke_card",
    "set_require_card_auth",
    "station_keys",
]

ISSUED, ACTIVE, REVOKED, REPLACED = "issued", "active", "revoked", "replaced"
STATES = (ISSUED, ACTIVE, REVOKED, REPLACED)
DIVERSIFIED, IMPORTED = "diversified", "imported"


class CardRefused(PortalError):
    """A station request refused: ``status`` is the HTTP status (401, 409, 422)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def create_grant(engine: Engine, count: int, ttl_ms: int, url: str, *, now: int) -> str:
    """A new station grant good for ``count`` cards whose NDEF file points at ``url``."""
    if count <= 0:
        raise PortalConfigError("--count must be positive")
    if ttl_ms <= 0:
        raise PortalConfigError("the grant's time to live must be positive")
    if not url.startswith("https://") or len(url) > 120 or not url.isprintable():
        raise PortalConfigError(f"--url {url!r}: an https:// URL of at most 120 characters")
    token = "qcg_" + secrets.token_urlsafe(24)
    with write_transaction(engine) as conn:
        conn.execute(
            insert(card_grants).values(
                token_hash=token_hash(token),
                count=count,
                used=0,
                url=url,
                created_ms=now,
                expires_ms=now + ttl_ms,
            )
        )
    return token


def _uid_bytes(uid: object) -> bytes:
    if not isinstance(uid, str) or len(uid) != 14:
        raise MalformedRequest("uid must be 14 uppercase hex digits")
    try:
        raw = bytes.fromhex(uid)
    except ValueError:
        raise MalformedRequest("uid must be 14 uppercase hex digits") from None
    if raw.hex().upper() != uid:
        raise MalformedRequest("uid must be 14 uppercase hex digits")
    return raw


def _grant(conn: Any, grant: str, now: int) -> Any:
    row = conn.execute(
        select(card_grants).where(card_grants.c.token_hash == token_hash(grant)).with_for_update()
    ).first()
    if row is None:
        raise CardRefused(401, "unauthorized", "unknown station grant")
    if row.expires_ms <= now:
        raise CardRefused(401, "unauthorized", "station grant expired")
    return row


def station_keys(
    engine: Engine,
    master: bytes,
    signing_key: Ed25519PrivateKey,
    grant: str,
    uid: object,
    station_key: object,
    *,
    now: int,
) -> dict[str, str]:
    """The sealed key bundle for card ``uid`` (``POST /api/v1/cards/keys``).

    The first request for a UID uses one card of the grant; asking again for a card
    this grant issued and not yet activated (a station retrying after a lost answer)
    uses none. An active card is 409.
    """
    raw = _uid_bytes(uid)
    assert isinstance(uid, str)
    if not isinstance(station_key, str):
        raise MalformedRequest("station_key must be base64 text")
    with write_transaction(engine) as conn:
        row = _grant(conn, grant, now)
        card = conn.execute(select(cards).where(cards.c.uid == uid)).first()
        if card is not None and card.state != ISSUED:
            raise CardRefused(409, "conflict", f"card {uid} is {card.state}")
        if card is not None and card.grant_hash != row.token_hash:
            raise CardRefused(409, "conflict", f"card {uid} was issued under another grant")
        if card is None:
            if row.used >= row.count:
                raise CardRefused(401, "unauthorized", "station grant used up")
            conn.execute(
                update(card_grants)
                .where(card_grants.c.token_hash == row.token_hash)
                .values(used=row.used + 1)
            )
            conn.execute(
                insert(cards).values(
                    uid=uid,
                    kind=KIND,
                    state=ISSUED,
                    key_source=DIVERSIFIED,
                    grant_hash=row.token_hash,
                    created_ms=now,
                )
            )
        try:
            return seal_bundle(derived_bundle(master, raw, row.url), uid, station_key, signing_key)
        except CardKeyError as exc:
            raise MalformedRequest(str(exc)) from None


def activate_card(
    engine: Engine, master: bytes, grant: str, uid: object, picc: object, mac: object, *, now: int
) -> int:
    """Activate a card issued under ``grant`` by its first SUN read; returns the counter."""
    raw = _uid_bytes(uid)
    message = sun_from_card_field({"kind": KIND, "picc": picc, "mac": mac})
    with write_transaction(engine) as conn:
        row = _grant(conn, grant, now)
        card = conn.execute(select(cards).where(cards.c.uid == uid)).first()
        if card is None or card.grant_hash != row.token_hash:
            raise CardRefused(422, "unprocessable", f"card {uid} was not issued under this grant")
        if card.state != ISSUED:
            raise CardRefused(409, "conflict", f"card {uid} is {card.state}")
        keys = derived_sun_keys(master, raw)
        verdict = check_sun(keys.meta_read, keys.file_read, raw, message or SunMessage(b"", b""))
        if message is None or not verdict.authentic or verdict.counter is None:
            why = verdict.problem if message is not None else "malformed"
            raise CardRefused(422, "unprocessable", f"the SUN message does not check ({why})")
        conn.execute(
            update(cards)
            .where(cards.c.uid == uid)
            .values(state=ACTIVE, activated_counter=verdict.counter, activated_ms=now)
        )
        return verdict.counter


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int
    added: int
    unchanged: int

    def summary(self, name: str) -> str:
        return f"{name}: {self.rows} card rows, {self.added} added, {self.unchanged} unchanged"


def import_cards(
    engine: Engine, master: bytes, data: bytes, name: str, *, now: int
) -> ImportResult:
    """Register cards personalised elsewhere, all or nothing; the same file again adds none.

    A UID already registered with other keys (or derived keys) is an error naming its line.
    """
    parsed = parse_cards(data, name)
    added = 0
    with write_transaction(engine) as conn:
        held = {r.uid: r for r in conn.execute(select(cards))}
        new = []
        for line, uid, keys in parsed:
            raw = bytes.fromhex(uid)
            row = held.get(uid)
            if row is not None:
                same = (
                    row.key_source == IMPORTED
                    and row.sealed_keys is not None
                    and open_at_rest(master, raw, row.sealed_keys) == keys
                )
                if not same:
                    raise ImportFileError(
                        f"{name}:{line}:1: badge_uid {uid} is already registered with other keys"
                    )
                continue
            new.append(
                {
                    "uid": uid,
                    "kind": KIND,
                    "state": ACTIVE,
                    "key_source": IMPORTED,
                    "sealed_keys": seal_at_rest(master, raw, keys),
                    "created_ms": now,
                    "activated_ms": now,
                }
            )
        if new:
            conn.execute(insert(cards), new)
            added = len(new)
    return ImportResult(len(parsed), added, len(parsed) - added)


def list_cards(engine: Engine) -> list[dict[str, Any]]:
    """Every card without its keys: uid, kind, state, key source, counter and times."""
    columns = (
        cards.c.uid,
        cards.c.kind,
        cards.c.state,
        cards.c.key_source,
        cards.c.activated_counter,
        cards.c.created_ms,
        cards.c.activated_ms,
        cards.c.revoked_ms,
        cards.c.replaced_by,
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(*columns).order_by(cards.c.uid))]


def revoke_card(engine: Engine, uid: str, *, now: int, replaced_by: str | None = None) -> None:
    """Revoke a card (lost, or ``replaced_by`` another): its reads from now on fail."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(cards.c.state).where(cards.c.uid == uid)).first()
        if row is None:
            raise NotFoundError(f"card {uid} is not registered")
        if row.state in (REVOKED, REPLACED):
            raise PortalError(f"card {uid} is already {row.state}")
        conn.execute(
            update(cards)
            .where(cards.c.uid == uid)
            .values(
                state=REPLACED if replaced_by else REVOKED,
                revoked_ms=now,
                replaced_by=replaced_by,
            )
        )


def set_require_card_auth(engine: Engine, center_id: str, on: bool) -> None:
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(centers).where(centers.c.center_id == center_id).values(require_card_auth=on)
        )
        if done.rowcount == 0:
            raise NotFoundError(f"center {center_id!r} does not exist")


def card_book(engine: Engine, data_dir: Path) -> CardBook:
    """The registry with each card's read keys, for the reconciliation (in memory only)."""
    with engine.connect() as conn:
        rows = list(conn.execute(select(cards)))
        require = frozenset(
            r[0]
            for r in conn.execute(
                select(centers.c.center_id).where(centers.c.require_card_auth.is_(True))
            )
        )
    if not rows:
        return CardBook({}, require)
    master = load_or_create_card_master(data_dir)
    keys = {}
    for r in rows:
        raw = bytes.fromhex(r.uid)
        sun: SunKeys = (
            open_at_rest(master, raw, r.sealed_keys)
            if r.key_source == IMPORTED and r.sealed_keys is not None
            else derived_sun_keys(master, raw)
        )
        floor = -1 if r.activated_counter is None else int(r.activated_counter)
        keys[r.uid] = CardKey(r.uid, sun.meta_read, sun.file_read, floor, r.revoked_ms, r.kind)
    return CardBook(keys, require)
