"""The reader driver names a ``badge`` record's ``driver`` field and a ``boot`` record carry.

Part of the record format: the portal reads them to tell hardware reads from
test reads and from drivers no device of ours has. The agent's driver registry
(:data:`agent.readers.registry.DRIVERS`) holds exactly these names; a test
keeps the two equal.
"""

from __future__ import annotations

__all__ = ["HARDWARE_DRIVERS", "SIMULATED_DRIVER"]

# Drivers that read a physical card through a physical reader.
HARDWARE_DRIVERS = frozenset({"mfrc522", "rdm6300", "serial-line"})
# The test reader: reads arrive from a script or the control socket, not from a card.
SIMULATED_DRIVER = "simulated"
