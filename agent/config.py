"""The agent's configuration as validated value objects (SPEC section 4).

This module holds the shapes and their defaults. Loading TOML, validating
(with one-line errors naming file and key, and the nearest valid key for a
typo), ``config set`` and writing commented files belong here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AgentConfig",
    "BufferConfig",
    "DeviceConfig",
    "FeedbackConfig",
    "HeartbeatConfig",
    "PortalConfig",
    "ReaderConfig",
    "SensorConfig",
]


@dataclass(frozen=True)
class DeviceConfig:
    state_dir: Path = Path("/var/lib/qatysu")
    control_socket: Path = Path("/run/qatysu/control.sock")


@dataclass(frozen=True)
class PortalConfig:
    url: str = ""
    device_id: str = ""  # written by `qatysu enroll`
    center_id: str = ""
    public_key: str = ""  # the pinned portal key, base64
    ca_file: str = ""  # extra CA bundle for a city PKI; TLS is always verified
    batch_records: int = 500
    batch_bytes: int = 1_000_000
    upload_delay_ms: int = 200  # gather taps this long before an upload
    upload_interval_s: float = 30.0  # timer upload even without new records
    timeout_s: float = 10.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0


@dataclass(frozen=True)
class ReaderConfig:
    """One ``[[readers]]`` entry; each driver reads only the fields it needs."""

    name: str
    driver: str  # mfrc522 | rdm6300 | serial-line | simulated
    # mfrc522
    spi_bus: int = 0
    spi_device: int = 0
    reset_pin: int | None = 25  # BCM
    poll_ms: int = 100
    # a card must be absent this many polls before it counts again
    absent_polls: int = 3
    # a card read again within this window after leaving still counts once
    repeat_window_ms: int = 2000
    # rdm6300, serial-line: a device path or a pyserial URL (loop://, spy://...)
    port: str = ""
    baudrate: int = 9600
    # serial-line: a regular expression whose first group is the UID in hex
    pattern: str = r"([0-9A-Fa-f]{8,20})"
    # simulated: a Unix socket path that accepts "UID\n" lines
    socket: str = ""


@dataclass(frozen=True)
class SensorConfig:
    """One ``[[doors]]`` or ``[[tamper]]`` entry."""

    name: str
    pin: int  # BCM
    pull: str = "up"  # up | down | none
    open_when: str = "high"  # high | low
    debounce_ms: int = 50
    poll_ms: int = 500  # periodic read that catches a missed edge
    held_open_s: int = 300  # log a door held open longer than this


@dataclass(frozen=True)
class FeedbackConfig:
    green_pin: int | None = None
    red_pin: int | None = None
    buzzer_pin: int | None = None
    backlog_warn: int = 5000  # pending records that count as "offline with a backlog"


@dataclass(frozen=True)
class HeartbeatConfig:
    interval_s: int = 300


@dataclass(frozen=True)
class BufferConfig:
    segment_records: int = 256
    segment_age_s: int = 3600
    quota_mb: int = 512  # warn (alarm record, red) before the disk is full
    retain_acknowledged: bool = False  # default: delete once a receipt covers them


@dataclass(frozen=True)
class AgentConfig:
    path: Path | None = None  # the file it was loaded from, for messages
    device: DeviceConfig = field(default_factory=DeviceConfig)
    portal: PortalConfig = field(default_factory=PortalConfig)
    readers: tuple[ReaderConfig, ...] = ()
    doors: tuple[SensorConfig, ...] = ()
    tamper: tuple[SensorConfig, ...] = ()
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)

    @property
    def key_path(self) -> Path:
        return self.device.state_dir / "device.key"
