"""Readers the station can take a card from, by name: the seam for the MFRC522.

A reader is a function that waits up to ``timeout_s`` for one card and returns a
context manager giving a :class:`~agent.station.personalise.Channel` (UID and APDU
exchange over ISO-DEP), closed when the card is done. ``mfrc522`` is the city
station's reader: its ISO-DEP path is being wired into ``agent/readers`` and plugs
in here by replacing :func:`_mfrc522` with a call to it; until then it says so.
Tests register a reader over the emulated card with :func:`register_reader`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from agent.exceptions import ConfigError, StationError
from agent.station.personalise import Channel

__all__ = ["DEFAULT_READER", "Reader", "open_reader", "reader_names", "register_reader"]

Reader = Callable[[float], AbstractContextManager[Channel]]
DEFAULT_READER = "mfrc522"


def _mfrc522(timeout_s: float) -> AbstractContextManager[Channel]:
    raise StationError(
        "reader mfrc522: the MFRC522 ISO-DEP channel is not in this build yet "
        "(docs/cards.md, 'The station')"
    )


_READERS: dict[str, Reader] = {DEFAULT_READER: _mfrc522}


def register_reader(name: str, reader: Reader) -> None:
    """Make ``reader`` available as ``--reader NAME`` (replacing one of that name)."""
    _READERS[name] = reader


def unregister_reader(name: str) -> None:
    """Forget reader ``name`` (a test's emulated reader); the default stays."""
    if name != DEFAULT_READER:
        _READERS.pop(name, None)


def reader_names() -> list[str]:
    return sorted(_READERS)


def open_reader(name: str, timeout_s: float) -> AbstractContextManager[Channel]:
    """The card on reader ``name``; ConfigError for an unknown name."""
    try:
        reader = _READERS[name]
    except KeyError:
        known = ", ".join(reader_names())
        raise ConfigError(f"--reader {name!r}: no such station reader (known: {known})") from None
    return reader(timeout_s)
