"""Badge UIDs (agent.protocol.uids): the one normaliser of the reader framing and the imports."""

from __future__ import annotations

import pytest

from agent.protocol import UidError, normalise_uid


def test_uid_normalisation() -> None:
    assert normalise_uid(" 04:a1-B2 c3 ") == "04A1B2C3"
    with pytest.raises(ValueError, match="not hexadecimal"):
        normalise_uid("04:ZZ:00:00")
    with pytest.raises(ValueError, match="3 bytes"):
        normalise_uid("04a1b2")


def test_any_whole_bytes_without_a_length_rule() -> None:
    assert normalise_uid("04-a1 b2", lengths=None) == "04A1B2"
    with pytest.raises(UidError, match="not whole bytes"):
        normalise_uid("04:A1:B", lengths=None)
    with pytest.raises(UidError, match=r"^badge_uid '' is not hexadecimal$"):
        normalise_uid("", lengths=None, what="badge_uid")


def test_the_message_names_the_value_and_the_lengths() -> None:
    with pytest.raises(UidError, match=r"^badge_uid '04a1b2c3d4e5' is 6 bytes, not 4, 5, 7 or 10$"):
        normalise_uid("04a1b2c3d4e5", what="badge_uid")
