"""The real MFRC522 register bus: the ``mfrc522`` package's wiring of spidev and RPi.GPIO.

The only module that imports spidev, RPi.GPIO or the ``mfrc522`` package,
and only inside :func:`open_spi_bus`. The package gives us the bus: its
``MFRC522`` class opens ``/dev/spidevB.D`` and sets up the reset GPIO, and
``Read_MFRC522``/``Write_MFRC522`` are the only methods we call on it (the
driver, :mod:`agent.readers.mfrc522`, does the rest), and its ``spi`` (a
``spidev.SpiDev``) for the FIFO's multi-byte transfers. Errors of those
libraries pass through unchanged: the driver translates them, naming the
register.
"""

from __future__ import annotations

from typing import Any

from agent.exceptions import ReaderError

__all__ = ["SPI_SPEED_HZ", "PackageBus", "open_spi_bus"]

SPI_SPEED_HZ = 1_000_000


class PackageBus:
    """A :class:`~agent.readers.mfrc522.RegisterBus` over an ``mfrc522.MFRC522`` device."""

    def __init__(self, device: Any, gpio: Any, reset_pin: int | None) -> None:
        self.device = device
        self.gpio = gpio
        self.reset_pin = reset_pin

    def read(self, register: int) -> int:
        return int(self.device.Read_MFRC522(register))

    def write(self, register: int, value: int) -> None:
        self.device.Write_MFRC522(register, value)

    def read_many(self, register: int, count: int) -> bytes:
        address = ((register << 1) & 0x7E) | 0x80
        return bytes(self.device.spi.xfer2([address] * count + [0])[1:])

    def write_many(self, register: int, values: bytes) -> None:
        if values:
            self.device.spi.xfer2([(register << 1) & 0x7E, *values])

    def set_reset(self, level: int) -> None:
        if self.reset_pin is not None:
            self.gpio.output(self.reset_pin, level)

    def close(self) -> None:
        self.device.spi.close()
        if self.reset_pin is not None:
            self.gpio.cleanup(self.reset_pin)  # only our pin, not the whole header


def open_spi_bus(spi_bus: int, spi_device: int, reset_pin: int | None) -> PackageBus:
    """Open ``/dev/spidev{spi_bus}.{spi_device}`` (and the reset pin, BCM numbering).

    Raises :class:`ReaderError` when the libraries are missing or GPIO numbering
    is already BOARD; spidev and GPIO errors pass through for the driver.
    """
    try:
        import RPi.GPIO as GPIO
        from mfrc522 import MFRC522
    except ImportError as exc:
        raise ReaderError(
            f"cannot import {exc.name or exc}: install the 'pi' extra and mfrc522 with --no-deps"
        ) from exc
    mode = GPIO.getmode()
    if mode not in (None, GPIO.BCM):
        raise ReaderError("GPIO numbering is already BOARD; Qatysu uses BCM numbers (reset_pin)")
    if reset_pin is None:
        device = MFRC522.__new__(MFRC522)  # the constructor insists on a reset pin
        import spidev

        device.spi = spidev.SpiDev()
        device.spi.open(spi_bus, spi_device)
        device.spi.max_speed_hz = SPI_SPEED_HZ
    else:
        # BCM numbering: the package's default would be BOARD pin 22.
        device = MFRC522(
            bus=spi_bus, device=spi_device, spd=SPI_SPEED_HZ, pin_mode=GPIO.BCM, pin_rst=reset_pin
        )
    return PackageBus(device, GPIO, reset_pin)
