"""Fake ``spidev`` and ``RPi.GPIO`` modules that drive emulated hardware.

Only the test of the real ``mfrc522`` package (tests/readers/
test_mfrc522_package.py) and the benchmark's package baseline need them: the
driver itself takes its bus as an argument (tests/hardware/mfrc522_emu.py's
``EmulatedBoard.open_bus``). :func:`installed` puts them in ``sys.modules``
under the real names for a while, importing ``mfrc522`` afresh against them;
:func:`install` does it for good (the benchmark). The package binds
``spidev`` and ``RPi.GPIO`` at import time, hence the fresh import.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

_NAMES = ("spidev", "RPi", "RPi.GPIO")


def _fakes() -> dict[str, ModuleType]:
    from tests.hardware.fakes import RPi as fake_rpi
    from tests.hardware.fakes import spidev as fake_spidev
    from tests.hardware.fakes.RPi import GPIO as fake_gpio

    return {"spidev": fake_spidev, "RPi": fake_rpi, "RPi.GPIO": fake_gpio}


def _package_modules() -> list[str]:
    return [name for name in sys.modules if name == "mfrc522" or name.startswith("mfrc522.")]


def install() -> None:
    fakes = _fakes()
    imported = sys.modules.get("mfrc522.MFRC522")
    if imported is not None and getattr(imported, "spidev", None) is not fakes["spidev"]:
        raise RuntimeError("mfrc522 was imported before the fake spidev/RPi.GPIO were installed")
    sys.modules.update(fakes)


@contextmanager
def installed() -> Iterator[None]:
    """The fakes under the real names, and ``mfrc522`` imported against them, until exit."""
    saved = {
        name: sys.modules[name] for name in (*_NAMES, *_package_modules()) if name in sys.modules
    }
    for name in _package_modules():
        del sys.modules[name]
    sys.modules.update(_fakes())
    try:
        yield
    finally:
        for name in (*_NAMES, *_package_modules()):
            sys.modules.pop(name, None)
        sys.modules.update(saved)
