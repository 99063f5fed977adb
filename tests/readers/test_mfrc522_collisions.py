"""Several cards in the field: never a wrong UID (hypothesis over random UIDs)."""

from __future__ import annotations

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from agent.clock import ManualClock
from agent.readers.mfrc522 import Mfrc522Reader
from tests.hardware.mfrc522_emu import EmulatedBoard
from tests.readers.conftest import Scenario

FINAL_LEVEL_FIRST_BYTE = {4: 0, 7: 3, 10: 6}  # ISO: never the cascade tag there


@st.composite
def uid_sets(draw: st.DrawFn, *, iso_valid: bool, most: int = 2) -> list[bytes]:
    """2..most distinct UIDs, later ones often sharing a prefix with an earlier one."""
    uids: list[bytes] = []
    for _ in range(draw(st.integers(2, most))):
        size = draw(st.sampled_from([4, 7, 10]))
        base = draw(st.sampled_from(uids)) if uids else b""
        shared = draw(st.integers(0, min(size, len(base))))
        uid = base[:shared] + draw(st.binary(min_size=size - shared, max_size=size - shared))
        assume(uid not in uids)
        if iso_valid:
            assume(uid[FINAL_LEVEL_FIRST_BYTE[size]] != 0x88)
        uids.append(uid)
    return uids


def _read_all(uids: list[bytes], *, remove_winners: bool) -> tuple[list[str], set[str]]:
    """Put every card in the field; each time one is read, take it away."""
    clock = ManualClock()
    board = EmulatedBoard(now=clock.monotonic)
    try:
        scenario = Scenario(clock)
        reader = Mfrc522Reader(
            "entrance", clock=clock, sleep=scenario.sleep, open_bus=board.open_bus
        )
        chip = board.chip
        cards = [chip.add_card(uid) for uid in uids]
        for round_ in range(len(cards) if remove_winners else 1):
            scenario.run(reader, until=0.6 * (round_ + 1))
            reads = scenario.reads()
            if len(reads) != round_ + 1:
                break
            chip.remove_card(next(c for c in cards if c.uid_hex == reads[-1]))
        return scenario.reads(), {c.uid_hex for c in cards}
    finally:
        board.close()


@settings(max_examples=150, deadline=None)
@given(uid_sets(iso_valid=False, most=4))
@example([bytes.fromhex("04A224112233AA"), bytes.fromhex("04A22499887766")])
@example([bytes.fromhex("88112233"), bytes.fromhex("11223344556677")])  # same level-1 bytes
def test_cards_in_the_field_at_once_never_yield_a_wrong_uid(uids: list[bytes]) -> None:
    reads, present = _read_all(uids, remove_winners=True)
    assert set(reads) <= present
    assert len(reads) == len(set(reads))


@settings(max_examples=100, deadline=None)
@given(uid_sets(iso_valid=True, most=4))
@example([bytes.fromhex("01020304"), bytes.fromhex("01030304"), bytes.fromhex("01030305")])
def test_iso_valid_cards_are_all_read_one_after_the_other(uids: list[bytes]) -> None:
    reads, present = _read_all(uids, remove_winners=True)
    assert sorted(reads) == sorted(present)


def test_the_card_sending_a_one_at_the_collided_bit_wins() -> None:
    uids = [bytes.fromhex("01020304"), bytes.fromhex("01020305")]
    reads, _ = _read_all(uids, remove_winners=False)
    assert reads == ["01020305"]


def test_a_second_collision_past_the_first_byte_is_placed_right() -> None:
    # The first collision (bit 8) leaves 9 known bits; the next (bit 24) comes
    # back with CollPos counted from the second byte: it must land on bit 24.
    uids = [bytes.fromhex("01020304"), bytes.fromhex("01030304"), bytes.fromhex("01030305")]
    reads, _ = _read_all(uids, remove_winners=False)
    assert reads == ["01030305"]
