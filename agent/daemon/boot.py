"""What the daemon records about itself at start: ``boot`` and ``config`` data.

The config hash is SHA-256 of the config file's bytes; the hash of the last
run is kept in ``<state_dir>/config.sha256`` and written only after the
``config`` record naming the change is durable, so a crash in between
records the change on the next start instead of losing it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import AgentConfig
from agent.durable import replace_file
from agent.readers.serial_port import SerialConfig, port_scheme

__all__ = ["boot_data", "config_sha256", "read_last_config_hash", "remember_config_hash"]

HASH_FILE = "config.sha256"


def config_sha256(config: AgentConfig) -> str:
    """Hash of the file the config came from (``repr`` of the values without a file)."""
    data = config.path.read_bytes() if config.path is not None else repr(config).encode()
    return hashlib.sha256(data).hexdigest()


def boot_data(config: AgentConfig, digest: str) -> dict[str, Any]:
    return {
        "agent_version": __version__,
        "config_sha256": digest,
        "drivers": sorted({r.driver for r in config.readers}),
        "readers": [r.name for r in config.readers],
        # Which driver reads as which reader, and where a serial reader's bytes
        # come from ("path" for a device, else the URL scheme): the portal can
        # tell a USB reader from one fed over the network.
        "reader_drivers": {r.name: r.driver for r in config.readers},
        "port_schemes": {
            r.name: port_scheme(r.port) for r in config.readers if isinstance(r, SerialConfig)
        },
        "doors": [d.name for d in config.doors],
    }


def read_last_config_hash(state_dir: Path) -> str:
    """The hash the previous run recorded; ``""`` on the first run or if unreadable."""
    try:
        text = (state_dir / HASH_FILE).read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if len(text) == 64 else ""


def remember_config_hash(state_dir: Path, digest: str) -> None:
    path = state_dir / HASH_FILE
    replace_file(path, (digest + "\n").encode("ascii"), tmp=path.with_name(path.name + ".tmp"))
