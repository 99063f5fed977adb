"""Badge UIDs as records and rosters carry them: uppercase hex of whole bytes.

The one normaliser for the reader framing on the device (any whole number of
bytes, what the reader sent) and the portal's roster import (a card UID's
length only), so that a roster's ``04:a1-b2 c3`` matches a read of ``04A1B2C3``.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from agent.protocol.errors import UidError

__all__ = ["CARD_UID_BYTES", "normalise_uid"]

# ISO 14443 UIDs are 4, 7 or 10 bytes; EM4100 (125 kHz) cards carry 5.
CARD_UID_BYTES = frozenset({4, 5, 7, 10})
_SEPARATORS = re.compile(r"[:\-\s]+")
_HEX = re.compile(r"[0-9A-F]+")


def normalise_uid(
    text: str, *, lengths: Collection[int] | None = CARD_UID_BYTES, what: str = "UID"
) -> str:
    """``04:a1-b2 c3`` -> ``04A1B2C3``: separators (``:``, ``-``, spaces) dropped, uppercase.

    Raises :class:`UidError` for text that is not hex, not whole bytes, or (unless
    ``lengths`` is None) not a card UID's length; ``what`` names the value in the message.
    """
    uid = _SEPARATORS.sub("", text).upper()
    if not uid or not _HEX.fullmatch(uid):
        raise UidError(f"{what} {text!r} is not hexadecimal")
    if lengths is None:
        if len(uid) % 2:
            raise UidError(f"{what} {text!r} is not whole bytes of hex")
        return uid
    if len(uid) % 2 or len(uid) // 2 not in lengths:
        allowed = ", ".join(str(n) for n in sorted(lengths))
        allowed = " or ".join(allowed.rsplit(", ", 1))
        raise UidError(f"{what} {text!r} is {len(uid) / 2:g} bytes, not {allowed}")
    return uid
