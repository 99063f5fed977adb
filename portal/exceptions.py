"""Every exception the portal raises on purpose.

PortalError
├── PortalConfigError (ValueError)  a setting or CLI argument that cannot be used
├── NotFoundError (LookupError)     an unknown device, center, token
│   └── UnknownDeviceError          a device id never enrolled
├── ImportFileError (ValueError)    a CSV import; names file, line and column
├── IngestRefused                   an upload the portal will not store
│   └── RevokedDeviceError          a device an operator revoked
├── EnrollmentRefused               an enrollment token refused (kind: unknown|gone|conflict)
├── MalformedRequest (ValueError)   a request body the API cannot read (400)
├── ClientGone                      the client hung up before its body was read
└── RequestTooLarge                 a body or batch over a limit (413)
"""

from __future__ import annotations


class PortalError(Exception):
    """Root of every error raised by the portal."""


class PortalConfigError(PortalError, ValueError):
    """A setting or argument that cannot be used."""


class NotFoundError(PortalError, LookupError):
    """An object the request names does not exist."""


class ImportFileError(PortalError, ValueError):
    """A CSV import that cannot be applied; nothing from the file was stored."""


class IngestRefused(PortalError):
    """An upload the portal will not store as genuine."""


class UnknownDeviceError(NotFoundError):
    """A device id the portal never enrolled."""


class RevokedDeviceError(IngestRefused):
    """A device an operator revoked; its history stays, new records are refused."""


class EnrollmentRefused(PortalError):
    """An enrollment the portal will not perform; ``kind`` is unknown, gone or conflict."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class MalformedRequest(PortalError, ValueError):
    """A request body that is not what the API documents (HTTP 400)."""


class RequestTooLarge(PortalError):
    """A request over a size limit, compressed or decompressed (HTTP 413)."""


class ClientGone(PortalError):
    """The client closed the connection before the whole body arrived.

    A device losing power or network mid-upload: nothing was stored, the device
    sends the batch again, and it is no evidence of abuse.
    """
