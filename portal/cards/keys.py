"""Each card's keys: derived from the card master key, or imported and sealed at rest.

Decision 0920: a card personalised by our station gets keys diversified from the
card master key (NXP AN10922, input UID ‖ key number ‖ ``qatysu``), so the database
holds no key at all and a stolen database opens no card. Keys of cards personalised
elsewhere cannot be derived; they are stored sealed (AES-256-GCM, the UID as
associated data) under a key derived from the same master, so the master file alone
remains what must be guarded. Nothing here logs or formats a key.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.protocol.card_keys import CardKeyBundle
from agent.protocol.ntag424 import diversify_key
from portal.exceptions import PortalConfigError

__all__ = ["SunKeys", "derived_bundle", "derived_sun_keys", "open_at_rest", "seal_at_rest"]

_SYSTEM = b"qatysu"
_AT_REST_INFO = b"qatysu imported card keys at rest"


class SunKeys:
    """The two keys the portal checks reads with; a repr never shows them."""

    __slots__ = ("file_read", "meta_read")

    def __init__(self, meta_read: bytes, file_read: bytes) -> None:
        if len(meta_read) != 16 or len(file_read) != 16:
            raise ValueError("card keys are 16 bytes")
        self.meta_read = meta_read
        self.file_read = file_read

    def __repr__(self) -> str:
        return "SunKeys(<redacted>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SunKeys) and (self.meta_read, self.file_read) == (
            other.meta_read,
            other.file_read,
        )

    def __hash__(self) -> int:
        return hash((self.meta_read, self.file_read))


def _key(master: bytes, uid: bytes, number: int) -> bytes:
    return diversify_key(master, uid + bytes([number]) + _SYSTEM)


def derived_bundle(master: bytes, uid: bytes, url: str) -> CardKeyBundle:
    """The five keys of a card our station personalises, and its URL."""
    k0, k1, k2, k3, k4 = (_key(master, uid, n) for n in range(5))
    return CardKeyBundle(app_master=k0, meta_read=k1, file_read=k2, key3=k3, key4=k4, url=url)


def derived_sun_keys(master: bytes, uid: bytes) -> SunKeys:
    return SunKeys(_key(master, uid, 1), _key(master, uid, 2))


def _at_rest_key(master: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=_AT_REST_INFO)
    return hkdf.derive(master)


def seal_at_rest(master: bytes, uid: bytes, keys: SunKeys) -> str:
    """An imported card's keys as stored (hex of nonce ‖ AES-GCM ciphertext)."""
    nonce = os.urandom(12)
    sealed = AESGCM(_at_rest_key(master)).encrypt(nonce, keys.meta_read + keys.file_read, uid)
    return (nonce + sealed).hex()


def open_at_rest(master: bytes, uid: bytes, sealed_hex: str) -> SunKeys:
    """An imported card's keys; a seal that does not open is a wrong master key file."""
    try:
        raw = bytes.fromhex(sealed_hex)
        plain = AESGCM(_at_rest_key(master)).decrypt(raw[:12], raw[12:], uid)
    except (ValueError, InvalidTag):
        raise PortalConfigError(
            f"card {uid.hex().upper()}: its stored keys do not open with this card master "
            "key (was card-master.key replaced?)"
        ) from None
    return SunKeys(plain[:16], plain[16:])
