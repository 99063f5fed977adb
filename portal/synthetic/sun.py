"""SUN messages for the synthetic city: what a Qatysu card would mirror at a read.

Simulation only (demos, trials): a card's side of agent.protocol.ntag424 with keys
from the portal's own card key code (:func:`portal.cards.keys.derived_sun_keys`, the
keys the portal would have given the card), so the reconciliation checks these
messages exactly as it checks a real card's. The read counter follows the read's
true time (one step per second since the period began), so it increases with every
read of a card wherever it happens, as a real card's does.
"""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from agent.protocol.ntag424 import PICC_TAG, SunMessage, card_field, sdm_mac
from portal.cards.keys import SunKeys, derived_sun_keys

__all__ = ["SunCards", "sun_uid"]

COUNTER_MAX = (1 << 24) - 1


def sun_uid(rng: random.Random) -> str:
    """A 7-byte NXP UID (manufacturer 04), as every NTAG 424 DNA has."""
    return "04" + "".join(f"{rng.randrange(256):02X}" for _ in range(6))


class SunCards:
    """The SUN cards of a city: which UIDs, their keys, their counters."""

    def __init__(self, master: bytes, base_ms: int, seed: int) -> None:
        self.master = master
        self.base_ms = base_ms
        self.rng = random.Random(seed)
        self.uids: set[str] = set()
        self._last: dict[str, int] = {}
        self._keys: dict[str, SunKeys] = {}

    def add(self, uid: str) -> None:
        self.uids.add(uid)

    def read(self, uid: str, true_ms: int) -> dict[str, str]:
        """The badge record's ``card`` object for a read of ``uid`` at ``true_ms``."""
        raw = bytes.fromhex(uid)
        counter = max((true_ms - self.base_ms) // 1000, self._last.get(uid, 0) + 1)
        counter = min(max(counter, 1), COUNTER_MAX)
        self._last[uid] = counter
        keys = self._keys.get(uid)
        if keys is None:
            keys = self._keys[uid] = derived_sun_keys(self.master, raw)
        plain = bytes((PICC_TAG,)) + raw + counter.to_bytes(3, "little") + self.rng.randbytes(5)
        encryptor = Cipher(algorithms.AES(keys.meta_read), modes.CBC(bytes(16))).encryptor()
        picc = encryptor.update(plain) + encryptor.finalize()
        return card_field(SunMessage(picc, sdm_mac(keys.file_read, raw, counter)))
