"""The one place that picks a gpiozero pin factory (the backend is injected).

Door, tamper and feedback objects take ``pin_factory`` as an argument and
never touch gpiozero's global ``Device.pin_factory``; the daemon and the CLI
call :func:`make_pin_factory` once and pass the result down. Tests pass a
``MockFactory`` directly.
"""

from __future__ import annotations

from typing import Any

from agent.exceptions import HardwareError

__all__ = ["make_pin_factory"]


def make_pin_factory(name: str | None = None) -> Any:
    """``"mock"`` for a MockFactory (demo, tests); otherwise gpiozero's own choice.

    With ``name`` None gpiozero reads ``GPIOZERO_PIN_FACTORY`` or tries lgpio,
    then RPi.GPIO (rpi-lgpio on a Pi 5), pigpio and its native fallback.
    """
    try:
        if name == "mock":
            from gpiozero.pins.mock import MockFactory

            return MockFactory()
        from gpiozero import Device

        if name is None:
            return Device._default_pin_factory()
        from importlib.metadata import entry_points

        for entry in entry_points(group="gpiozero_pin_factories"):
            if entry.name.lower() == name.lower():
                return entry.load()()
    except Exception as exc:  # gpiozero raises many kinds here, all meaning "no GPIO"
        raise HardwareError(f"no GPIO pin factory {name or '(default)'}: {exc}") from exc
    raise HardwareError(f"unknown GPIO pin factory {name!r}")
