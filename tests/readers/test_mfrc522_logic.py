"""The sans-I/O parts of the mfrc522 driver: ISO 14443-3 flow, presence, supervision."""

from __future__ import annotations

import pytest

from agent.readers.iso14443 import (
    Activated,
    ActivationFlow,
    Frame,
    NotActivated,
    Reply,
    activate,
    bcc,
    cascade_levels,
    crc_a,
)
from agent.readers.mfrc522_health import ChipHealth, describe_version
from agent.readers.presence import PresenceTracker


def test_crc_a_matches_the_standards_examples() -> None:
    assert crc_a(b"\x00\x00") == b"\xa0\x1e"
    assert crc_a(b"\x12\x34") == b"\x26\xcf"
    assert crc_a(b"\x50\x00") == b"\x57\xcd"  # HLTA as every reader sends it


def test_cascade_levels_carry_the_tag_and_never_more_than_four_bytes() -> None:
    uid = bytes(range(1, 11))
    assert cascade_levels(uid) == [b"\x88\x01\x02\x03", b"\x88\x04\x05\x06", b"\x07\x08\x09\x0a"]
    assert cascade_levels(uid[:7]) == [b"\x88\x01\x02\x03", b"\x04\x05\x06\x07"]
    with pytest.raises(ValueError, match="4, 7 or 10 bytes"):
        cascade_levels(uid[:5])
    assert bcc(b"\x88\x04\xa2\x24") == 0x88 ^ 0x04 ^ 0xA2 ^ 0x24


def _drive(flow: ActivationFlow, replies: list[Reply | None]) -> tuple[list[Frame], object]:
    frames = [next(flow)]
    try:
        for reply in replies:
            frames.append(flow.send(reply))
    except StopIteration as done:
        return frames, done.value
    raise AssertionError(f"flow wants more after {len(replies)} replies: {frames[-1]}")


def _sak(value: int) -> Reply:
    return Reply(bytes((value,)) + crc_a(bytes((value,))))


def test_a_four_byte_card_is_woken_resolved_selected_and_halted() -> None:
    level = b"\x5a\xc3\xe0\xf1"
    frames, result = _drive(
        activate(), [Reply(b"\x04\x00"), Reply(level + bytes((bcc(level),))), _sak(0x08), None]
    )
    assert result == Activated(level, 0x08, b"\x04\x00")
    assert [f.data[:2] for f in frames] == [b"\x52", b"\x93\x20", b"\x93\x70", b"\x50\x00"]
    assert frames[0].tx_last_bits == 7
    assert frames[2].data[2:] == level + bytes((bcc(level),)) + crc_a(frames[2].data[:7])
    assert not frames[3].reply_expected


def test_a_wrong_check_byte_is_not_a_read() -> None:
    _, result = _drive(activate(), [Reply(b"\x04\x00"), Reply(b"\x01\x02\x03\x04\x00")])
    assert result == NotActivated("check byte (BCC) mismatch", True)


def test_a_sak_with_a_bad_crc_is_not_a_read() -> None:
    level = b"\x01\x02\x03\x04"
    replies = [Reply(b"\x04\x00"), Reply(level + bytes((bcc(level),))), Reply(b"\x08\x00\x00")]
    _, result = _drive(activate(), replies)
    assert result == NotActivated("SAK fails CRC_A", True)


def test_a_cascade_bit_without_the_cascade_tag_is_not_a_read() -> None:
    level = b"\x01\x02\x03\x04"
    _, result = _drive(
        activate(), [Reply(b"\x44\x00"), Reply(level + bytes((bcc(level),))), _sak(0x04)]
    )
    assert isinstance(result, NotActivated) and "another level" in result.reason


def test_a_collision_is_followed_bit_by_bit() -> None:
    # Two cards differ first at bit 5 of byte 1; the chip says CollPos 14.
    flow = activate()
    next(flow)
    frame = flow.send(Reply(b"\x04\x00"))
    assert frame.data == b"\x93\x20"
    frame = flow.send(Reply(b"\x11\x02\x00\x00\x00", collision=True, collision_at=14))
    assert frame.data == b"\x93\x36\x11\x22" and frame.tx_last_bits == 6 == frame.rx_align
    with pytest.raises(StopIteration) as done:
        flow.send(Reply(b"", collision=True, collision_at=None))
    assert done.value.value == NotActivated("collision at a position the chip could not give", True)


