"""The value objects of the entrance's own hardware: ``[[doors]]``, ``[[tamper]]``, ``[feedback]``.

They live with the hardware, as each reader driver's config lives with its
driver, so :mod:`agent.config.schema` assembles them and the hardware modules
never import the config loader. Pure: no gpiozero here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FeedbackConfig", "SensorConfig"]


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
