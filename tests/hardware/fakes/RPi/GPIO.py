"""Stand-in for ``RPi.GPIO``: numbering mode, outputs, and listeners for emulators.

Real calls and their errors (setup before setmode, output on a pin not set
up as an output, a second different mode). The extras that the real module
lacks are for tests: :func:`attach` wires an output pin to emulated hardware,
``history`` lists every (pin, level) written, :func:`reset` starts over.
"""

from __future__ import annotations

from collections.abc import Callable

BOARD = 10
BCM = 11
OUT = 0
IN = 1
LOW = 0
HIGH = 1
PUD_OFF = 20
PUD_DOWN = 21
PUD_UP = 22

_mode: int | None = None
_directions: dict[int, int] = {}
_levels: dict[int, int] = {}
_listeners: dict[int, list[Callable[[int], None]]] = {}
history: list[tuple[int, int]] = []


def setwarnings(flag: bool) -> None:
    pass


def setmode(mode: int) -> None:
    global _mode
    if mode not in (BOARD, BCM):
        raise ValueError("An invalid mode was passed to setmode()")
    if _mode is not None and mode != _mode:
        raise ValueError("A different mode has already been set!")
    _mode = mode


def getmode() -> int | None:
    return _mode


def setup(channel: int, direction: int, pull_up_down: int = PUD_OFF, initial: int = -1) -> None:
    if _mode is None:
        raise RuntimeError(
            "Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)"
        )
    _directions[channel] = direction
    if direction == OUT and initial != -1:
        output(channel, initial)


def output(channel: int, value: int | bool) -> None:
    if _directions.get(channel) != OUT:
        raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
    level = HIGH if value else LOW
    _levels[channel] = level
    history.append((channel, level))
    for listener in _listeners.get(channel, []):
        listener(level)


def input(channel: int) -> int:
    if channel not in _directions:
        raise RuntimeError("You must setup() the GPIO channel first")
    return _levels.get(channel, LOW)


def cleanup(channel: int | list[int] | None = None) -> None:
    global _mode
    if channel is None:
        _directions.clear()
        _mode = None
        return
    for pin in [channel] if isinstance(channel, int) else channel:
        _directions.pop(pin, None)


def attach(channel: int, listener: Callable[[int], None]) -> None:
    _listeners.setdefault(channel, []).append(listener)


def detach(channel: int) -> None:
    _listeners.pop(channel, None)


def reset() -> None:
    global _mode
    _mode = None
    _directions.clear()
    _levels.clear()
    _listeners.clear()
    history.clear()
