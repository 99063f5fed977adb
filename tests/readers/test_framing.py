"""The sans-I/O framers and the presence filter, fed directly and fuzzed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.readers.framing import (
    Card,
    Em4100Framer,
    LineFramer,
    Rejected,
    em4100_frame,
    normalise_uid,
)
from agent.readers.presence import PresenceTracker


def cards(results: list[Card | Rejected]) -> list[str]:
    return [r.uid for r in results if isinstance(r, Card)]


def test_frame_checksum_and_uid() -> None:
    # 0x62 ^ 0xE3 ^ 0x08 ^ 0x6C ^ 0xED == 0x08: the checksum is not part of the UID
    assert em4100_frame("62e3086ced") == b"\x0262E3086CED08\x03"
    results = Em4100Framer().feed(b"\x0262E3086CED08\x03")
    assert results == [Card("62E3086CED")] and results[0].uid_len == 5  # type: ignore[union-attr]


def test_rejects_say_why() -> None:
    framer = Em4100Framer()
    bad = b"\x0262E3086CED09\x03"
    assert framer.feed(bad) == [Rejected("bad checksum", bad)]
    assert [r.reason for r in framer.feed(b"\x0262E3086CED08\x04")] == ["no ETX"]
    assert [r.reason for r in framer.feed(b"\x020A1G")] == ["non-hex digit"]


def test_frame_starting_inside_a_broken_one_is_found() -> None:
    framer = Em4100Framer()
    broken = b"\x02" + b"0" * 12  # no ETX where it belongs
    data = b"\x020A1B" + em4100_frame("1122334455") + broken + em4100_frame("0000000001")
    assert cards(framer.feed(data)) == ["1122334455", "0000000001"]


def test_line_framer_endings_and_overlong_lines() -> None:
    framer = LineFramer(r"([0-9A-Fa-f]{8,20})", max_line=40)
    assert cards(framer.feed(b"04A1B2C3\r\n04a1b2c3d4e5f6\rnoise\n")) == [
        "04A1B2C3",
        "04A1B2C3D4E5F6",
    ]
    assert cards(framer.feed(b"X" * 100)) == []
    # the rest of the overlong line is dropped, the next line is read
    assert cards(framer.feed(b"AAAA0000BBBB\n12345678\n")) == ["12345678"]


def test_odd_hex_is_rejected() -> None:
    assert normalise_uid("04:A1:B") is None
    assert normalise_uid("04-a1 b2") == "04A1B2"
    assert [r.reason for r in LineFramer(r"([0-9A-F]+)").feed(b"ABC\n")] == ["UID is not hex bytes"]


def test_presence_filter_needs_the_card_to_leave() -> None:
    presence = PresenceTracker.for_repeats(away_s=0.5)
    assert presence.new_presentation("A", 0.0)
    assert not any(presence.new_presentation("A", t / 10) for t in range(1, 30))  # held 3 s
    assert presence.new_presentation("B", 3.0)  # another card meanwhile counts
    assert presence.new_presentation("A", 3.6)  # A was away 0.7 s


@given(st.binary(max_size=400), st.lists(st.integers(min_value=1, max_value=20)))
def test_em4100_framer_never_raises_and_stays_bounded(data: bytes, cuts: list[int]) -> None:
    framer = Em4100Framer()
    pos = 0
    for size in [*cuts, len(data)]:
        framer.feed(data[pos : pos + size])
        pos += size
        assert len(framer._buf) < 14


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=12))
def test_line_framer_never_raises_and_stays_bounded(data: bytes, chunk: int) -> None:
    framer = LineFramer(r"([0-9A-Fa-f]{8,20})", max_line=64)
    for i in range(0, len(data), chunk):
        framer.feed(data[i : i + chunk])
        assert len(framer._buf) <= 64


@given(
    st.binary(max_size=80),
    st.binary(min_size=5, max_size=5),
    st.binary(max_size=80),
    st.lists(st.integers(min_value=1, max_value=30), max_size=10),
)
@settings(max_examples=300)
def test_valid_frame_in_noise_is_found(
    before: bytes, uid: bytes, after: bytes, cuts: list[int]
) -> None:
    data = before + em4100_frame(uid.hex()) + after
    framer = Em4100Framer()
    found: list[str] = []
    pos = 0
    for size in [*cuts, len(data)]:
        found += cards(framer.feed(data[pos : pos + size]))
        pos += size
    assert uid.hex().upper() in found


@given(
    st.text(alphabet="xyz:-!\t ", max_size=30),
    st.binary(min_size=4, max_size=10),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_line_in_noise_is_found(prefix: str, uid: bytes, end: bytes) -> None:
    framer = LineFramer(r"UID=([0-9A-Fa-f]+)")
    data = b"junk\xff\x00\n" + f"{prefix}UID={uid.hex()}".encode() + end
    assert cards(framer.feed(data)) == [uid.hex().upper()]
