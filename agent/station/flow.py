"""One card at the station: probe it, get its keys from the portal, write, activate, forget.

The order keeps every refusal before a key is asked for and every key out of storage:

1. :func:`~agent.station.personalise.probe` the card. A foreign card (factory key 0,
   foreign settings; or not an NTAG 424 DNA) is refused here and costs no card of
   the grant.
2. A fresh X25519 key for this card only; ``POST /keys`` with its public half. For a
   "locked" card (key 0 no longer factory) the request says ``resume``: the portal
   answers only for a card it already issued to this station and not yet activated,
   so a stranger's card is refused without being registered (409).
3. Open the bundle (the pinned portal key must have signed it, for this UID), write
   the card (or, locked, prove it ours with its key 0 and read it), then ``POST
   /activate`` with the SUN message the card just made.
4. Forget: the bundle and the X25519 key are dropped here; nothing was logged or
   written. What Python can and cannot promise about that is in docs/cards.md
   ("The station forgets the keys").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.exceptions import CardNotBlank, PortalRefused, StationError
from agent.protocol.card_keys import open_bundle, x25519_public_b64
from agent.protocol.errors import ProtocolError
from agent.protocol.ntag424_ev2 import CardError
from agent.station.personalise import Channel, finish, personalise, probe

__all__ = ["Made", "StationPortal", "make_card"]

logger = logging.getLogger(__name__)


class StationPortal(Protocol):
    """The two portal calls a card needs (:class:`agent.station.client.StationClient`)."""

    def card_keys(self, uid: str, station_key_b64: str, resume: bool) -> dict[str, Any]: ...

    def activate(self, uid: str, picc: str, mac: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Made:
    """A card made and activated: no key in here, only what the operator may see."""

    uid: str
    counter: int  # the activation read's counter, the portal's first accepted one
    resumed: bool  # an interrupted personalisation was finished


def make_card(
    channel: Channel,
    portal: StationPortal,
    pinned: Ed25519PublicKey,
    url: str,
    random: Callable[[int], bytes] = os.urandom,
) -> Made:
    """Personalise and activate the card in ``channel``; raise CardNotBlank or StationError."""
    uid = channel.uid.hex().upper()
    if len(channel.uid) != 7:
        raise CardNotBlank(f"card {uid}: a {len(channel.uid)}-byte UID is not an NTAG 424 DNA")
    try:
        state = probe(channel, url, random)
    except CardNotBlank as exc:
        raise CardNotBlank(f"card {uid}: {exc}") from None
    except CardError as exc:
        raise StationError(f"card {uid}: {exc}") from None
    sealing = X25519PrivateKey.generate()
    try:
        answer = portal.card_keys(uid, x25519_public_b64(sealing), state != "blank")
    except PortalRefused as exc:
        if exc.status != 409:
            raise
        # Active, another station's, or (locked) never issued here: not ours to write.
        raise CardNotBlank(f"card {uid}: the portal refuses it ({exc})") from None
    try:
        bundle = open_bundle(answer, uid, sealing, pinned)
    except ProtocolError as exc:
        raise StationError(f"card {uid}: the portal's answer is refused: {exc}") from None
    del sealing, answer
    try:
        outcome = (finish if state == "locked" else personalise)(channel, bundle, random)
    except CardNotBlank as exc:
        raise CardNotBlank(f"card {uid}: {exc}") from None
    except CardError as exc:
        raise StationError(f"card {uid}: {exc}") from None
    finally:
        del bundle
    done = portal.activate(uid, outcome.sun.picc.hex().upper(), outcome.sun.mac.hex().upper())
    counter = done.get("counter")
    if done.get("state") != "active" or not isinstance(counter, int):
        raise StationError(f"card {uid}: the portal did not confirm the activation")
    logger.info("card %s personalised and activated (counter %d)", uid, counter)
    return Made(uid, counter, outcome.resumed)
