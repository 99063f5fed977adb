"""The protocol's own exceptions: what a record, receipt, bundle or UID check raises.

They live here, not in :mod:`agent.exceptions`, so that the portal and third
parties verifying records import nothing of the agent but :mod:`agent.protocol`.
Their root is :class:`ValueError`, not the agent's ``QatysuError``: the agent's
catch-all sites catch ``(QatysuError, ProtocolError)`` (see agent/exceptions.py).

The tree::

    ProtocolError (ValueError)
    ├── EncodingError   a value outside the canonical value set
    ├── ReceiptError    a portal receipt that must not be acted on
    └── UidError        text that is not a badge UID
"""

from __future__ import annotations

__all__ = ["EncodingError", "ProtocolError", "ReceiptError", "UidError"]


class ProtocolError(ValueError):
    """A record, receipt or bundle that does not follow the wire format."""


class EncodingError(ProtocolError):
    """A value that has no canonical encoding (docs/protocol.md)."""


class ReceiptError(ProtocolError):
    """A receipt that fails verification and must not delete anything."""


class UidError(ProtocolError):
    """Text that is not a badge UID; the message quotes it and says why."""
