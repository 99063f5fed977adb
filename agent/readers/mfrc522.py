"""MFRC522 (RC522 boards) over SPI, driven register by register through a :class:`RegisterBus`.

The bus is an argument: ``open_bus(spi_bus, spi_device, reset_pin)`` returns
something that reads and writes chip registers and drives the reset line.
The real one (:func:`agent.readers.mfrc522_spi.open_spi_bus`, the default) is
the ``mfrc522`` package's wiring of spidev and RPi.GPIO; the tests pass the
register-level emulator's. The package's own exchange (``MFRC522_ToCard``)
ignores the chip's timer and spins through ~2,000 register reads per empty
poll, and its anticollision stops at cascade level 1, so both are replaced
here:

* :meth:`Mfrc522Reader._transceive` programs the chip's timer once (TAuto,
  1 ms after the end of transmission), sleeps for the frame plus that timeout
  and reads ComIrqReg until RxIRq, IdleIRq, ErrIRq or TimerIRq, at most
  ``IRQ_READS`` times: an idle poll is 8 SPI transfers, REQA included.
* The protocol (anticollision, select, cascade levels, BCC, HLTA) is the
  sans-I/O :func:`agent.readers.iso14443.activate`; one read per presentation
  is :class:`~agent.readers.presence.PresenceTracker`; when the chip is at
  fault is :class:`~agent.readers.mfrc522_health.ChipHealth`.
* A new presentation of a card whose SAK says ISO 14443-4 gets one ISO-DEP
  session (:mod:`agent.readers.isodep`: RATS, the NDEF application and file,
  READ BINARY in chunks that fit the 64-byte FIFO, DESELECT); a SUN message
  in the NDEF file goes into ``BadgeRead.card``. Whatever goes wrong in that
  session, the UID read stands (docs/readers-mfrc522.md, "Cards with SUN").
* That session is public, one card at a time: :meth:`Mfrc522Reader.select_card`,
  :meth:`~Mfrc522Reader.open_iso_dep` and :class:`IsoDepSession` (APDUs,
  DESELECT), :meth:`~Mfrc522Reader.halt`. The city's personalisation station
  (:mod:`agent.station.mfrc522`) runs its APDUs over it.

Every bus error (spidev, RPi.GPIO, an emulator's) is translated into
:class:`ReaderError` at the register access below; ``run`` never raises for
hardware trouble.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from agent.clock import Clock
from agent.exceptions import ReaderError
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.protocol.ntag424 import card_field, parse_sun_ndef
from agent.readers.base import BootLine, Device, Emit, Problem, Reader, ReaderConfig, Requirements
from agent.readers.iso14443 import (
    HLTA_FRAME,
    SAK_ISO14443_4,
    Activated,
    Frame,
    NotActivated,
    Reply,
    activate,
)
from agent.readers.isodep import Flow, IsoDep, IsoDepError, read_ndef_file
from agent.readers.mfrc522_health import DEAD_VERSIONS, ChipHealth, describe_version
from agent.readers.mfrc522_spi import open_spi_bus
from agent.readers.presence import PresenceTracker

__all__ = ["BusOpener", "IsoDepSession", "Mfrc522Config", "Mfrc522Reader", "RegisterBus"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# Registers and bits (MFRC522 datasheet, section 9).
COMMAND_REG, COM_IRQ_REG, ERROR_REG = 0x01, 0x04, 0x06
FIFO_DATA_REG, FIFO_LEVEL_REG, CONTROL_REG = 0x09, 0x0A, 0x0C
BIT_FRAMING_REG, COLL_REG, MODE_REG = 0x0D, 0x0E, 0x11
TX_CONTROL_REG, TX_ASK_REG = 0x14, 0x15
T_MODE_REG, T_PRESCALER_REG, T_RELOAD_H_REG, T_RELOAD_L_REG = 0x2A, 0x2B, 0x2C, 0x2D
VERSION_REG = 0x37
CMD_IDLE, CMD_TRANSCEIVE, CMD_SOFT_RESET = 0x00, 0x0C, 0x0F
POWER_DOWN = 0x10  # CommandReg: set until the oscillator runs after a reset
START_SEND = 0x80
IRQ_RX, IRQ_IDLE, IRQ_ERR, IRQ_TIMER = 0x20, 0x10, 0x02, 0x01
IRQ_DONE = IRQ_RX | IRQ_IDLE | IRQ_ERR | IRQ_TIMER
ERR_CHIP = 0x80 | 0x40  # WrErr, TempErr: the chip, not the radio
# BufferOvfl after a reception: the frame was longer than the FIFO (the FIFO was
# flushed before sending, so it is the answer's fault, not a write of ours).
ERR_BUFFER_OVFL = 0x10
ERR_COLL, ERR_CRC, ERR_PARITY, ERR_PROTOCOL = 0x08, 0x04, 0x02, 0x01  # radio trouble
COLL_POS_NOT_VALID = 0x20

FC_HZ = 13.56e6
BIT_S = 128 / FC_HZ  # one bit on air at 106 kbit/s
# Timer: 13.56 MHz / (2*169+1) = 40 kHz, 40 ticks = 1 ms from the end of
# transmission. Every answer this driver waits for (ATQA, anticollision, SAK)
# starts within ~0.1 ms and lasts under 0.5 ms, and the timer stops on its
# first bit.
TIMER_PRESCALER = 169
TIMER_RELOAD = 39
TIMER_S = (2 * TIMER_PRESCALER + 1) * (TIMER_RELOAD + 1) / FC_HZ
IRQ_READS = 8  # ComIrqReg reads before the chip counts as not answering
IRQ_RETRY_S = 0.0005
TIMER_TICK_S = (2 * TIMER_PRESCALER + 1) / FC_HZ  # 25 us
TIMER_RELOAD_MAX = 0xFFFF  # 1.6 s at this prescaler, beyond any wait we accept
FIFO_BYTES = 64  # the chip's FIFO: the longest frame either way, CRC included
FDT_S = 1236 / FC_HZ  # a card's answer starts at least this long after our frame
# ISO-DEP at the door: one session per new presentation. A card's frame waiting
# time is capped so a card with a huge FWI (or endless WTX) cannot hold the
# reader: an NTAG 424 DNA (FWI 7) needs 42 ms at most and answers in ~1 ms.
ISO_DEP_MAX_WAIT_S = 0.05
ISO_DEP_ATTEMPTS = 2  # a session broken after the ATS is tried once more
FIELD_OFF_S = 0.006  # an RF reset: every card in the field back to IDLE (ISO 14443-3: > 5 ms)
FIELD_ON_S = 0.005  # the card powers up before the next WUPA
RESET_PULSE_S = 0.001
OSCILLATOR_START_S = 0.05

_FOREIGN = (OSError, RuntimeError, ValueError, OverflowError)
# SPI0 uses these for the bus itself; a door or LED on them breaks the reader.
_SPI0_PINS = {7: "SPI0 CE1", 8: "SPI0 CE0", 9: "SPI0 MISO", 10: "SPI0 MOSI", 11: "SPI0 SCLK"}
_SPI_FIX = "enable SPI in the boot config and reboot"
_SPI_BOOT = {
    0: BootLine("SPI0 for the MFRC522", ("dtparam=spi=on",)),
    1: BootLine(
        "SPI1 for the MFRC522", ("dtoverlay=spi1-1cs", "dtoverlay=spi1-2cs", "dtoverlay=spi1-3cs")
    ),
}


class RegisterBus(Protocol):
    """The chip as the driver sees it: registers, and the reset line if one is wired."""

    def read(self, register: int) -> int: ...
    def write(self, register: int, value: int) -> None: ...
    # The FIFO in one SPI transfer each way: the chip reads ``count`` times the
    # same address, or writes every byte after the address to it (datasheet 8.1.2).
    def read_many(self, register: int, count: int) -> bytes: ...
    def write_many(self, register: int, values: bytes) -> None: ...
    def set_reset(self, level: int) -> None: ...
    def close(self) -> None: ...


# (spi_bus, spi_device, reset_pin) -> an open bus; raises when the bus is not there.
BusOpener = Callable[[int, int, int | None], RegisterBus]


@dataclass(frozen=True)
class Mfrc522Config(ReaderConfig):
    driver: str = field(default="mfrc522", init=False)
    spi_bus: int = field(default=0, metadata={"comment": "SPI bus (0 = pins 19/21/23)"})
    spi_device: int = field(default=0, metadata={"comment": "chip select (0 = CE0, GPIO 8)"})
    reset_pin: int | None = field(default=25, metadata={"comment": "BCM number of the RST line"})
    poll_ms: int = field(default=100, metadata={"comment": "how often the reader looks for a card"})
    # a card must be absent this many polls before it counts again
    absent_polls: int = 3
    # a card read again within this window after leaving still counts once
    repeat_window_ms: int = 2000


class Mfrc522Reader(Reader[Mfrc522Config]):
    driver = "mfrc522"
    config_class = Mfrc522Config

    def __init__(
        self,
        name: str,
        *,
        spi_bus: int = 0,
        spi_device: int = 0,
        reset_pin: int | None = 25,
        poll_ms: int = 100,
        absent_polls: int = 3,
        repeat_window_ms: int = 2000,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        health: ChipHealth | None = None,
        open_bus: BusOpener = open_spi_bus,
    ) -> None:
        super().__init__(name)
        if poll_ms <= 0:
            raise ReaderError(f"reader {name}: poll_ms must be positive, not {poll_ms}")
        self.spi_bus = spi_bus
        self.spi_device = spi_device
        self.reset_pin = reset_pin
        self.poll_s = poll_ms / 1000
        self.presence = PresenceTracker(absent_polls, repeat_window_ms / 1000)
        self.health = health or ChipHealth()
        self._monotonic = clock.monotonic if clock is not None else time.monotonic
        self._injected_sleep = sleep
        self._sleep = sleep or time.sleep
        self._open_bus = open_bus
        self._bus: RegisterBus | None = None
        self._reload = TIMER_RELOAD  # what TReloadReg holds since the last _init_chip

    @classmethod
    def from_config(
        cls, config: Mfrc522Config, *, clock: Clock | None = None, **inject: Any
    ) -> Mfrc522Reader:
        return cls(
            config.name,
            spi_bus=config.spi_bus,
            spi_device=config.spi_device,
            reset_pin=config.reset_pin,
            poll_ms=config.poll_ms,
            absent_polls=config.absent_polls,
            repeat_window_ms=config.repeat_window_ms,
            clock=clock,
            **inject,
        )

    @classmethod
    def requirements(cls, config: Mfrc522Config) -> Requirements:
        node = f"/dev/spidev{config.spi_bus}.{config.spi_device}"
        boot = _SPI_BOOT.get(config.spi_bus)
        return Requirements(
            pins=(("reset_pin", config.reset_pin),) if config.reset_pin is not None else (),
            bus_pins=_SPI0_PINS if config.spi_bus == 0 else {},
            devices=(
                Device(node, "spi", "spi_bus", fix="enable SPI in the boot config and reboot"),
            ),
            boot_config=(boot,) if boot is not None else (),
        )

    @classmethod
    def check(cls, config: Mfrc522Config) -> list[Problem]:
        problems = []
        if config.poll_ms <= 0:
            problems.append(Problem("error", "poll_ms", "must be above 0"))
        if config.spi_bus not in (0, 1) or config.spi_device not in (0, 1, 2):
            problems.append(
                Problem("error", "spi_bus", f"no SPI{config.spi_bus}.{config.spi_device} on a Pi")
            )
        return problems

    @property
    def where(self) -> str:
        return f"SPI {self.spi_bus}.{self.spi_device}"

    # -- the reader's life ------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self._start(emit)
        while not stop.is_set():
            self._step(emit)
            if stop.is_set():
                break
            self._wait(stop, self.poll_s)

    def _step(self, emit: Emit) -> None:
        """One iteration of :meth:`run` without its sleep: supervise, poll, report."""
        now = self._monotonic()
        health = self.health
        if health.faulted:
            if health.retry_due(now):
                detail = self._recover(now)
                if detail is None:
                    health.on_retry_failed(now)
                else:
                    logger.warning("reader %s recovered: %s", self.name, detail)
                    emit(ReaderStatus(self.name, "recovered", detail))
            return
        if health.version_due(now):
            try:
                fault = health.on_version(self._read(VERSION_REG), now)
            except ReaderError as exc:
                fault = health.fail(str(exc), now)
            if fault is not None:
                self._report_fault(emit, fault)
                return
        try:
            result = self.select_card()
        except ReaderError as exc:
            fault = health.on_exchange(False, now, str(exc))
            if fault is not None:
                self._report_fault(emit, fault)
            return
        chip_error: ReaderError | None = None
        if isinstance(result, Activated):
            new = self.presence.observe(result.uid_hex, now)
            card: dict[str, str] | None = None
            try:
                if new and result.sak & SAK_ISO14443_4:
                    card = self._read_card(result)
                else:
                    self.halt()
            except ReaderError as exc:
                chip_error = exc  # reported below, after the UID read it cannot undo
                with contextlib.suppress(ReaderError):
                    self._reset_field()  # a card left mid-session answers no WUPA
            if new:
                logger.info("reader %s: card %s%s", self.name, result.uid_hex,
                            " (SUN)" if card else "")  # fmt: skip
                emit(BadgeRead(self.name, self.driver, result.uid_hex, len(result.uid), card))
        elif not result.card_answered:
            self.presence.observe(None, now)
        else:
            # A card answered but could not be resolved: no evidence either way.
            logger.debug("reader %s: %s", self.name, result.reason)
        if chip_error is not None:
            fault = health.on_exchange(False, now, str(chip_error))
            if fault is not None:
                self._report_fault(emit, fault)
        else:
            health.on_exchange(True, now)

    def _read_card(self, card: Activated) -> dict[str, str] | None:
        """The SUN message of an ISO 14443-4 card just selected, or None: read by UID.

        A card that does not answer RATS, has no NDEF application, file or SUN
        message is read by UID at once. A session that breaks after the ATS
        (the card left, frames lost beyond the block protocol's retries) is
        tried again once after an RF reset, if the same card is still there.
        """
        for attempt in range(ISO_DEP_ATTEMPTS):
            try:
                session = self.open_iso_dep(card)
            except IsoDepError as exc:
                logger.debug("reader %s: %s: %s, read by UID", self.name, card.uid_hex, exc)
                self._reset_field()  # a card that ignored RATS may sit in any state
                return None
            try:
                ndef = session.run(read_ndef_file(session.link))
            except IsoDepError as exc:
                logger.info("reader %s: card %s: ISO-DEP read failed (%s), attempt %d",
                            self.name, card.uid_hex, exc, attempt + 1)  # fmt: skip
                self._reset_field()
                again = self.select_card()
                if not (isinstance(again, Activated) and again.uid == card.uid):
                    if isinstance(again, Activated):
                        self.halt()
                    return None  # gone, or another card: this presentation is by UID
                continue
            session.deselect()
            message = parse_sun_ndef(ndef) if ndef is not None else None
            return card_field(message) if message is not None else None
        self.halt()
        return None

    # -- public seams: one card at a time (the station, agent/station/mfrc522.py) --

    def select_card(self) -> Activated | NotActivated:
        """WUPA ... SELECT, the card left ACTIVE (the caller halts or opens ISO-DEP)."""
        return self._drive(activate(wake=True, halt=False))

    def halt(self) -> None:
        """HLTA to the card selected: it answers no REQA until it leaves the field."""
        self._transceive(HLTA_FRAME)

    def open_iso_dep(
        self, card: Activated, *, max_wait_s: float = ISO_DEP_MAX_WAIT_S
    ) -> IsoDepSession:
        """RATS to ``card`` (just selected): its ISO-DEP session; IsoDepError if it has none.

        ``max_wait_s`` caps every wait for an answer (the door's 50 ms by default,
        so a card cannot hold the door; the station allows more).
        """
        link = IsoDep(link_max_frame=FIFO_BYTES, max_wait_s=max_wait_s)
        self._drive(link.rats())
        return IsoDepSession(self, card, link)

    def poll(self) -> Activated | NotActivated:
        """One activation attempt (WUPA ... HLTA); raises ReaderError if the chip fails."""
        return self._drive(activate(wake=True))

    def _drive(self, flow: Flow[_T]) -> _T:
        """Run one sans-I/O exchange over the chip; its IsoDepError passes through."""
        frame = next(flow)
        try:
            while True:
                frame = flow.send(self._transceive(frame))
        except StopIteration as done:
            result: _T = done.value
            return result

    def probe(self) -> str:
        if self._bus is None:
            self._open()
            self._init_chip()
        version = self._read(VERSION_REG)
        if version in DEAD_VERSIONS:
            raise ReaderError(
                f"reader {self.name}: no MFRC522 answers on {self.where} "
                f"({describe_version(version)}): check the wiring, 3.3 V and dtparam=spi=on"
            )
        return f"reader {self.name}: MFRC522 on {self.where}, {describe_version(version)}"

    def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        try:
            bus.close()
        except _FOREIGN as exc:
            logger.warning("reader %s: closing %s: %s", self.name, self.where, exc)

    # -- start, fault and recovery ---------------------------------------------

    def _start(self, emit: Emit) -> None:
        if self.health.faulted:
            return  # a fault already reported; the loop keeps trying to recover
        now = self._monotonic()
        try:
            if self._bus is None:
                self._open()
            self._init_chip()
            version = self._read(VERSION_REG)
        except ReaderError as exc:
            self._report_fault(emit, self.health.fail(str(exc), now))
            return
        logger.info("reader %s: MFRC522 on %s, %s", self.name, self.where,
                    describe_version(version))  # fmt: skip
        fault = self.health.on_version(version, now)
        if fault is not None:
            self._report_fault(emit, fault)

    def _report_fault(self, emit: Emit, detail: str) -> None:
        logger.warning("reader %s fault: %s", self.name, detail)
        emit(ReaderStatus(self.name, "fault", detail))

    def _recover(self, now: float) -> str | None:
        """Soft reset and re-initialise; pulse the reset pin if the chip is silent."""
        try:
            if self._bus is None:
                self._open()
            self._init_chip()
            version = self._read(VERSION_REG)
            if version in DEAD_VERSIONS and self.reset_pin is not None:
                logger.warning("reader %s: pulsing reset pin GPIO%d", self.name, self.reset_pin)
                self._pulse_reset()
                self._init_chip()
                version = self._read(VERSION_REG)
            if version in DEAD_VERSIONS or self._read(VERSION_REG) != version:
                return None
        except ReaderError as exc:
            logger.debug("reader %s: recovery failed: %s", self.name, exc)
            return None
        return self.health.on_recovered(version, now)

    # -- the chip -----------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._bus = self._open_bus(self.spi_bus, self.spi_device, self.reset_pin)
        except ReaderError as exc:
            raise ReaderError(f"reader {self.name}: {exc}") from exc
        except _FOREIGN as exc:
            raise ReaderError(f"reader {self.name}: cannot open {self.where}: {exc}") from exc

    def _init_chip(self) -> None:
        self._write(COMMAND_REG, CMD_SOFT_RESET)
        for _ in range(4):
            self._sleep(OSCILLATOR_START_S / 4)
            if not self._read(COMMAND_REG) & POWER_DOWN:
                break
        self._write(T_MODE_REG, 0x80 | (TIMER_PRESCALER >> 8))  # TAuto
        self._write(T_PRESCALER_REG, TIMER_PRESCALER & 0xFF)
        self._write(T_RELOAD_H_REG, TIMER_RELOAD >> 8)
        self._write(T_RELOAD_L_REG, TIMER_RELOAD & 0xFF)
        self._reload = TIMER_RELOAD
        self._write(TX_ASK_REG, 0x40)  # 100 % ASK, as type A needs
        self._write(MODE_REG, 0x3D)  # CRC preset 0x6363 (CRC_A)
        self._write(COLL_REG, 0x00)  # ValuesAfterColl=0: bits after a collision read 0
        control = self._read(TX_CONTROL_REG)
        if control & 0x03 != 0x03:
            self._write(TX_CONTROL_REG, control | 0x03)  # antenna on

    def _pulse_reset(self) -> None:
        assert self.reset_pin is not None and self._bus is not None
        try:
            self._bus.set_reset(0)
            self._sleep(RESET_PULSE_S)
            self._bus.set_reset(1)
        except _FOREIGN as exc:
            raise ReaderError(f"reader {self.name}: reset pin GPIO{self.reset_pin}: {exc}") from exc
        self._sleep(OSCILLATOR_START_S)

    def _reset_field(self) -> None:
        """Antenna off and on again: every card in the field restarts from IDLE."""
        control = self._read(TX_CONTROL_REG)
        self._write(TX_CONTROL_REG, control & ~0x03)
        self._sleep(FIELD_OFF_S)
        self._write(TX_CONTROL_REG, control | 0x03)
        self._sleep(FIELD_ON_S)

    def _set_timer(self, timeout_s: float | None) -> None:
        """The chip's timer ends a wait for an answer: 1 ms, or an ISO-DEP frame's FWT."""
        reload = TIMER_RELOAD
        if timeout_s is not None:
            reload = min(max(int(timeout_s / TIMER_TICK_S + 0.999), 1) - 1, TIMER_RELOAD_MAX)
        if reload != self._reload:
            self._write(T_RELOAD_H_REG, reload >> 8)
            self._write(T_RELOAD_L_REG, reload & 0xFF)
            self._reload = reload

    def _transceive(self, frame: Frame) -> Reply | None:
        """Send ``frame``; the reply, or None when the timer expired first."""
        if len(frame.data) > FIFO_BYTES:
            raise AssertionError(f"a {len(frame.data)}-byte frame does not fit the FIFO")
        write, read = self._write, self._read
        if frame.guard_s:
            self._sleep(frame.guard_s)
        self._set_timer(frame.timeout_s)
        write(COMMAND_REG, CMD_IDLE)
        write(COM_IRQ_REG, 0x7F)  # clear every interrupt flag
        write(FIFO_LEVEL_REG, 0x80)  # flush the FIFO (and BufferOvfl)
        self._write_many(FIFO_DATA_REG, frame.data)
        framing = (frame.rx_align << 4) | frame.tx_last_bits
        write(BIT_FRAMING_REG, framing)
        write(COMMAND_REG, CMD_TRANSCEIVE)
        write(BIT_FRAMING_REG, framing | START_SEND)
        sent_s = (len(frame.data) * 9 + 2) * BIT_S
        if frame.timeout_s is None:
            # By the time the frame is out and the timer has run, the chip has
            # either an answer or TimerIRq: usually one read settles it.
            self._sleep(sent_s + TIMER_S + 0.0001)
            reads = IRQ_READS
        else:
            # An ISO-DEP answer usually starts within a millisecond and is about
            # as long as the flow expects (up to a full FIFO, 5.5 ms on air): wait
            # for that once, then look often, up to the timeout.
            expect = min(max(frame.expect_bytes, 3), FIFO_BYTES)
            self._sleep(sent_s + FDT_S + (expect * 9 + 2) * BIT_S)
            longest_s = (FIFO_BYTES * 9 + 2) * BIT_S
            reads = IRQ_READS + int((frame.timeout_s + longest_s) / IRQ_RETRY_S)
        for _ in range(reads):
            irq = read(COM_IRQ_REG)
            if irq & IRQ_DONE:
                break
            self._sleep(IRQ_RETRY_S)
        else:
            raise ReaderError(f"reader {self.name}: the chip's timer never fired (ComIrqReg 0x00)")
        error = read(ERROR_REG) if irq & (IRQ_RX | IRQ_ERR) else 0
        if error & ERR_CHIP or (error & ERR_BUFFER_OVFL and not irq & IRQ_RX):
            raise ReaderError(f"reader {self.name}: chip error (ErrorReg 0x{error:02X})")
        if not irq & IRQ_RX:
            return None
        level = read(FIFO_LEVEL_REG) & 0x7F
        last_bits = read(CONTROL_REG) & 0x07
        collision_at = None
        if error & ERR_COLL:
            coll = read(COLL_REG)
            if not coll & COLL_POS_NOT_VALID:
                collision_at = (coll & 0x1F) or 32
        data = self._read_many(FIFO_DATA_REG, min(level, FIFO_BYTES))
        return Reply(
            data=data,
            last_bits=last_bits,
            collision=bool(error & ERR_COLL),
            collision_at=collision_at,
            parity_error=bool(error & (ERR_PARITY | ERR_PROTOCOL)),  # ProtocolErr: bad SOF
            crc_error=bool(error & ERR_CRC),
            overflow=bool(error & ERR_BUFFER_OVFL),
        )

    def _read(self, register: int) -> int:
        if self._bus is None:
            raise ReaderError(f"reader {self.name}: {self.where} is not open")
        try:
            return int(self._bus.read(register)) & 0xFF
        except _FOREIGN as exc:
            raise ReaderError(
                f"reader {self.name}: reading register 0x{register:02X} on {self.where}: {exc}"
            ) from exc

    def _read_many(self, register: int, count: int) -> bytes:
        if self._bus is None:
            raise ReaderError(f"reader {self.name}: {self.where} is not open")
        if count == 0:
            return b""
        try:
            return bytes(self._bus.read_many(register, count))
        except _FOREIGN as exc:
            raise ReaderError(
                f"reader {self.name}: reading register 0x{register:02X} on {self.where}: {exc}"
            ) from exc

    def _write_many(self, register: int, values: bytes) -> None:
        if self._bus is None:
            raise ReaderError(f"reader {self.name}: {self.where} is not open")
        try:
            self._bus.write_many(register, values)
        except _FOREIGN as exc:
            raise ReaderError(
                f"reader {self.name}: writing register 0x{register:02X} on {self.where}: {exc}"
            ) from exc

    def _write(self, register: int, value: int) -> None:
        if self._bus is None:
            raise ReaderError(f"reader {self.name}: {self.where} is not open")
        try:
            self._bus.write(register, value)
        except _FOREIGN as exc:
            raise ReaderError(
                f"reader {self.name}: writing register 0x{register:02X} on {self.where}: {exc}"
            ) from exc

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        if self._injected_sleep is not None:
            self._injected_sleep(seconds)
        else:
            stop.wait(seconds)


class IsoDepSession:
    """One card's ISO-DEP session on this chip, from its ATS to DESELECT.

    Made by :meth:`Mfrc522Reader.open_iso_dep`. The block protocol (chaining both
    ways within the FIFO, R(ACK)/R(NAK), S(WTX)) is :class:`~agent.readers.isodep.IsoDep`'s;
    this only moves its frames through the reader's chip. The door reads the
    NDEF file over it, the station personalises a card over it.
    """

    def __init__(self, reader: Mfrc522Reader, card: Activated, link: IsoDep) -> None:
        self.reader = reader
        self.card = card
        self.link = link

    @property
    def uid(self) -> bytes:
        return self.card.uid

    def run(self, flow: Flow[_T]) -> _T:
        """Run one sans-I/O exchange of :attr:`link`; IsoDepError and ReaderError pass."""
        return self.reader._drive(flow)

    def apdu(self, command: bytes, *, expect: int = 2) -> bytes:
        """One command APDU; the whole response APDU (data, SW1, SW2)."""
        return self.run(self.link.exchange(command, expect=expect))

    def deselect(self) -> bool:
        """S(DESELECT): the card goes to HALT. Unconfirmed, an RF reset takes it out of
        the protocol state instead (for the next WUPA); True when the card confirmed."""
        if self.run(self.link.deselect()):
            return True
        self.reader._reset_field()
        return False
