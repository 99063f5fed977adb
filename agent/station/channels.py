"""Readers the station can take a card from, by name.

A reader is a function that waits up to ``timeout_s`` for one card and returns a
context manager giving a :class:`~agent.station.personalise.Channel` (UID and APDU
exchange over ISO-DEP), closed when the card is done. It is also given the agent
config when one was named (``qatysu --config FILE``), or None, to find its hardware
there. ``mfrc522`` is the city station's reader (:mod:`agent.station.mfrc522`).
Tests register a reader over the emulated card with :func:`register_reader`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from agent.config import AgentConfig
from agent.exceptions import ConfigError
from agent.station.mfrc522 import open_mfrc522
from agent.station.personalise import Channel

__all__ = ["DEFAULT_READER", "Reader", "open_reader", "reader_names", "register_reader"]

Reader = Callable[[float, AgentConfig | None], AbstractContextManager[Channel]]
DEFAULT_READER = "mfrc522"

_READERS: dict[str, Reader] = {DEFAULT_READER: open_mfrc522}


def register_reader(name: str, reader: Reader) -> None:
    """Make ``reader`` available as ``--reader NAME`` (replacing one of that name)."""
    _READERS[name] = reader


def unregister_reader(name: str) -> None:
    """Forget reader ``name`` (a test's emulated reader); the default stays."""
    if name != DEFAULT_READER:
        _READERS.pop(name, None)


def reader_names() -> list[str]:
    return sorted(_READERS)


def open_reader(
    name: str, timeout_s: float, config: AgentConfig | None = None
) -> AbstractContextManager[Channel]:
    """The card on reader ``name``; ConfigError for an unknown name."""
    try:
        reader = _READERS[name]
    except KeyError:
        known = ", ".join(reader_names())
        raise ConfigError(f"--reader {name!r}: no such station reader (known: {known})") from None
    return reader(timeout_s, config)
