"""Fake ``spidev`` and ``RPi.GPIO`` modules that drive emulated hardware.

:func:`install` puts them in ``sys.modules`` under the real names; it must run
before the ``mfrc522`` package is first imported, since that package binds
``spidev`` and ``RPi.GPIO`` at import time.
"""

from __future__ import annotations

import sys


def install() -> None:
    from tests.hardware.fakes import RPi as fake_rpi
    from tests.hardware.fakes import spidev as fake_spidev
    from tests.hardware.fakes.RPi import GPIO as fake_gpio

    imported = sys.modules.get("mfrc522.MFRC522")
    if imported is not None and getattr(imported, "spidev", None) is not fake_spidev:
        raise RuntimeError("mfrc522 was imported before the fake spidev/RPi.GPIO were installed")
    sys.modules["spidev"] = fake_spidev
    sys.modules["RPi"] = fake_rpi
    sys.modules["RPi.GPIO"] = fake_gpio
