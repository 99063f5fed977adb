"""Value tests the protocol's modules share: exact integers and 64-hex digests."""

from __future__ import annotations

import re

__all__ = ["HEX64", "is_hex64", "is_int"]

HEX64 = re.compile(r"[0-9a-f]{64}")


def is_int(value: object) -> bool:
    """True for an ``int`` that is not a ``bool`` (nor any other subclass)."""
    return type(value) is int


def is_hex64(value: object) -> bool:
    """True for a SHA-256 digest as records carry it: 64 lowercase hex characters."""
    return isinstance(value, str) and HEX64.fullmatch(value) is not None
