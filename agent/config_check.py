"""What ``qatysu config validate`` checks beyond types, without I/O.

:func:`load_config` already refuses unknown keys and wrong types. Here: pins
outside the header's BCM range, two devices on one pin, names used twice,
drivers without the settings they need, values that make no sense, serial
ports that do not exist and a portal URL that does not answer (the last two
through injected probes, as warnings: the device may be wired later and the
portal may be down for an hour).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from agent.config import AgentConfig

__all__ = ["BCM_PINS", "Finding", "check_config", "pins_in_use", "serial_port_is_path"]

# The 40-pin header exposes BCM GPIO 0..27 on every Pi since the B+.
BCM_PINS = range(28)
# SPI0 uses these for the bus itself; a door or LED on them breaks the reader.
_SPI0 = {7: "SPI0 CE1", 8: "SPI0 CE0", 9: "SPI0 MISO", 10: "SPI0 MOSI", 11: "SPI0 SCLK"}
_UART = {14: "UART TXD", 15: "UART RXD"}
DRIVERS = ("mfrc522", "rdm6300", "serial-line", "simulated")

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    level: Level
    key: str  # dotted key at fault, e.g. doors.0.pin
    message: str

    def line(self, where: str) -> str:
        return f"{self.level}: {where}: {self.key}: {self.message}"


def serial_port_is_path(port: str) -> bool:
    """A device path (checked on disk) rather than a pyserial URL such as ``loop://``."""
    return "://" not in port


def pins_in_use(config: AgentConfig) -> list[tuple[str, int]]:
    """Every configured BCM pin with the key that claims it."""
    pins: list[tuple[str, int]] = []
    for i, reader in enumerate(config.readers):
        if reader.driver == "mfrc522" and reader.reset_pin is not None:
            pins.append((f"readers.{i}.reset_pin", reader.reset_pin))
    for section, sensors in (("doors", config.doors), ("tamper", config.tamper)):
        for i, sensor in enumerate(sensors):
            pins.append((f"{section}.{i}.pin", sensor.pin))
    for name in ("green_pin", "red_pin", "buzzer_pin"):
        value = getattr(config.feedback, name)
        if value is not None:
            pins.append((f"feedback.{name}", value))
    return pins


def _bus_pins(config: AgentConfig) -> dict[int, str]:
    busy: dict[int, str] = {}
    if any(r.driver == "mfrc522" and r.spi_bus == 0 for r in config.readers):
        busy.update(_SPI0)
    if any(
        r.driver in ("rdm6300", "serial-line")
        and r.port.split("/")[-1] in ("serial0", "ttyAMA0", "ttyS0")
        for r in config.readers
    ):
        busy.update(_UART)
    return busy


def check_config(
    config: AgentConfig,
    *,
    port_exists: Callable[[str], bool] | None = None,
    url_problem: Callable[[str], str | None] | None = None,
) -> list[Finding]:
    """Errors and warnings for ``config``; probes are skipped when not given."""
    found: list[Finding] = []

    def error(key: str, message: str) -> None:
        found.append(Finding("error", key, message))

    def warn(key: str, message: str) -> None:
        found.append(Finding("warning", key, message))

    # Pins: range, bus pins, duplicates.
    busy = _bus_pins(config)
    owners: dict[int, str] = {}
    for key, pin in pins_in_use(config):
        if pin not in BCM_PINS:
            error(key, f"GPIO{pin} is not a header pin (BCM 0..27)")
            continue
        if pin in busy:
            error(key, f"GPIO{pin} is the reader's {busy[pin]} line")
        if pin in owners:
            error(key, f"GPIO{pin} is already used by {owners[pin]}")
        else:
            owners[pin] = key

    # Names must be unique: records and the portal tell devices apart by name.
    named: list[tuple[str, list[str]]] = [
        ("readers", [r.name for r in config.readers]),
        ("doors", [d.name for d in config.doors]),
        ("tamper", [t.name for t in config.tamper]),
    ]
    for section, names in named:
        seen: dict[str, int] = {}
        for i, entry_name in enumerate(names):
            if not entry_name.strip():
                error(f"{section}.{i}.name", "must not be empty")
            elif entry_name in seen:
                error(f"{section}.{i}.name", f"{entry_name!r} is also {section}.{seen[entry_name]}")
            else:
                seen[entry_name] = i

    if not config.readers:
        warn("readers", "no [[readers]] entry: the device will record doors only")
    ports: dict[str, int] = {}
    for i, reader in enumerate(config.readers):
        key = f"readers.{i}"
        if reader.driver not in DRIVERS:
            error(
                f"{key}.driver", f"unknown driver {reader.driver!r} (known: {', '.join(DRIVERS)})"
            )
            continue
        if reader.poll_ms <= 0:
            error(f"{key}.poll_ms", "must be above 0")
        if reader.driver == "mfrc522":
            if reader.spi_bus not in (0, 1) or reader.spi_device not in (0, 1, 2):
                error(f"{key}.spi_bus", f"no SPI{reader.spi_bus}.{reader.spi_device} on a Pi")
        elif reader.driver in ("rdm6300", "serial-line"):
            if not reader.port:
                error(f"{key}.port", f"driver {reader.driver} needs a serial port")
            else:
                if reader.port in ports:
                    error(f"{key}.port", f"{reader.port} is also readers.{ports[reader.port]}.port")
                ports[reader.port] = i
                if (
                    port_exists is not None
                    and serial_port_is_path(reader.port)
                    and not port_exists(reader.port)
                ):
                    warn(f"{key}.port", f"{reader.port} does not exist (reader unplugged?)")
            if reader.baudrate <= 0:
                error(f"{key}.baudrate", "must be above 0")
        elif reader.driver == "simulated":
            if not reader.socket:
                error(f"{key}.socket", "driver simulated needs a socket path")
            warn(f"{key}.driver", "simulated reader: the portal flags every read simulated_reader")

    for section, sensors in (("doors", config.doors), ("tamper", config.tamper)):
        for i, sensor in enumerate(sensors):
            key = f"{section}.{i}"
            if sensor.pull not in ("up", "down", "none"):
                error(f"{key}.pull", f"must be up, down or none, not {sensor.pull!r}")
            if sensor.open_when not in ("high", "low"):
                error(f"{key}.open_when", f"must be high or low, not {sensor.open_when!r}")
            if sensor.debounce_ms < 0:
                error(f"{key}.debounce_ms", "must not be negative")
            if sensor.poll_ms <= 0:
                error(f"{key}.poll_ms", "must be above 0")

    if config.heartbeat.interval_s <= 0:
        error("heartbeat.interval_s", "must be above 0")
    if config.buffer.quota_mb <= 0:
        error("buffer.quota_mb", "must be above 0")
    if not 0 < config.buffer.quota_warn_percent <= 100:
        error("buffer.quota_warn_percent", "must be 1..100")
    if config.portal.batch_records <= 0 or config.portal.batch_records > 5000:
        error("portal.batch_records", "must be 1..5000 (the portal refuses larger batches)")

    url = config.portal.url
    if not url:
        warn("portal.url", "not set: run 'qatysu enroll --portal URL --token TOKEN'")
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            error("portal.url", f"{url!r} is not an http(s) URL")
        else:
            if parts.scheme == "http":
                warn("portal.url", "plain http: records and receipts travel unencrypted")
            problem = url_problem(url) if url_problem is not None else None
            if problem:
                warn("portal.url", f"{url} does not answer: {problem}")
    if config.portal.device_id and not config.portal.public_key:
        error("portal.public_key", "device_id is set but no portal key is pinned: enroll again")
    return found