def test_a_collision_that_makes_no_progress_stops_the_flow() -> None:
    flow = activate()
    next(flow)
    flow.send(Reply(b"\x04\x00"))
    flow.send(Reply(b"\x11\x02\x00\x00\x00", collision=True, collision_at=14))
    with pytest.raises(StopIteration) as done:
        flow.send(Reply(b"\x00", collision=True, collision_at=3))  # behind what is known
    assert "makes no progress" in done.value.value.reason


def test_no_answer_to_wupa_means_no_card() -> None:
    _, result = _drive(activate(), [None])
    assert result == NotActivated("no card", card_answered=False)


def test_presence_needs_absent_polls_and_the_window() -> None:
    tracker = PresenceTracker(absent_polls=3, repeat_window_s=2.0)
    assert tracker.observe("AA", 0.0)
    assert not tracker.observe("AA", 0.1)
    for t in (0.2, 0.3, 0.4):
        assert not tracker.observe(None, t)
    assert not tracker.observe("AA", 0.5)  # three polls away, but within 2 s
    for t in (0.6, 0.7):
        tracker.observe(None, t)
    assert not tracker.observe("AA", 3.0)  # 2.5 s later, but only two polls away
    for t in (3.1, 3.2, 3.3):
        tracker.observe(None, t)
    assert tracker.observe("AA", 5.1)


def test_presence_forgets_cards_that_are_gone() -> None:
    tracker = PresenceTracker(absent_polls=1, repeat_window_s=0.0)
    assert tracker.observe("AA", 0.0)
    assert tracker.observe("BB", 0.1)  # AA missed one poll: gone
    assert len(tracker) == 1


@pytest.mark.parametrize(("polls", "window"), [(0, 1.0), (1, -1.0)])
def test_presence_settings_are_checked(polls: int, window: float) -> None:
    with pytest.raises(ValueError):
        PresenceTracker(polls, window)


def test_health_faults_on_silence_change_and_error_runs() -> None:
    health = ChipHealth(check_interval_s=10, max_errors=3)
    assert health.on_version(0x92, 0.0) is None and health.baseline == 0x92
    assert not health.version_due(5.0) and health.version_due(10.0)
    assert health.on_exchange(False, 1.0) is None
    assert health.on_exchange(True, 1.1) is None  # the run is broken
    assert health.on_exchange(False, 1.2) is None
    assert health.on_exchange(False, 1.3) is None
    assert health.on_exchange(False, 1.4, "no IRQ") == "3 chip errors in a row: no IRQ"
    assert health.faulted and health.retry_due(1.4)
    assert "accepted" not in health.on_recovered(0x92, 2.0)
    assert health.on_version(0x00, 20.0) == (
        "chip stopped answering: VersionReg 0x00 (no answer on the bus)"
    )


def test_health_backs_off_and_keeps_backing_off_for_a_flapping_chip() -> None:
    health = ChipHealth(retry_initial_s=1, retry_max_s=8, stable_s=100)
    health.fail("gone", 0.0)
    assert health.retry_due(0.0)
    health.on_retry_failed(0.0)
    assert not health.retry_due(0.9) and health.retry_due(1.0)
    health.on_retry_failed(1.0)
    assert not health.retry_due(2.9) and health.retry_due(3.0)
    health.on_recovered(0x92, 3.0)
    health.fail("gone again", 10.0)  # within stable_s of the recovery
    assert not health.retry_due(10.0) and health.retry_due(14.0)
    health.on_recovered(0x92, 14.0)
    health.fail("much later", 500.0)
    assert health.retry_due(500.0)


def test_versions_are_described() -> None:
    assert describe_version(0x92) == "VersionReg 0x92 (NXP MFRC522 v2.0)"
    assert "clone" in describe_version(0x88)
    assert "unknown chip" in describe_version(0x42)
