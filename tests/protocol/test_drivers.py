"""The protocol's driver names are the agent's: a driver added on one side only fails here."""

from __future__ import annotations

from agent.protocol.drivers import HARDWARE_DRIVERS, SIMULATED_DRIVER
from agent.readers.registry import DRIVERS


def test_the_registry_holds_exactly_the_protocol_drivers() -> None:
    assert set(DRIVERS) == {*HARDWARE_DRIVERS, SIMULATED_DRIVER}
