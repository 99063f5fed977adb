"""What ``qatysu config validate`` checks beyond types, without I/O.

:func:`load_config` already refuses unknown keys and wrong types. Here: pins
outside the header's BCM range, two devices on one pin or on a reader's bus,
names used twice, a resource two readers claim, what each driver finds wrong
with its own entry (:meth:`agent.readers.base.Reader.check`), values that
make no sense, device nodes of pluggable readers that do not exist and a
portal URL that does not answer (the last two through injected probes, as
warnings: the device may be wired later and the portal may be down for an
hour). What a reader needs comes from its driver's ``requirements``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from agent.config.schema import AgentConfig
from agent.exceptions import QatysuError
from agent.readers import registry
from agent.readers.base import Requirements

__all__ = ["BCM_PINS", "Finding", "check_config", "pins_in_use"]

# The 40-pin header exposes BCM GPIO 0..27 on every Pi since the B+.
BCM_PINS = range(28)

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    level: Level
    key: str  # dotted key at fault, e.g. doors.0.pin
    message: str

    def line(self, where: str) -> str:
        return f"{self.level}: {where}: {self.key}: {self.message}"


def _requirements(config: AgentConfig) -> list[Requirements | None]:
    """Each reader's requirements, None for one whose driver is unknown."""
    needs: list[Requirements | None] = []
    for reader in config.readers:
        try:
            needs.append(registry.requirements(reader))
        except QatysuError:
            needs.append(None)
    return needs


def pins_in_use(config: AgentConfig) -> list[tuple[str, int]]:
    """Every configured BCM pin with the key that claims it."""
    pins: list[tuple[str, int]] = []
    for i, needs in enumerate(_requirements(config)):
        for key, pin in needs.pins if needs is not None else ():
            pins.append((f"readers.{i}.{key}", pin))
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
    for needs in _requirements(config):
        if needs is not None:
            busy.update(needs.bus_pins)
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
    claimed: dict[str, str] = {}  # resource -> the key that claimed it first
    for i, (reader, needs) in enumerate(zip(config.readers, _requirements(config), strict=True)):
        key = f"readers.{i}"
        if needs is None:
            known = ", ".join(registry.DRIVERS)
            error(f"{key}.driver", f"unknown driver {reader.driver!r} (known: {known})")
            continue
        for own in registry.check(reader):
            found.append(Finding(own.level, f"{key}.{own.key}", own.message))
        for field, resource in needs.exclusive:
            if resource in claimed:
                error(f"{key}.{field}", f"{resource} is also {claimed[resource]}")
            else:
                claimed[resource] = f"{key}.{field}"
        for device in needs.devices:
            if device.hotplug and port_exists is not None and not port_exists(device.path):
                warn(f"{key}.{device.key}", f"{device.path} does not exist (reader unplugged?)")

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
