"""The test helper makes what NXP's worked example says a card sends (AN12196)."""

from __future__ import annotations

from agent.protocol.ntag424 import check_sun, sun_from_card_field
from tests.cards.sun import sun_field

ZERO = bytes(16)
# AN12196's example: UID 04DE5F1EACC040, counter 0x3D (61), factory keys.
UID = bytes.fromhex("04DE5F1EACC040")


def test_helper_matches_the_an12196_vector() -> None:
    field = sun_field(ZERO, ZERO, UID, 61, bytes.fromhex("3AB3C2F1D3"))
    assert field["mac"] == "94EED9EE65337086"
    message = sun_from_card_field(field)
    assert message is not None
    verdict = check_sun(ZERO, ZERO, UID, message)
    assert verdict.authentic and verdict.counter == 61
