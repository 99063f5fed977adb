"""Every exception the portal raises on purpose.

    PortalError
    ├── PortalConfigError (ValueError)  a setting or CLI argument that cannot be used
    ├── NotFoundError (LookupError)     an unknown device, center, token
    ├── ImportFileError (ValueError)    a CSV import; names file, line and column
    └── IngestRefused                   an upload the portal will not store
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
