"""The device daemon, ``qatysu run`` (docs/daemon.md).

:mod:`pump` turns events into records (through the one
:class:`~agent.records.store.RecordStore`) then feedback, :mod:`inputs`
supervises readers and sensors, :mod:`uploads` runs the uploader's rounds,
:mod:`commands` answers the control socket, :mod:`systemd` speaks sd_notify,
:mod:`daemon` wires it all.
"""

from __future__ import annotations

from agent.daemon.daemon import Daemon, check_enrolled

__all__ = ["Daemon", "check_enrolled"]
