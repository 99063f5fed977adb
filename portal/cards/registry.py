"""The card registry: station grants, keys for a station, activation, import, revocation.

Grants are like enrollment tokens: random, printed once, stored as their SHA-256, good
for ``count`` cards until they expire. A grant is spent on one station: the first
Ed25519 key that enrolls with it (:func:`enroll_station`) is the only one whose signed
requests it answers from then on (:func:`authenticate_station`; decision 0912). Keys
leave only through :func:`station_keys`, sealed to a per-card X25519 key the station
sent in its signed request, and signed by the portal (agent.protocol.card_keys). No
function here returns or logs a key in the clear except :func:`card_book`, which hands
them to the reconciliation in memory.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, insert, or_, select, update

from agent.protocol.card_keys import (
    CardKeyError,
    parse_station_authorization,
    seal_bundle,
    verify_station_request,
)
from agent.protocol.errors import ProtocolError
from agent.protocol.keys import public_key_from_b64
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
from portal.db.schema import card_grants, cards, centers, devices
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
    "StationRequest",
    "activate_card",
    "authenticate_station",
    "card_book",
    "create_grant",
    "end_grant",
    "enroll_station",
    "import_cards",
    "list_cards",
    "list_grants",
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


def _live(row: Any, now: int) -> None:
    if row.ended_ms is not None:
        raise CardRefused(401, "unauthorized", "station grant ended by the operator")
    if row.expires_ms <= now:
        raise CardRefused(401, "unauthorized", "station grant expired")


def _is_device_key(conn: Any, public_key: str) -> bool:
    query = select(devices.c.device_id).where(devices.c.public_key == public_key)
    return conn.execute(query).first() is not None


def enroll_station(engine: Engine, grant: str, public_key: object, *, now: int) -> dict[str, Any]:
    """Bind ``grant`` to the station key ``public_key`` (``POST /api/v1/cards/station``).

    The same key again is the same answer (a lost reply); another key is 410, like a
    used enrollment token. A club device's enrolled key is never a station's (403).
    """
    if not isinstance(public_key, str):
        raise MalformedRequest("public_key must be base64 text")
    try:
        public_key_from_b64(public_key)
    except ProtocolError as exc:
        raise MalformedRequest(f"public_key: {exc}") from None
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(card_grants)
            .where(card_grants.c.token_hash == token_hash(grant))
            .with_for_update()
        ).first()
        if row is None:
            raise CardRefused(401, "unauthorized", "unknown station grant")
        _live(row, now)
        if row.station_key is None:
            if _is_device_key(conn, public_key):
                raise CardRefused(
                    403, "forbidden", "this key is a club device's; a station has its own key"
                )
            taken = conn.execute(
                select(card_grants.c.token_hash).where(card_grants.c.station_key == public_key)
            ).first()
            if taken is not None:
                raise CardRefused(
                    409, "conflict", "this station key is bound to another grant: make a new key"
                )
            conn.execute(
                update(card_grants)
                .where(card_grants.c.token_hash == row.token_hash)
                .values(station_key=public_key, enrolled_ms=now)
            )
        elif row.station_key != public_key:
            raise CardRefused(410, "gone", "station grant already used by another station key")
        return {
            "station": row.token_hash[:12],
            "count": row.count,
            "used": row.used,
            "url": row.url,
            "expires_ms": row.expires_ms,
        }


@dataclass(frozen=True, slots=True)
class StationRequest:
    """What a station request is authenticated by: its header, method, path and body."""

    authorization: str | None
    method: str
    path: str
    body: bytes


def authenticate_station(conn: Any, request: StationRequest, now: int) -> Any:
    """The grant row of the station that signed ``request``, or CardRefused 401/403.

    Checks, in order: a well-formed header, a key some grant is bound to (a club
    device's key is 403, anything else 401), the signature, the grant still live,
    the time near the portal's clock and later than the station's previous request
    (so a captured request is refused when sent again). Records the time.
    """
    try:
        auth = parse_station_authorization(request.authorization)
    except CardKeyError as exc:
        raise CardRefused(401, "unauthorized", str(exc)) from None
    row = conn.execute(
        select(card_grants).where(card_grants.c.station_key == auth.public_key).with_for_update()
    ).first()
    if row is None:
        if _is_device_key(conn, auth.public_key):
            raise CardRefused(403, "forbidden", "a club device is not a personalisation station")
        raise CardRefused(401, "unauthorized", "unknown station key")
    try:
        verify_station_request(auth, request.method, request.path, request.body, now_ms=now)
    except CardKeyError as exc:
        raise CardRefused(401, "unauthorized", str(exc)) from None
    _live(row, now)
    if row.last_at_ms is not None and auth.at_ms <= row.last_at_ms:
        raise CardRefused(
            401, "unauthorized", "request time not after the station's previous request (replay?)"
        )
    conn.execute(
        update(card_grants)
        .where(card_grants.c.token_hash == row.token_hash)
        .values(last_at_ms=auth.at_ms)
    )
    return row


def station_keys(
    engine: Engine,
    master: bytes,
    signing_key: Ed25519PrivateKey,
    request: StationRequest,
    uid: object,
    station_key: object,
    resume: object,
    *,
    now: int,
) -> dict[str, str]:
    """The sealed key bundle for card ``uid`` (``POST /api/v1/cards/keys``).

    The first request for a UID uses one card of the grant; asking again for a card
    this station was given and has not activated (a lost answer, a power cut) uses
    none. ``resume`` true asks only for such a card and never issues a new one: the
    station's question about a card whose key 0 is no longer the factory key. An
    active card is 409; so is a card issued to another station.
    """
    raw = _uid_bytes(uid)
    assert isinstance(uid, str)
    if not isinstance(station_key, str):
        raise MalformedRequest("station_key must be base64 text")
    if not isinstance(resume, bool):
        raise MalformedRequest("resume must be true or false")
    with write_transaction(engine) as conn:
        row = authenticate_station(conn, request, now)
        card = conn.execute(select(cards).where(cards.c.uid == uid)).first()
        if card is not None and card.state != ISSUED:
            raise CardRefused(409, "conflict", f"card {uid} is {card.state}")
        if card is not None and card.grant_hash != row.token_hash:
            raise CardRefused(409, "conflict", f"card {uid} was issued to another station")
        if card is None and resume:
            raise CardRefused(409, "conflict", f"card {uid} was not issued to this station")
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
    engine: Engine,
    master: bytes,
    request: StationRequest,
    uid: object,
    picc: object,
    mac: object,
    *,
    now: int,
) -> int:
    """Activate a card issued to this station by its first SUN read; returns the counter."""
    raw = _uid_bytes(uid)
    message = sun_from_card_field({"kind": KIND, "picc": picc, "mac": mac})
    with write_transaction(engine) as conn:
        row = authenticate_station(conn, request, now)
        card = conn.execute(select(cards).where(cards.c.uid == uid)).first()
        if card is None or card.grant_hash != row.token_hash:
            raise CardRefused(422, "unprocessable", f"card {uid} was not issued to this station")
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


def list_grants(engine: Engine) -> list[dict[str, Any]]:
    """Every grant by its short id (the hash's first 12 digits): use, station, times."""
    with engine.connect() as conn:
        rows = list(conn.execute(select(card_grants).order_by(card_grants.c.created_ms)))
    return [
        {
            "station": r.token_hash[:12],
            "count": r.count,
            "used": r.used,
            "url": r.url,
            "created_ms": r.created_ms,
            "expires_ms": r.expires_ms,
            "station_key": r.station_key,
            "enrolled_ms": r.enrolled_ms,
            "last_request_ms": r.last_at_ms,
            "ended_ms": r.ended_ms,
        }
        for r in rows
    ]


def end_grant(engine: Engine, station: str, *, now: int, revoke_since_ms: int | None = None) -> int:
    """End the grant whose short id is ``station`` now (a lost or stolen station).

    With ``revoke_since_ms``, also revoke every card issued or activated under it from
    that time on (those a thief may have made); returns how many cards were revoked.
    """
    if len(station) != 12 or any(c not in "0123456789abcdef" for c in station):
        raise NotFoundError(f"station {station!r} is not a grant id (12 hex digits)")
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(card_grants.c.token_hash, card_grants.c.ended_ms).where(
                card_grants.c.token_hash.startswith(station)
            )
        ).first()
        if row is None:
            raise NotFoundError(f"station {station} is not a grant")
        if row.ended_ms is None:
            conn.execute(
                update(card_grants)
                .where(card_grants.c.token_hash == row.token_hash)
                .values(ended_ms=now)
            )
        elif revoke_since_ms is None:
            raise PortalError(f"station {station} is already ended")
        if revoke_since_ms is None:
            return 0
        done = conn.execute(
            update(cards)
            .where(
                cards.c.grant_hash == row.token_hash,
                # Issued since, or activated since: a thief can fetch again the keys of
                # a card issued earlier whose personalisation was never finished.
                or_(cards.c.created_ms >= revoke_since_ms, cards.c.activated_ms >= revoke_since_ms),
                cards.c.state.in_((ISSUED, ACTIVE)),
            )
            .values(state=REVOKED, revoked_ms=now)
        )
        return int(done.rowcount)


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
    """Every card without its keys: uid, kind, state, key source, station, counter, times."""
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
        cards.c.grant_hash,
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(*columns).order_by(cards.c.uid))]
    for row in rows:  # the grant by its short id, as ``cards stations`` lists it
        grant = row.pop("grant_hash")
        row["station"] = grant[:12] if grant else None
    return rows


def revoke_card(engine: Engine, uid: str, *, now: int, replaced_by: str | None = None) -> None:
    """Revoke a card (lost, or ``replaced_by`` another): its reads from now on fail."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(cards.c.state).where(cards.c.uid == uid)).first()
        if row is None:
            raise NotFoundError(f"card {uid} is not registered")
        if row.state in (REVOKED, REPLACED):
            raise PortalError(f"card {uid} is already {row.state}")
        if replaced_by is not None:
            new = conn.execute(select(cards.c.state).where(cards.c.uid == replaced_by)).first()
            if new is None or new.state in (REVOKED, REPLACED) or replaced_by == uid:
                raise NotFoundError(
                    f"--replaced-by {replaced_by}: not a registered card in use (personalise "
                    "or import the new card first)"
                )
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
        # A card whose keys a station was given but never activated proves nothing: a
        # station (or its thief) holding the keys could make its messages (decision 0913).
        until = 0 if r.state == ISSUED else r.revoked_ms
        keys[r.uid] = CardKey(r.uid, sun.meta_read, sun.file_read, floor, until, r.kind)
    return CardBook(keys, require)
