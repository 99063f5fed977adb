"""The key bundle a personalisation station receives for one card, sealed and signed.

The portal answers ``POST /api/v1/cards/keys`` (docs/cards.md) with the five AES-128
keys a card is given and the URL its NDEF file points at, sealed to the station's
X25519 public key: an ephemeral portal X25519 key, the shared secret through
HKDF-SHA256 (salt empty, info ``b"qatysu card keys " + UID``, 32 bytes), AES-256-GCM
with a random 12-byte nonce over the canonical JSON of the bundle. The response's
other fields are signed with the portal's Ed25519 key (the one the agent pins), so a
station that pins it knows the keys came from the portal and were meant for this UID.

The station is known to the portal by an Ed25519 key of its own, bound to one
station grant when it enrolls (``POST /api/v1/cards/station``). Every later request
carries ``Authorization: QatysuStation <public key> <at_ms> <signature>``, the
signature over :func:`station_request_bytes` (method, path, time, SHA-256 of the
body, after a domain prefix no record or receipt starts with). The portal takes each
station's times strictly increasing and near its own clock, so a captured request
cannot be sent again (decision 0912).

Both sides use this module: :func:`seal_bundle` and :func:`verify_station_request`
at the portal, :func:`open_bundle` and :func:`station_authorization` at the station.
Pure: no I/O, randomness only from ``os.urandom`` via cryptography.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.protocol.canonical import canonical_bytes, parse_json
from agent.protocol.errors import ProtocolError
from agent.protocol.keys import b64decode_strict, public_key_b64, public_key_from_b64

__all__ = [
    "BUNDLE_KEYS",
    "MAX_SKEW_MS",
    "STATION_SCHEME",
    "CardKeyBundle",
    "CardKeyError",
    "StationAuth",
    "open_bundle",
    "parse_station_authorization",
    "seal_bundle",
    "signed_fields",
    "station_authorization",
    "station_request_bytes",
    "verify_station_request",
    "x25519_public_b64",
]

# Card key numbers: 0 application master, 1 SDM meta read, 2 SDM file read, 3 and 4
# changed from the factory default so nobody else can use them.
BUNDLE_KEYS = ("app_master", "meta_read", "file_read", "key3", "key4")
_INFO_PREFIX = b"qatysu card keys "
_NONCE_BYTES = 12
_UID_HEX = re.compile(r"[0-9A-F]{14}")
_KEY_HEX = re.compile(r"[0-9a-f]{32}")


class CardKeyError(ProtocolError):
    """A sealed bundle that does not open, verify, or parse; the message names why."""


@dataclass(frozen=True, slots=True)
class CardKeyBundle:
    """The keys one card is personalised with, and the base URL of its NDEF file."""

    app_master: bytes
    meta_read: bytes
    file_read: bytes
    key3: bytes
    key4: bytes
    url: str

    def __post_init__(self) -> None:
        for name in BUNDLE_KEYS:
            if len(getattr(self, name)) != 16:
                raise ValueError(f"card key {name} is not 16 bytes")
        if not self.url.startswith("https://"):
            raise ValueError("the card URL must be https://")

    def __repr__(self) -> str:  # keys never reach a log through a repr
        return f"CardKeyBundle(url={self.url!r}, keys=<redacted>)"

    def plaintext(self) -> bytes:
        """The canonical JSON that is sealed (lowercase hex keys)."""
        value: dict[str, str] = {name: getattr(self, name).hex() for name in BUNDLE_KEYS}
        value["url"] = self.url
        return canonical_bytes(value)

    @classmethod
    def from_plaintext(cls, data: bytes) -> CardKeyBundle:
        try:
            value = parse_json(data)
        except ProtocolError as exc:
            raise CardKeyError(f"sealed bundle is not canonical JSON: {exc}") from None
        expected = {*BUNDLE_KEYS, "url"}
        if not isinstance(value, dict) or set(value) != expected:
            raise CardKeyError(f"sealed bundle must have exactly the fields {sorted(expected)}")
        keys: dict[str, bytes] = {}
        for name in BUNDLE_KEYS:
            text = value[name]
            if not isinstance(text, str) or not _KEY_HEX.fullmatch(text):
                raise CardKeyError(f"sealed bundle field {name} is not 32 lowercase hex")
            keys[name] = bytes.fromhex(text)
        url = value["url"]
        if not isinstance(url, str) or not url.startswith("https://"):
            raise CardKeyError("sealed bundle field url is not an https:// URL")
        return cls(url=url, **keys)


def x25519_public_b64(key: X25519PrivateKey | X25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, X25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def _x25519_public_from_b64(text: object, what: str) -> X25519PublicKey:
    if not isinstance(text, str):
        raise CardKeyError(f"{what} is not base64 text")
    try:
        raw = b64decode_strict(text, what)
    except ProtocolError as exc:
        raise CardKeyError(str(exc)) from None
    if len(raw) != 32:
        raise CardKeyError(f"{what} has {len(raw)} bytes, X25519 needs 32")
    return X25519PublicKey.from_public_bytes(raw)


def _check_uid(uid: object) -> bytes:
    if not isinstance(uid, str) or not _UID_HEX.fullmatch(uid):
        raise CardKeyError("uid is not 14 uppercase hex digits")
    return bytes.fromhex(uid)


def _aead_key(shared: bytes, uid: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=_INFO_PREFIX + uid)
    return hkdf.derive(shared)


def signed_fields(response: dict[str, Any]) -> bytes:
    """The bytes the portal signs: canonical JSON of every response field but the signature."""
    return canonical_bytes({k: v for k, v in response.items() if k != "signature"})


def seal_bundle(
    bundle: CardKeyBundle,
    uid: str,
    station_key_b64: str,
    signing_key: Ed25519PrivateKey,
) -> dict[str, str]:
    """The ``POST /api/v1/cards/keys`` response body for ``uid`` (14 uppercase hex).

    Raises :class:`CardKeyError` for a malformed UID or station key (the caller's 400).
    """
    uid_bytes = _check_uid(uid)
    station = _x25519_public_from_b64(station_key_b64, "station_key")
    ephemeral = X25519PrivateKey.generate()
    try:
        shared = ephemeral.exchange(station)
    except ValueError:  # a low-order point gives an all-zero secret
        raise CardKeyError("station_key is not a usable X25519 public key") from None
    nonce = os.urandom(_NONCE_BYTES)
    sealed = nonce + AESGCM(_aead_key(shared, uid_bytes)).encrypt(nonce, bundle.plaintext(), None)
    response = {
        "uid": uid,
        "portal_key": x25519_public_b64(ephemeral),
        "sealed": base64.b64encode(sealed).decode("ascii"),
    }
    signature = signing_key.sign(signed_fields(response))
    return {**response, "signature": base64.b64encode(signature).decode("ascii")}


def open_bundle(
    response: object,
    uid: str,
    station_key: X25519PrivateKey,
    portal_public_key: Ed25519PublicKey,
) -> CardKeyBundle:
    """Verify and open a response for the card ``uid`` the station holds.

    The signature is checked first (with the pinned portal key), then that the
    response names this UID, then the seal. Raises :class:`CardKeyError`.
    """
    if not isinstance(response, dict):
        raise CardKeyError("response is not a JSON object")
    fields = {"uid", "portal_key", "sealed", "signature"}
    if set(response) != fields or not all(isinstance(response[f], str) for f in fields):
        raise CardKeyError(f"response must have exactly the string fields {sorted(fields)}")
    try:
        signature = b64decode_strict(response["signature"], "signature")
        portal_public_key.verify(signature, signed_fields(response))
    except (ProtocolError, InvalidSignature):
        raise CardKeyError("signature does not verify with the pinned portal key") from None
    if response["uid"] != uid:
        raise CardKeyError(f"response is for card {response['uid']}, not {uid}")
    uid_bytes = _check_uid(uid)
    ephemeral = _x25519_public_from_b64(response["portal_key"], "portal_key")
    try:
        sealed = b64decode_strict(response["sealed"], "sealed")
    except ProtocolError as exc:
        raise CardKeyError(str(exc)) from None
    if len(sealed) < _NONCE_BYTES + 16:
        raise CardKeyError("sealed is too short for a nonce and a GCM tag")
    try:
        shared = station_key.exchange(ephemeral)
        plain = AESGCM(_aead_key(shared, uid_bytes)).decrypt(
            sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], None
        )
    except (ValueError, InvalidTag):
        raise CardKeyError("sealed bundle does not open with this station's key") from None
    return CardKeyBundle.from_plaintext(plain)


# --- the station's signed requests ---------------------------------------------------

STATION_SCHEME = "QatysuStation"
MAX_SKEW_MS = 300_000  # a request's time may be this far from the portal's clock
_REQUEST_DOMAIN = b"qatysu station request v1\n"
_MAX_HEADER = 256


def station_request_bytes(method: str, path: str, at_ms: int, body: bytes) -> bytes:
    """What a station signs for one request: no other message of ours has this prefix."""
    digest = hashlib.sha256(body).hexdigest()
    return _REQUEST_DOMAIN + f"{method.upper()}\n{path}\n{at_ms}\n{digest}".encode("ascii")


def station_authorization(
    key: Ed25519PrivateKey, method: str, path: str, at_ms: int, body: bytes
) -> str:
    """The ``Authorization`` header value for one request of the station holding ``key``."""
    signature = key.sign(station_request_bytes(method, path, at_ms, body))
    sig = base64.b64encode(signature).decode("ascii")
    return f"{STATION_SCHEME} {public_key_b64(key)} {at_ms} {sig}"


@dataclass(frozen=True, slots=True)
class StationAuth:
    """A parsed ``QatysuStation`` header: who claims to send, when, and the signature."""

    public_key: str  # standard base64 of the raw Ed25519 key, as stored at enrollment
    at_ms: int
    signature: bytes


def parse_station_authorization(header: str | None) -> StationAuth:
    """The header's parts; :class:`CardKeyError` (the caller's 401) when it is not one."""
    if not header:
        raise CardKeyError(f"a station signature is required (Authorization: {STATION_SCHEME})")
    if len(header) > _MAX_HEADER:
        raise CardKeyError("the Authorization header is too long")
    parts = header.split(" ")
    if len(parts) != 4 or parts[0] != STATION_SCHEME:
        raise CardKeyError(f"Authorization is not '{STATION_SCHEME} KEY AT_MS SIGNATURE'")
    _, key, at, sig = parts
    if not at.isdigit() or len(at) > 15:
        raise CardKeyError("the request time is not milliseconds")
    try:
        public_key_from_b64(key)
        signature = b64decode_strict(sig, "signature")
    except ProtocolError as exc:
        raise CardKeyError(str(exc)) from None
    return StationAuth(key, int(at), signature)


def verify_station_request(
    auth: StationAuth, method: str, path: str, body: bytes, *, now_ms: int
) -> None:
    """Check the signature and that the time is near ``now_ms``; CardKeyError otherwise.

    Whether the time is also later than the station's previous request is the
    caller's check: it needs the stored time.
    """
    try:
        public_key_from_b64(auth.public_key).verify(
            auth.signature, station_request_bytes(method, path, auth.at_ms, body)
        )
    except (ProtocolError, InvalidSignature):
        raise CardKeyError("the station signature does not verify") from None
    skew = auth.at_ms - now_ms
    if abs(skew) > MAX_SKEW_MS:
        raise CardKeyError(
            f"the request time is {skew / 1000:+.0f} s from the portal's clock "
            f"(at most {MAX_SKEW_MS // 1000} s): set the station's clock"
        )
