"""What the uplink needs from a record store, as protocols (no implementation here).

:class:`agent.records.store.RecordStore` meets both; tests and benchmarks may
bring their own. Every method is whole on its own (the store's lock), so the
uploader never holds a lock across a network call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["BundleStore", "UploadStore"]


class UploadStore(Protocol):
    """What :class:`agent.uplink.uploader.Uploader` reads, acknowledges and writes."""

    def pending(self, limit: int | None = None, after_seq: int = 0) -> list[dict[str, Any]]: ...

    def knows(self, seq: int, record_hash: str) -> bool: ...

    def acknowledge(self, receipt: dict[str, Any]) -> int: ...

    @property
    def last_ack(self) -> tuple[int, str]: ...

    @property
    def head(self) -> tuple[int, str]: ...

    @property
    def pending_count(self) -> int: ...

    def quarantine_record(self, seq: int, reason: str) -> object: ...

    def write(self, type: str, data: Mapping[str, Any]) -> dict[str, Any]: ...

    def declare_losses(self) -> list[dict[str, Any]]: ...


class BundleStore(UploadStore, Protocol):
    """An :class:`UploadStore` that also names its device and public key: what
    :mod:`agent.uplink.offline` needs to export a bundle and apply its receipt."""

    @property
    def device_id(self) -> str: ...

    @property
    def public_key(self) -> str: ...
