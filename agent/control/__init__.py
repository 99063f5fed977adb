"""The daemon's control socket: one JSON object per line each way.

``protocol`` is the sans-I/O part (framing, request and answer shapes),
``server`` the daemon's side (a handler table served on an AF_UNIX stream
socket), ``client`` what the CLI uses (:class:`ControlClient`,
:func:`daemon_running`).
"""

from __future__ import annotations

from agent.control.client import ControlClient, daemon_running

__all__ = ["ControlClient", "daemon_running"]
