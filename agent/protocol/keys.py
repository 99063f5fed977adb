"""Ed25519 keys as they cross the wire: standard base64 of the raw 32 bytes."""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from agent.protocol.errors import ProtocolError

__all__ = [
    "b64decode_strict",
    "private_key_from_raw",
    "private_key_raw",
    "public_key_b64",
    "public_key_from_b64",
]


def b64decode_strict(text: str, what: str = "value") -> bytes:
    """Decode padded standard base64, refusing anything else."""
    if not isinstance(text, str) or not text.isascii():
        raise ProtocolError(f"{what} is not base64 text")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"{what} is not strict base64: {exc}") from exc
    # b64decode ignores non-zero bits in the last character; strict means one
    # text per byte string, so re-encode and compare.
    if base64.b64encode(raw).decode("ascii") != text:
        raise ProtocolError(f"{what} is not canonical base64 (non-zero padding bits)")
    return raw


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_b64(text: object) -> Ed25519PublicKey:
    """Parse a base64 public key; raises :class:`ProtocolError` for anything else."""
    if not isinstance(text, str):
        raise ProtocolError("public key is not base64 text")
    raw = b64decode_strict(text, "public key")
    if len(raw) != 32:
        raise ProtocolError(f"public key has {len(raw)} bytes, Ed25519 needs 32")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:  # pragma: no cover - OpenSSL accepts any 32 bytes today
        raise ProtocolError(f"public key is not an Ed25519 point: {exc}") from exc


def private_key_raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def private_key_from_raw(raw: bytes) -> Ed25519PrivateKey:
    if len(raw) != 32:
        raise ProtocolError(f"private key has {len(raw)} bytes, Ed25519 needs 32")
    return Ed25519PrivateKey.from_private_bytes(raw)
