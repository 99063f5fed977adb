"""Every exception the agent raises on purpose.

Two roots. The protocol's errors are defined in :mod:`agent.protocol.errors`
(shared with the portal, which imports nothing else of the agent) and
re-exported here; they are ``ValueError``s, not ``QatysuError``s, so a site
that catches all of the agent's own errors catches ``(QatysuError, ProtocolError)``::

    ProtocolError (ValueError)      agent.protocol.errors
    ├── EncodingError           a value outside the canonical value set
    ├── ReceiptError            a portal receipt that must not be acted on
    └── UidError                text that is not a badge UID

    QatysuError
    ├── KeyFileError (OSError)  a device key file missing, unreadable or too open
    ├── ConfigError (ValueError) a config file or key that cannot be used
    ├── RecordBufferError       the local record buffer
    │   ├── BufferLockedError   another process owns the buffer
    │   ├── BufferPermissionError the buffer's files belong to another user
    │   └── BufferFullError (OSError) an append could not be made durable
    ├── HardwareError           readers and sensors (foreign errors wrapped here)
    │   └── ReaderError
    ├── UploadError             the uploader's view of a portal exchange
    │   ├── PortalUnreachable   no answer: refused, reset, timed out, cut short
    │   ├── PortalRefused       an answer the caller cannot use (status, body)
    │   └── OfflineError        a bundle export or receipt file (the USB stick path)
    ├── ControlError            the daemon's control socket
    └── StationError            the personalisation station (agent/station)
        └── CardNotBlank        a card the station must not personalise
"""

from __future__ import annotations

from agent.protocol.errors import EncodingError, ProtocolError, ReceiptError, UidError

__all__ = [
    "BufferFullError",
    "BufferLockedError",
    "ConfigError",
    "ControlError",
    "EncodingError",
    "HardwareError",
    "KeyFileError",
    "OfflineError",
    "PortalRefused",
    "PortalUnreachable",
    "ProtocolError",
    "QatysuError",
    "ReaderError",
    "ReceiptError",
    "RecordBufferError",
    "UidError",
    "UploadError",
]


class QatysuError(Exception):
    """Root of every error raised by the agent outside the protocol (see ProtocolError)."""


class KeyFileError(QatysuError, OSError):
    """A key file that cannot be used safely."""


class ConfigError(QatysuError, ValueError):
    """A configuration that cannot be used; the message names file and key."""


class RecordBufferError(QatysuError):
    """The local record buffer cannot do what was asked."""


class BufferLockedError(RecordBufferError):
    """Another process holds the buffer's write lock."""


class BufferPermissionError(RecordBufferError):
    """The buffer's files cannot be opened by this user; the message names the fix."""


class BufferFullError(RecordBufferError, OSError):
    """An append failed (disk full or quota exceeded); nothing stored was touched."""


class HardwareError(QatysuError):
    """A reader, sensor or bus failed; the foreign exception is the cause."""


class ReaderError(HardwareError):
    """A badge reader failed."""


class UploadError(QatysuError):
    """An upload attempt failed; the buffer is unchanged."""


class ControlError(QatysuError):
    """The daemon's control socket could not serve a request."""


class PortalUnreachable(UploadError):
    """No usable answer from the portal (httpx transport error wrapped, as cause)."""


class PortalRefused(UploadError):
    """The portal answered with a status the caller cannot act on; ``status`` holds it."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class StationError(QatysuError):
    """The personalisation station could not make a card; the message names the card."""


class CardNotBlank(StationError):
    """A card that is neither factory-blank nor one this station left unfinished."""


class OfflineError(UploadError):
    """A bundle could not be exported or a receipt file not applied; names the file."""
