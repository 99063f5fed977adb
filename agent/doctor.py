"""The checks behind ``qatysu doctor``, against a root directory and injected facts.

Everything read from the system comes from under ``root`` (``/`` on a Pi; a
mounted SD card, or a temporary folder in the tests): the boot config,
``/dev`` nodes, ``/etc/passwd`` and ``/etc/group``. What a root folder cannot
say (the kernel clock, free disk, the portal's answer, the readers' answers,
the daemon's status) arrives as :class:`Facts` gathered by the command.
Each check returns a :class:`Check` with pass, warn or fail and what to do.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from agent.buffer.status import BufferStatus
from agent.config import AgentConfig
from agent.exceptions import KeyFileError, ProtocolError, QatysuError
from agent.identity import load_key_file
from agent.protocol import public_key_from_b64
from agent.readers import registry
from agent.readers.base import Device, ReaderConfig, Requirements

__all__ = [
    "BOOT_CONFIGS",
    "CMDLINES",
    "Check",
    "Facts",
    "Users",
    "needed_boot_lines",
    "needed_devices",
    "run_checks",
]

Status = Literal["pass", "warn", "fail"]
BOOT_CONFIGS = ("boot/firmware/config.txt", "boot/config.txt")
CMDLINES = ("boot/firmware/cmdline.txt", "boot/cmdline.txt")
# The GPIO 14/15 UART under its names: a console= on one of them is a login shell there.
UART_CONSOLES = ("serial0", "ttyAMA0", "ttyS0")
MIN_FREE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Facts:
    """What the command measured outside ``root``; None means "not checked"."""

    clock_synced: bool | None = None
    disk_free_bytes: int | None = None
    buffer: BufferStatus | None = None
    buffer_problem: str = ""
    portal_problem: str | None = None  # "" reachable, text why not, None not checked
    readers: dict[str, tuple[bool, str]] = field(default_factory=dict)  # name -> ok, detail
    daemon: dict[str, Any] | None = None  # the control socket's status answer
    daemon_problem: str = ""
    state_dir_problem: str | None = None  # "" writable, text why not, None not checked


# --- users and groups under root ---------------------------------------------


@dataclass(frozen=True)
class Users:
    """``/etc/passwd`` and ``/etc/group`` under a root, parsed once."""

    uids: dict[str, tuple[int, int]]  # user -> uid, primary gid
    groups: dict[str, tuple[int, frozenset[str]]]  # group -> gid, members

    @classmethod
    def under(cls, root: Path) -> Users:
        uids: dict[str, tuple[int, int]] = {}
        groups: dict[str, tuple[int, frozenset[str]]] = {}
        for line in _lines(root / "etc/passwd"):
            parts = line.split(":")
            if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
                uids[parts[0]] = (int(parts[2]), int(parts[3]))
        for line in _lines(root / "etc/group"):
            parts = line.split(":")
            if len(parts) >= 4 and parts[2].isdigit():
                members = frozenset(m for m in parts[3].split(",") if m)
                groups[parts[0]] = (int(parts[2]), members)
        return cls(uids, groups)

    def gids_of(self, user: str) -> set[int]:
        gids = {gid for gid, members in self.groups.values() if user in members}
        if user in self.uids:
            gids.add(self.uids[user][1])
        return gids

    def in_group(self, user: str, group: str) -> bool:
        if group not in self.groups:
            return False
        gid, members = self.groups[group]
        return user in members or (user in self.uids and self.uids[user][1] == gid)

    def group_name(self, gid: int) -> str:
        for name, (g, _) in self.groups.items():
            if g == gid:
                return name
        return str(gid)


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def _under(root: Path, path: str | Path) -> Path:
    """``path`` (absolute on the device) inside ``root``, following symlinks inside root."""
    current = root / str(path).lstrip("/")
    for _ in range(8):  # /dev/serial0 -> ttyAMA0, /dev/serial/by-id/... -> ../../ttyUSB0
        if not current.is_symlink():
            break
        target = os.readlink(current)
        current = root / target.lstrip("/") if target.startswith("/") else current.parent / target
        current = Path(os.path.normpath(current))
    return current


# --- what the config needs ----------------------------------------------------


def _needs(config: AgentConfig) -> list[tuple[ReaderConfig, Requirements]]:
    """Each reader with what its driver says it needs (an unknown driver needs nothing here)."""
    needs = []
    for reader in config.readers:
        try:
            needs.append((reader, registry.requirements(reader)))
        except QatysuError:
            continue  # 'config validate' names the unknown driver
    return needs


def needed_boot_lines(config: AgentConfig) -> list[tuple[str, tuple[str, ...]]]:
    """(what for, accepted lines): any one of the accepted lines satisfies the need."""
    lines = [line for _, needs in _needs(config) for line in needs.boot_config]
    return [(line.why, line.accepted) for line in dict.fromkeys(lines)]


def _reader_devices(config: AgentConfig) -> list[tuple[Device, str]]:
    return [(d, f"reader {r.name}") for r, needs in _needs(config) for d in needs.devices]


def needed_devices(config: AgentConfig) -> list[tuple[str, str, str]]:
    """(device path, group that grants it, what for)."""
    return [(device.path, device.group, why) for device, why in _reader_devices(config)]


def _uses_gpio(config: AgentConfig) -> bool:
    fb = config.feedback
    return bool(
        config.doors
        or config.tamper
        or any(needs.pins for _, needs in _needs(config))
        or fb.green_pin is not None
        or fb.red_pin is not None
        or fb.buzzer_pin is not None
    )


def needed_groups(config: AgentConfig) -> list[str]:
    groups = [group for _, group, _ in needed_devices(config)]
    if _uses_gpio(config):
        groups.append("gpio")
    return list(dict.fromkeys(groups))


# --- the checks ---------------------------------------------------------------


def check_boot_config(root: Path, config: AgentConfig) -> list[Check]:
    needs = needed_boot_lines(config)
    if not needs:
        return [Check("boot config", "pass", "this config needs no boot config lines")]
    found = next((root / p for p in BOOT_CONFIGS if (root / p).is_file()), None)
    if found is None:
        return [
            Check(
                "boot config",
                "fail",
                "no /boot/firmware/config.txt or /boot/config.txt",
                "is this a Raspberry Pi OS system? mount the boot partition",
            )
        ]
    active = {line.split("#", 1)[0].strip().replace(" ", "") for line in _lines(found)}
    shown = "/" + str(found.relative_to(root))
    checks = []
    for why, accepted in needs:
        hit = next((line for line in accepted if line in active), None)
        if hit:
            checks.append(Check("boot config", "pass", f"{shown}: {hit} ({why})"))
        else:
            checks.append(
                Check(
                    "boot config",
                    "fail",
                    f"{shown}: {accepted[0]} missing ({why})",
                    f"add '{accepted[0]}' to {shown} and reboot (install.sh offers it)",
                )
            )
    return checks


def _uses_uart(config: AgentConfig) -> bool:
    """A reader on the GPIO 14/15 UART (its bus occupies the UART pins)."""
    return any(needs.bus_pins.get(14) or needs.bus_pins.get(15) for _, needs in _needs(config))


def serial_consoles(cmdline: str) -> list[str]:
    """The ``console=`` words of a kernel command line that sit on the GPIO UART."""
    words = cmdline.split()
    return [w for w in words if w.startswith("console=") and w[8:].split(",")[0] in UART_CONSOLES]


def check_serial_console(root: Path, config: AgentConfig) -> list[Check]:
    if not _uses_uart(config):
        return []
    found = next((root / p for p in CMDLINES if (root / p).is_file()), None)
    if found is None:
        return [
            Check(
                "serial console",
                "warn",
                "no /boot/firmware/cmdline.txt or /boot/cmdline.txt to check",
                "mount the boot partition",
            )
        ]
    shown = "/" + str(found.relative_to(root))
    consoles = serial_consoles(found.read_text(encoding="utf-8", errors="replace"))
    if not consoles:
        return [Check("serial console", "pass", f"{shown}: no login console on the UART")]
    return [
        Check(
            "serial console",
            "fail",
            f"{shown}: {' '.join(consoles)} puts a login console on the reader's UART",
            f"remove {' '.join(consoles)} from {shown} (install.sh offers it, or "
            "'raspi-config nonint do_serial_cons 1') and reboot",
        )
    ]


def _access(users: Users, user: str, st: os.stat_result) -> bool:
    if user == "root":
        return True
    uid = users.uids.get(user, (-1, -1))[0]
    mode = st.st_mode
    if st.st_uid == uid:
        return bool(mode & stat.S_IRUSR and mode & stat.S_IWUSR)
    if st.st_gid in users.gids_of(user):
        return bool(mode & stat.S_IRGRP and mode & stat.S_IWGRP)
    return bool(mode & stat.S_IROTH and mode & stat.S_IWOTH)


def check_devices(root: Path, config: AgentConfig, users: Users, user: str) -> list[Check]:
    checks: list[Check] = []
    nodes = [(d.path, why, d.fix) for d, why in _reader_devices(config)]
    if _uses_gpio(config):
        chips = sorted((root / "dev").glob("gpiochip*"))
        if not chips:
            checks.append(
                Check("device", "fail", "no /dev/gpiochip*", "GPIO needs a Raspberry Pi kernel")
            )
        nodes += [("/" + str(c.relative_to(root)), "doors, LEDs, reset", "") for c in chips]
    for path, why, missing_fix in nodes:
        node = _under(root, path)
        if not node.exists():
            checks.append(Check("device", "fail", f"{path} missing ({why})", missing_fix))
            continue
        st = node.stat()
        owner = users.group_name(st.st_gid)
        if _access(users, user, st):
            checks.append(Check("device", "pass", f"{path} readable and writable by {user}"))
        else:
            checks.append(
                Check(
                    "device",
                    "fail",
                    f"{path} (group {owner}, mode {stat.S_IMODE(st.st_mode):04o}) "
                    f"not accessible by {user} ({why})",
                    f"usermod -aG {owner} {user}, then restart the agent",
                )
            )
    return checks


def check_groups(config: AgentConfig, users: Users, user: str) -> list[Check]:
    if user not in users.uids:
        return [
            Check(
                "user",
                "fail",
                f"no user {user} in /etc/passwd",
                "run scripts/install.sh (it creates the service user)",
            )
        ]
    checks = []
    for group in needed_groups(config):
        if group not in users.groups:
            checks.append(Check("group", "fail", f"no group {group}", f"groupadd --system {group}"))
        elif users.in_group(user, group):
            checks.append(Check("group", "pass", f"{user} is in {group}"))
        else:
            checks.append(
                Check(
                    "group",
                    "fail",
                    f"{user} is not in {group}",
                    f"usermod -aG {group} {user}, then restart the agent",
                )
            )
    return checks


def check_clock(facts: Facts) -> list[Check]:
    if facts.clock_synced is None:
        return [Check("clock", "warn", "cannot ask the kernel whether the clock is synced")]
    if facts.clock_synced:
        return [Check("clock", "pass", "the kernel reports the clock NTP-synchronised")]
    return [
        Check(
            "clock",
            "warn",
            "clock not synchronised: records are marked synced=false",
            "check network and 'timedatectl timesync-status'; the portal bounds times by receipts",
        )
    ]


def check_disk(config: AgentConfig, facts: Facts) -> list[Check]:
    checks: list[Check] = []
    state_dir = config.device.state_dir
    if facts.state_dir_problem:
        checks.append(
            Check(
                "state dir",
                "fail",
                f"{state_dir}: {facts.state_dir_problem}",
                "the agent cannot store a record: remount the SD card read-write "
                "(a read-only remount follows file system errors: run fsck) and reboot",
            )
        )
    if facts.disk_free_bytes is not None:
        free_mb = facts.disk_free_bytes // (1024 * 1024)
        if facts.disk_free_bytes < MIN_FREE_BYTES:
            checks.append(
                Check(
                    "disk", "fail", f"{state_dir}: {free_mb} MB free", "free space on the SD card"
                )
            )
        else:
            checks.append(Check("disk", "pass", f"{state_dir}: {free_mb} MB free"))
    if facts.buffer_problem:
        checks.append(Check("buffer", "warn", facts.buffer_problem))
    elif facts.buffer is not None:
        quota = config.buffer.quota_mb * 1024 * 1024
        used = facts.buffer.used_bytes
        share = 100 * used // quota if quota else 100
        detail = (
            f"{facts.buffer.pending_count} pending, {used // 1024} KiB of "
            f"{config.buffer.quota_mb} MB quota ({share}%)"
        )
        if share >= 100:
            checks.append(Check("buffer", "fail", detail, "upload or export the pending records"))
        elif share >= config.buffer.quota_warn_percent:
            checks.append(Check("buffer", "warn", detail, "upload or export the pending records"))
        else:
            checks.append(Check("buffer", "pass", detail))
        if facts.buffer.needs_recovery:
            checks.append(
                Check(
                    "buffer",
                    "warn",
                    "the next start repairs: " + "; ".join(facts.buffer.needs_recovery),
                    "start the agent; damaged files are quarantined, never deleted",
                )
            )
    return checks


def check_key(config: AgentConfig, users: Users, user: str) -> list[Check]:
    path = config.key_path
    try:
        load_key_file(path)
    except KeyFileError as exc:
        fix = "run 'qatysu init'" if not path.exists() else f"chmod 600 {path}"
        return [Check("key", "fail", str(exc), fix)]
    st = path.stat()
    uid = users.uids.get(user, (None, None))[0]
    if uid is not None and st.st_uid != uid:
        return [
            Check(
                "key",
                "fail",
                f"{path} is mode 0600 but not owned by {user}: the agent cannot read it",
                f"chown {user} {path}",
            )
        ]
    return [Check("key", "pass", f"{path} mode {stat.S_IMODE(st.st_mode):04o}")]


def check_portal(config: AgentConfig, facts: Facts) -> list[Check]:
    portal = config.portal
    checks: list[Check] = []
    if not portal.url:
        return [
            Check("portal", "fail", "portal.url not set", "qatysu enroll --portal URL --token T")
        ]
    if urlsplit(portal.url).scheme == "http":
        checks.append(Check("portal", "warn", f"{portal.url} is plain http (lab only)"))
    if not portal.device_id or not portal.public_key:
        checks.append(
            Check("enrollment", "fail", "not enrolled", "qatysu enroll --portal URL --token T")
        )
    else:
        try:
            public_key_from_b64(portal.public_key)
        except ProtocolError as exc:
            checks.append(Check("enrollment", "fail", f"portal.public_key: {exc}", "enroll again"))
        else:
            checks.append(
                Check("enrollment", "pass", f"device {portal.device_id}, portal key pinned")
            )
    if facts.portal_problem is None:
        checks.append(Check("portal", "warn", "not contacted (--offline)"))
    elif facts.portal_problem:
        checks.append(
            Check(
                "portal",
                "fail",
                f"{portal.url}: {facts.portal_problem}",
                "check the network; records wait in the buffer meanwhile",
            )
        )
    else:
        checks.append(Check("portal", "pass", f"{portal.url} answers"))
    return checks


def check_readers(config: AgentConfig, facts: Facts) -> list[Check]:
    checks = []
    for reader in config.readers:
        result = facts.readers.get(reader.name)
        if result is None:
            checks.append(Check("reader", "warn", f"{reader.name}: not probed"))
        elif result[0]:
            checks.append(Check("reader", "pass", result[1]))
        else:
            checks.append(
                Check("reader", "fail", result[1], "check wiring and power; 'qatysu test reader'")
            )
    return checks


def check_daemon(facts: Facts) -> list[Check]:
    status = facts.daemon
    if status is None:
        detail = facts.daemon_problem or "the agent is not running"
        return [Check("daemon", "warn", detail, "systemctl start qatysu-agent")]
    checks = [Check("daemon", "pass", f"running, pid {status.get('pid')}")]
    error = status.get("last_upload_error")
    last = status.get("last_upload_ms")
    if error:
        checks.append(Check("upload", "fail", f"last upload failed: {error}", "see journalctl"))
    elif last is None:
        checks.append(Check("upload", "warn", "no upload since the agent started"))
    else:
        checks.append(Check("upload", "pass", f"last upload at {last} ms"))
    return checks


def run_checks(
    config: AgentConfig, root: Path, facts: Facts, *, user: str = "qatysu"
) -> list[Check]:
    """Every check, in the order a technician fixes things: boot, devices, groups, ..."""
    users = Users.under(root)
    return [
        *check_boot_config(root, config),
        *check_serial_console(root, config),
        *check_devices(root, config, users, user),
        *check_groups(config, users, user),
        *check_clock(facts),
        *check_disk(config, facts),
        *check_key(config, users, user),
        *check_portal(config, facts),
        *check_readers(config, facts),
        *check_daemon(facts),
    ]
