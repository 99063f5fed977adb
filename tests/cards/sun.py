"""A card's side of SUN, for tests: what an NTAG 424 DNA mirrors at a read.

Test-only simulation: PICCData (0xC7 ‖ UID ‖ counter LSB first ‖ 5 random bytes)
encrypted with AES-CBC, IV zero, under the meta read key, and the SDM MAC of
agent.protocol.ntag424 (the check it must pass is the portal's, not this).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from agent.protocol.ntag424 import KIND, sdm_mac


def sun_field(
    meta_key: bytes, file_key: bytes, uid: bytes, counter: int, rand: bytes = b"\x11" * 5
) -> dict[str, str]:
    """The badge record's ``card`` object for read number ``counter`` of card ``uid``."""
    plain = b"\xc7" + uid + counter.to_bytes(3, "little") + rand
    encryptor = Cipher(algorithms.AES(meta_key), modes.CBC(bytes(16))).encryptor()
    picc = encryptor.update(plain) + encryptor.finalize()
    mac = sdm_mac(file_key, uid, counter)
    return {"kind": KIND, "picc": picc.hex().upper(), "mac": mac.hex().upper()}
