"""Qatysu cards for the emulated reader: an NTAG 424 DNA personalised as the station does it.

The card is :class:`~tests.hardware.ntag424_emu.Ntag424App` (its own crypto, written
from the datasheet) personalised by the real :func:`agent.station.personalise.personalise`
through an :class:`~tests.hardware.ntag424_emu.EmulatedChannel`, then put behind the
ISO 14443-4 card of tests/hardware/isodep_emu.py, ready for
:meth:`~tests.hardware.mfrc522_emu.Mfrc522Chip.add_card`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.protocol.card_keys import CardKeyBundle
from agent.station.personalise import personalise
from tests.hardware.isodep_emu import IsoDepCard
from tests.hardware.ntag424_emu import EmulatedChannel, Ntag424App

__all__ = ["SunCard", "bundle_for", "personalised_card"]


@dataclass
class SunCard:
    card: IsoDepCard  # what goes into the emulated field
    app: Ntag424App  # the card's application: its read counter, its commands
    bundle: CardKeyBundle
    counter: int  # the read counter after personalisation (its own read-back)


def bundle_for(seed: int, url: str = "https://qatysu.kz/c") -> CardKeyBundle:
    """Five distinct test keys; ``seed`` keeps two cards' keys apart."""
    keys = [bytes([(seed * 16 + n) & 0xFF]) * 16 for n in range(5)]
    return CardKeyBundle(*keys, url=url)


def personalised_card(
    uid: bytes, bundle: CardKeyBundle, *, faults: Mapping[int, str] | None = None
) -> SunCard:
    """A blank NTAG 424 DNA with ``uid`` made a Qatysu card with ``bundle``'s keys."""
    app = Ntag424App(uid=uid)
    outcome = personalise(EmulatedChannel(app), bundle)
    app.commands.clear()
    return SunCard(IsoDepCard(uid, app=app, faults=faults), app, bundle, outcome.counter)
