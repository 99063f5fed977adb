"""MFRC522 (RC522 boards) over SPI: a thin shell around the ``mfrc522`` package.

The package gives us the bus: its ``MFRC522`` class opens ``/dev/spidevB.D``
and sets up the reset GPIO, and ``Read_MFRC522``/``Write_MFRC522`` are the
only methods we call on it. Its own exchange (``MFRC522_ToCard``) ignores the
chip's timer and spins through ~2,000 register reads per empty poll, and its
anticollision stops at cascade level 1, so both are replaced here:

* :meth:`Mfrc522Reader._transceive` programs the chip's timer once (TAuto,
  1 ms after the end of transmission), sleeps for the frame plus that timeout
  and reads ComIrqReg until RxIRq, IdleIRq, ErrIRq or TimerIRq, at most
  ``IRQ_READS`` times: an idle poll is 8 SPI transfers, REQA included.
* The protocol (anticollision, select, cascade levels, BCC, HLTA) is the
  sans-I/O :func:`agent.readers.iso14443.activate`; one read per presentation
  is :class:`~agent.readers.card_presence.PresenceTracker`; when the chip is at
  fault is :class:`~agent.readers.mfrc522_health.ChipHealth`.

Every spidev/RPi.GPIO error is translated into :class:`ReaderError` at the
register access below; ``run`` never raises for hardware trouble.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.clock import Clock
from agent.config import ReaderConfig
from agent.events import BadgeRead, ReaderStatus
from agent.exceptions import ReaderError
from agent.readers.base import Emit, Reader
from agent.readers.card_presence import PresenceTracker
from agent.readers.iso14443 import Activated, Frame, NotActivated, Reply, activate
from agent.readers.mfrc522_health import DEAD_VERSIONS, ChipHealth, describe_version

__all__ = ["Mfrc522Reader"]

logger = logging.getLogger(__name__)

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
ERR_CHIP = 0x80 | 0x40 | 0x10  # WrErr, TempErr, BufferOvfl: the chip, not the radio
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
SPI_SPEED_HZ = 1_000_000
RESET_PULSE_S = 0.001
OSCILLATOR_START_S = 0.05

_FOREIGN = (OSError, RuntimeError, ValueError, OverflowError)


class Mfrc522Reader(Reader):
    driver = "mfrc522"

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
        self._device: Any = None  # mfrc522.MFRC522
        self._gpio: Any = None  # RPi.GPIO

    @classmethod
    def from_config(
        cls,
        cfg: ReaderConfig,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> Mfrc522Reader:
        return cls(
            cfg.name,
            spi_bus=cfg.spi_bus,
            spi_device=cfg.spi_device,
            reset_pin=cfg.reset_pin,
            poll_ms=cfg.poll_ms,
            absent_polls=cfg.absent_polls,
            repeat_window_ms=cfg.repeat_window_ms,
            clock=clock,
            sleep=sleep,
        )

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
            result = self.poll()
        except ReaderError as exc:
            fault = health.on_exchange(False, now, str(exc))
            if fault is not None:
                self._report_fault(emit, fault)
            return
        health.on_exchange(True, now)
        if isinstance(result, Activated):
            if self.presence.observe(result.uid_hex, now):
                logger.info("reader %s: card %s", self.name, result.uid_hex)
                emit(BadgeRead(self.name, self.driver, result.uid_hex, len(result.uid)))
        elif not result.card_answered:
            self.presence.observe(None, now)
        else:
            # A card answered but could not be resolved: no evidence either way.
            logger.debug("reader %s: %s", self.name, result.reason)

    def poll(self) -> Activated | NotActivated:
        """One activation attempt (WUPA ... HLTA); raises ReaderError if the chip fails."""
        flow = activate(wake=True)
        frame = next(flow)
        try:
            while True:
                frame = flow.send(self._transceive(frame))
        except StopIteration as done:
            result: Activated | NotActivated = done.value
            return result

    def probe(self) -> str:
        if self._device is None:
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
        device, self._device = self._device, None
        if device is None:
            return
        try:
            device.spi.close()
            if self.reset_pin is not None and self._gpio is not None:
                self._gpio.cleanup(self.reset_pin)  # only our pin, not the whole header
        except _FOREIGN as exc:
            logger.warning("reader %s: closing %s: %s", self.name, self.where, exc)

    # -- start, fault and recovery ---------------------------------------------

    def _start(self, emit: Emit) -> None:
        if self.health.faulted:
            return  # a fault already reported; the loop keeps trying to recover
        now = self._monotonic()
        try:
            if self._device is None:
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
            if self._device is None:
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
            import RPi.GPIO as GPIO
            from mfrc522 import MFRC522
        except ImportError as exc:
            raise ReaderError(
                f"reader {self.name}: cannot import {exc.name or exc}: install the 'pi' "
                "extra and mfrc522 with --no-deps"
            ) from exc
        try:
            mode = GPIO.getmode()
            if mode not in (None, GPIO.BCM):
                raise ReaderError(
                    f"reader {self.name}: GPIO numbering is already BOARD; "
                    "Qatysu uses BCM numbers (reset_pin)"
                )
            if self.reset_pin is None:
                device = MFRC522.__new__(MFRC522)  # the constructor insists on a reset pin
                import spidev

                device.spi = spidev.SpiDev()
                device.spi.open(self.spi_bus, self.spi_device)
                device.spi.max_speed_hz = SPI_SPEED_HZ
            else:
                # BCM numbering: the package's default would be BOARD pin 22.
                device = MFRC522(
                    bus=self.spi_bus,
                    device=self.spi_device,
                    spd=SPI_SPEED_HZ,
                    pin_mode=GPIO.BCM,
                    pin_rst=self.reset_pin,
                )
        except _FOREIGN as exc:
            raise ReaderError(f"reader {self.name}: cannot open {self.where}: {exc}") from exc
        self._gpio = GPIO
        self._device = device

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
        self._write(TX_ASK_REG, 0x40)  # 100 % ASK, as type A needs
        self._write(MODE_REG, 0x3D)  # CRC preset 0x6363 (CRC_A)
        self._write(COLL_REG, 0x00)  # ValuesAfterColl=0: bits after a collision read 0
        control = self._read(TX_CONTROL_REG)
        if control & 0x03 != 0x03:
            self._write(TX_CONTROL_REG, control | 0x03)  # antenna on

    def _pulse_reset(self) -> None:
        assert self.reset_pin is not None
        try:
            self._gpio.output(self.reset_pin, 0)
            self._sleep(RESET_PULSE_S)
            self._gpio.output(self.reset_pin, 1)
        except _FOREIGN as exc:
            raise ReaderError(f"reader {self.name}: reset pin GPIO{self.reset_pin}: {exc}") from exc
        self._sleep(OSCILLATOR_START_S)

    def _transceive(self, frame: Frame) -> Reply | None:
        """Send ``frame``; the reply, or None when the timer expired first."""
        write, read = self._write, self._read
        write(COMMAND_REG, CMD_IDLE)
        write(COM_IRQ_REG, 0x7F)  # clear every interrupt flag
        write(FIFO_LEVEL_REG, 0x80)  # flush the FIFO
        for byte in frame.data:
            write(FIFO_DATA_REG, byte)
        framing = (frame.rx_align << 4) | frame.tx_last_bits
        write(BIT_FRAMING_REG, framing)
        write(COMMAND_REG, CMD_TRANSCEIVE)
        write(BIT_FRAMING_REG, framing | START_SEND)
        # By the time the frame is out and the timer has run, the chip has
        # either an answer or TimerIRq: usually one read settles it.
        self._sleep((len(frame.data) * 9 + 2) * BIT_S + TIMER_S + 0.0001)
        for _ in range(IRQ_READS):
            irq = read(COM_IRQ_REG)
            if irq & IRQ_DONE:
                break
            self._sleep(IRQ_RETRY_S)
        else:
            raise ReaderError(f"reader {self.name}: the chip's timer never fired (ComIrqReg 0x00)")
        error = read(ERROR_REG) if irq & (IRQ_RX | IRQ_ERR) else 0
        if error & ERR_CHIP:
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
        data = bytes(read(FIFO_DATA_REG) for _ in range(min(level, 64)))
        return Reply(
            data=data,
            last_bits=last_bits,
            collision=bool(error & ERR_COLL),
            collision_at=collision_at,
            parity_error=bool(error & (ERR_PARITY | ERR_PROTOCOL)),  # ProtocolErr: bad SOF
            crc_error=bool(error & ERR_CRC),
        )

    def _read(self, register: int) -> int:
        if self._device is None:
            raise ReaderError(f"reader {self.name}: {self.where} is not open")
        try:
            return int(self._device.Read_MFRC522(register)) & 0xFF
        except _FOREIGN as exc:
            raise ReaderError(
                f"reader {self.name}: reading register 0x{register:02X} on {self.where}: {exc}"
            ) from exc

    def _write(self, register: int, value: int) -> None:
        if self._device is None:
            raise ReaderError(f"reader {self.name}: {self.where} is not open")
        try:
            self._device.Write_MFRC522(register, value)
        except _FOREIGN as exc:
            raise ReaderError(
                f"reader {self.name}: writing register 0x{register:02X} on {self.where}: {exc}"
            ) from exc

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        if self._injected_sleep is not None:
            self._injected_sleep(seconds)
        else:
            stop.wait(seconds)
