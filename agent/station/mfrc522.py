"""The station's reader: an MFRC522 (RC522 board) on the city Pi's SPI, one card at a time.

The chip is driven by the door's driver (:mod:`agent.readers.mfrc522`), not by a
second copy of it: the same register bus (the ``mfrc522`` package's spidev and
RPi.GPIO), the same activation, and the same ISO-DEP session
(:class:`~agent.readers.mfrc522.IsoDepSession`: RATS, I-blocks chained both ways
within the 64-byte FIFO, R(ACK)/R(NAK), S(WTX), DESELECT). What is the station's
own: waiting for one card instead of polling forever, refusing a card that cannot
be an NTAG 424 DNA before a key is asked for, a longer cap on the card's answer
(nobody queues at the office door), and the
:class:`~agent.station.personalise.Channel` the personalisation runs over.

Which chip: the first ``[[readers]]`` entry with ``driver = "mfrc522"`` of the agent
config, if one is given (``spi_bus``, ``spi_device``, ``reset_pin``, ``poll_ms``),
else SPI 0.0 with the reset line on GPIO25, as on a door (docs/cards.md, "The
station").
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from agent.config import AgentConfig
from agent.exceptions import ConfigError, ReaderError, StationError
from agent.readers.iso14443 import SAK_ISO14443_4, Activated
from agent.readers.isodep import IsoDepError
from agent.readers.mfrc522 import BusOpener, IsoDepSession, Mfrc522Config, Mfrc522Reader
from agent.readers.mfrc522_spi import open_spi_bus

__all__ = ["STATION_MAX_WAIT_S", "Mfrc522Channel", "open_mfrc522", "station_reader_config"]

logger = logging.getLogger(__name__)

# The longest the station waits for one answer of the card (S(WTX) included). An
# NTAG 424 DNA's frame waiting time is ~40 ms and it asks for more while it writes
# its EEPROM; the door caps this at 50 ms so no card holds the door, the station
# need not. Longer than this, the card is taken to have left.
STATION_MAX_WAIT_S = 1.0


def station_reader_config(config: AgentConfig | None) -> Mfrc522Config:
    """The MFRC522 to use: the config's first mfrc522 ``[[readers]]`` entry, or the defaults."""
    if config is None:
        return Mfrc522Config(name="station")
    for entry in config.readers:
        if isinstance(entry, Mfrc522Config):
            return entry
    where = config.path or "config"
    raise ConfigError(f'{where}: readers: no [[readers]] entry with driver = "mfrc522"')


class Mfrc522Channel:
    """The card selected on the chip as the station sees it: its UID, APDUs over ISO-DEP."""

    def __init__(self, session: IsoDepSession) -> None:
        self.session = session
        self.uid = session.uid

    def transceive_apdu(self, command: bytes) -> bytes:
        try:
            return self.session.apdu(command)
        except IsoDepError as exc:  # beyond the block protocol's retries: the card is gone
            raise ReaderError(f"card {self.uid.hex().upper()}: {exc}") from exc


@contextlib.contextmanager
def open_mfrc522(
    timeout_s: float,
    config: AgentConfig | None = None,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    open_bus: BusOpener = open_spi_bus,
) -> Iterator[Mfrc522Channel]:
    """Wait up to ``timeout_s`` for one card, open its ISO-DEP session, yield its channel.

    StationError when the chip cannot be used, no card comes, or the card is not an
    ISO 14443-4 card; ReaderError (the card left) only once the channel is given.
    On exit the card is deselected (it goes to HALT) and the bus closed.
    """
    settings = station_reader_config(config)
    reader = Mfrc522Reader.from_config(settings, sleep=sleep, open_bus=open_bus)
    try:
        try:
            logger.info("%s", reader.probe())
            card = _wait_for_card(reader, timeout_s, monotonic, sleep)
        except ReaderError as exc:
            raise StationError(f"reader mfrc522: {exc}") from exc
        session = _iso_dep(reader, card)
        try:
            yield Mfrc522Channel(session)
        finally:
            with contextlib.suppress(ReaderError, IsoDepError):
                session.deselect()  # a card that left answers nothing: the field reset stands
    finally:
        reader.close()


def _wait_for_card(
    reader: Mfrc522Reader,
    timeout_s: float,
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
) -> Activated:
    deadline = monotonic() + timeout_s
    while True:
        result = reader.select_card()
        if isinstance(result, Activated):
            logger.info("reader %s: card %s", reader.where, result.uid_hex)
            return result
        if monotonic() + reader.poll_s > deadline:
            # Something answered but could not be selected: most often two cards at once.
            seen = f" (a card answered: {result.reason})" if result.card_answered else ""
            raise StationError(
                f"reader mfrc522 on {reader.where}: no card within {timeout_s:g} s{seen}"
            )
        sleep(reader.poll_s)


def _iso_dep(reader: Mfrc522Reader, card: Activated) -> IsoDepSession:
    """RATS, or StationError: a card without ISO-DEP is no NTAG 424 DNA (and is halted)."""
    uid = card.uid_hex
    try:
        if not card.sak & SAK_ISO14443_4:
            reader.halt()
            raise StationError(
                f"card {uid}: SAK 0x{card.sak:02X}, no ISO 14443-4: not an NTAG 424 DNA"
            )
        try:
            return reader.open_iso_dep(card, max_wait_s=STATION_MAX_WAIT_S)
        except IsoDepError as exc:
            raise StationError(f"card {uid}: {exc}: not an NTAG 424 DNA") from None
    except ReaderError as exc:
        raise StationError(f"reader mfrc522: {exc}") from exc
