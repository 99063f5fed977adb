"""What the hardware tells the daemon: plain values, no I/O.

Readers and sensors produce these; the daemon's single writer turns each into
exactly one record (docs/protocol.md). Keeping them here, apart from any driver,
lets the core and the tests build them without hardware libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BadgeRead", "Event", "ReaderStatus", "SensorChange"]


@dataclass(frozen=True)
class BadgeRead:
    """One presentation of a card: a ``badge`` record's data."""

    reader: str
    driver: str
    uid: str  # uppercase hex of the real UID bytes, never a check byte
    uid_len: int  # bytes
    # The card's own proof of this read (docs/cards.md), e.g. a SUN message's
    # ``{"kind": "ntag424-sun", "picc": ..., "mac": ...}``; None for UID-only cards.
    card: dict[str, str] | None = None

    def record_data(self) -> dict[str, object]:
        data: dict[str, object] = {
            "reader": self.reader,
            "driver": self.driver,
            "uid": self.uid,
            "uid_len": self.uid_len,
        }
        if self.card is not None:
            data["card"] = dict(self.card)
        return data


@dataclass(frozen=True)
class ReaderStatus:
    """A reader fault or recovery: a ``reader`` record's data."""

    reader: str
    state: Literal["fault", "recovered"]
    detail: str

    def record_data(self) -> dict[str, object]:
        return {"reader": self.reader, "state": self.state, "detail": self.detail}


@dataclass(frozen=True)
class SensorChange:
    """A settled door or tamper change: a ``door`` or ``tamper`` record's data."""

    kind: Literal["door", "tamper"]
    sensor: str
    state: Literal["open", "closed"]

    def record_data(self) -> dict[str, object]:
        return {"sensor": self.sensor, "state": self.state}


Event = BadgeRead | ReaderStatus | SensorChange
