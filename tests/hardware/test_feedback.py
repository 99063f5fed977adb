"""Feedback patterns: the sequencer alone, then what MockFactory pins saw."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from agent.config import FeedbackConfig
from agent.exceptions import HardwareError
from agent.hardware.feedback import (
    ACCEPTED,
    BACKLOG,
    CANNOT_PERSIST,
    OFF,
    READER_FAULT,
    Feedback,
    FeedbackSequencer,
)

GREEN, RED, BUZZER = 5, 6, 13


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def states(factory: MockFactory, pin: int) -> list[bool]:
    return [bool(s.state) for s in factory.pin(pin).states]


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def feedback(factory: MockFactory) -> Iterator[Feedback]:
    cfg = FeedbackConfig(green_pin=GREEN, red_pin=RED, buzzer_pin=BUZZER, backlog_warn=1000)
    fb = Feedback(cfg, pin_factory=factory, time_scale=0.1)
    fb.start()
    yield fb
    fb.close()


def test_sequencer_one_shots_before_background() -> None:
    seq = FeedbackSequencer(backlog_warn=10)
    assert seq.next_step() is None
    seq.set_condition(reader_fault=True)
    assert seq.next_step() == READER_FAULT.steps[0]
    seq.push(ACCEPTED)
    assert [seq.next_step() for _ in ACCEPTED.steps] == list(ACCEPTED.steps)
    assert seq.next_step() == READER_FAULT.steps[0]  # the background starts again
    assert seq.next_step() == READER_FAULT.steps[1]
    seq.set_condition(reader_fault=False, pending=10, offline=True)
    assert seq.next_step() == BACKLOG.steps[0]
    seq.set_condition(pending=10, offline=False)
    assert seq.next_step() is None


def test_sequencer_drops_the_oldest_beyond_three() -> None:
    seq = FeedbackSequencer()
    for _ in range(5):
        seq.push(ACCEPTED)
    shown = []
    while (step := seq.next_step()) is not None:
        shown.append(step)
    assert shown.count(OFF) == 3


def test_accepted_is_green_with_a_short_beep(factory: MockFactory, feedback: Feedback) -> None:
    feedback.accepted()
    assert feedback.idle.wait(5)
    assert states(factory, GREEN) == [False, True, False]
    assert states(factory, BUZZER) == [False, True, False]
    assert states(factory, RED) == [False]
    assert feedback.green is not None and feedback.green.pin_factory is factory
    buzz, green = factory.pin(BUZZER).states, factory.pin(GREEN).states
    # PinState.timestamp is the time since the previous change: the on-times
    assert buzz[2].timestamp >= 0.1 * 0.1 * 0.9
    assert green[2].timestamp >= 0.8 * 0.1 * 0.9
    assert buzz[2].timestamp < green[2].timestamp  # the beep is shorter than the light


def test_cannot_persist_is_red_with_a_long_beep(factory: MockFactory, feedback: Feedback) -> None:
    feedback.cannot_persist()
    assert feedback.idle.wait(5)
    wait_until(lambda: len(states(factory, RED)) == 3)
    assert states(factory, RED) == [False, True, False]
    assert states(factory, BUZZER) == [False, True, False]
    assert states(factory, GREEN) == [False]
    assert factory.pin(BUZZER).states[2].timestamp >= CANNOT_PERSIST.steps[0].seconds * 0.09


def test_reader_fault_blinks_red_and_taps_still_show(
    factory: MockFactory, feedback: Feedback
) -> None:
    feedback.set_reader_fault(True)
    wait_until(lambda: len(states(factory, RED)) >= 5)  # on, off, on, off
    assert states(factory, RED)[:5] == [False, True, False, True, False]
    feedback.accepted()
    wait_until(lambda: states(factory, GREEN) == [False, True, False])
    blinks = len(states(factory, RED))
    wait_until(lambda: len(states(factory, RED)) > blinks + 1)  # blinking resumed
    feedback.set_reader_fault(False)
    assert feedback.idle.wait(5)
    assert states(factory, RED)[-1] is False and states(factory, BUZZER) == [False, True, False]


def test_offline_backlog_blinks_both(factory: MockFactory, feedback: Feedback) -> None:
    feedback.set_backlog(999, offline=True)
    assert feedback.idle.wait(5)
    feedback.set_backlog(1000, offline=True)
    wait_until(lambda: len(states(factory, GREEN)) >= 3 and len(states(factory, RED)) >= 3)
    assert states(factory, GREEN)[:3] == states(factory, RED)[:3] == [False, True, False]
    feedback.set_backlog(1000, offline=False)
    assert feedback.idle.wait(5)
    assert states(factory, GREEN)[-1] is False and states(factory, BUZZER) == [False]


def test_missing_pins_are_fine_and_the_first_pattern_starts_the_player(
    factory: MockFactory,
) -> None:
    fb = Feedback(FeedbackConfig(green_pin=GREEN), pin_factory=factory, time_scale=0.01)
    try:
        fb.cannot_persist()
        fb.set_reader_fault(True)
        fb.set_reader_fault(False)
        assert fb.idle.wait(5)
        assert states(factory, GREEN) == [False]
    finally:
        fb.close()
    assert all(p.repeat for p in (READER_FAULT, BACKLOG))


def test_play_by_name_shows_one_cycle(factory: MockFactory, feedback: Feedback) -> None:
    feedback.play("reader_fault")
    assert feedback.idle.wait(5)
    assert states(factory, RED) == [False, True, False]
    with pytest.raises(HardwareError, match="no pattern 'party'"):
        feedback.play("party")


def test_pin_in_use_is_a_hardware_error(factory: MockFactory) -> None:
    cfg = FeedbackConfig(green_pin=GREEN, red_pin=GREEN)
    with pytest.raises(HardwareError, match="feedback: cannot claim its pins"):
        Feedback(cfg, pin_factory=factory)
