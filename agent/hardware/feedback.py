"""What the child at the door sees and hears: green and red LEDs and a buzzer.

Patterns are data: a :class:`Pattern` is a sequence of :class:`Step` (which
outputs are on, for how long). :class:`FeedbackSequencer` decides, without
pins or threads, which step comes next: one-shot patterns (an accepted read,
a read that could not be made durable) go first, in order; otherwise the
background pattern for the device's condition repeats (reader fault, then
offline with a large backlog); otherwise everything is off.
:class:`Feedback` is the thin gpiozero shell (pin factory passed in) that
plays those steps in its own thread. Missing pins (``None``) are skipped.

==================  ======================================================
pattern             meaning
==================  ======================================================
accepted            green on 0.8 s with a short beep: badge read and stored
cannot_persist      red on 1.5 s with a long beep: read, but the device could
                    not store it (disk full or failing); tap again later
reader_fault        red blinking (0.25 s on, 0.25 s off) while a reader is faulty
offline_backlog     green and red together 0.5 s every 3 s: offline and many
                    records wait to be uploaded
==================  ======================================================
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any

from gpiozero import LED, Buzzer
from gpiozero.exc import GPIOZeroError

from agent.exceptions import HardwareError
from agent.hardware.settings import FeedbackConfig

__all__ = [
    "ACCEPTED",
    "BACKLOG",
    "CANNOT_PERSIST",
    "PATTERNS",
    "READER_FAULT",
    "Feedback",
    "FeedbackSequencer",
    "Pattern",
    "Step",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    green: bool
    red: bool
    buzzer: bool
    seconds: float


@dataclass(frozen=True)
class Pattern:
    name: str
    steps: tuple[Step, ...]
    repeat: bool = False  # background patterns repeat until the condition clears


OFF = Step(False, False, False, 0.0)

ACCEPTED = Pattern("accepted", (Step(True, False, True, 0.1), Step(True, False, False, 0.7), OFF))
CANNOT_PERSIST = Pattern(
    "cannot_persist", (Step(False, True, True, 1.0), Step(False, True, False, 0.5), OFF)
)
READER_FAULT = Pattern(
    "reader_fault", (Step(False, True, False, 0.25), Step(False, False, False, 0.25)), repeat=True
)
BACKLOG = Pattern(
    "offline_backlog", (Step(True, True, False, 0.5), Step(False, False, False, 2.5)), repeat=True
)
PATTERNS = {p.name: p for p in (ACCEPTED, CANNOT_PERSIST, READER_FAULT, BACKLOG)}

MAX_QUEUED = 3  # a queue of children tapping fast should not lag seconds behind


class FeedbackSequencer:
    """Sans-I/O: which step to show next, given queued one-shots and the condition."""

    def __init__(self, backlog_warn: int = 5000) -> None:
        self.backlog_warn = backlog_warn
        self.reader_fault = False
        self.backlog = False
        # Beyond MAX_QUEUED the oldest waiting pattern is dropped: a queue of
        # children tapping fast should not make the door lag seconds behind.
        self._pending: collections.deque[Pattern] = collections.deque(maxlen=MAX_QUEUED)
        self._steps: collections.deque[Step] = collections.deque()
        self._background: Pattern | None = None
        self._bg_index = 0
        self.last_was_one_shot = False

    def push(self, pattern: Pattern) -> None:
        """Queue one showing of ``pattern`` (one cycle of a repeating one)."""
        self._pending.append(pattern)

    def set_condition(
        self,
        *,
        reader_fault: bool | None = None,
        pending: int | None = None,
        offline: bool | None = None,
    ) -> None:
        if reader_fault is not None:
            self.reader_fault = reader_fault
        if pending is not None and offline is not None:
            self.backlog = offline and pending >= self.backlog_warn

    def background(self) -> Pattern | None:
        if self.reader_fault:
            return READER_FAULT
        if self.backlog:
            return BACKLOG
        return None

    def has_work(self) -> bool:
        return bool(self._steps or self._pending) or self.background() is not None

    def next_step(self) -> Step | None:
        """The next step to show, or None when all outputs should be off and idle."""
        if not self._steps and self._pending:
            steps = self._pending.popleft().steps
            self._steps.extend(steps if steps[-1] == OFF else (*steps, OFF))
        self.last_was_one_shot = bool(self._steps)
        if self._steps:
            self._bg_index = 0  # the background starts over after a one-shot
            return self._steps.popleft()
        pattern = self.background()
        if pattern is not self._background:
            self._background, self._bg_index = pattern, 0
        if pattern is None:
            return None
        step = pattern.steps[self._bg_index % len(pattern.steps)]
        self._bg_index += 1
        return step


class Feedback:
    """Plays the sequencer's steps on real (or mock) pins in a background thread.

    The daemon calls :meth:`accepted` / :meth:`cannot_persist` after each read
    and :meth:`set_reader_fault` / :meth:`set_backlog` when its condition
    changes; the first call starts the thread, :meth:`close` ends it.

    ``time_scale`` shortens every step; tests set it small so they run fast
    and still see every state the pins went through.
    """

    def __init__(self, cfg: FeedbackConfig, *, pin_factory: Any, time_scale: float = 1.0) -> None:
        self.cfg = cfg
        self.time_scale = time_scale
        self.sequencer = FeedbackSequencer(cfg.backlog_warn)
        self.idle = threading.Event()  # set while nothing is playing
        self.idle.set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        try:
            self.green = (
                LED(cfg.green_pin, pin_factory=pin_factory) if cfg.green_pin is not None else None
            )
            self.red = (
                LED(cfg.red_pin, pin_factory=pin_factory) if cfg.red_pin is not None else None
            )
            self.buzzer = (
                Buzzer(cfg.buzzer_pin, pin_factory=pin_factory)
                if cfg.buzzer_pin is not None
                else None
            )
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            raise HardwareError(f"feedback: cannot claim its pins: {exc}") from exc

    # --- what the daemon calls -------------------------------------------

    def accepted(self) -> None:
        self.play(ACCEPTED)

    def cannot_persist(self) -> None:
        self.play(CANNOT_PERSIST)

    def set_reader_fault(self, fault: bool) -> None:
        with self._lock:
            self.sequencer.set_condition(reader_fault=fault)
            self._kick()

    def set_backlog(self, pending: int, *, offline: bool) -> None:
        with self._lock:
            self.sequencer.set_condition(pending=pending, offline=offline)
            self._kick()

    def play(self, pattern: Pattern | str) -> None:
        """Show ``pattern`` (or its name, see PATTERNS) once, before any background."""
        if isinstance(pattern, str):
            try:
                pattern = PATTERNS[pattern]
            except KeyError:
                known = ", ".join(PATTERNS)
                raise HardwareError(f"feedback: no pattern {pattern!r} (known: {known})") from None
        with self._lock:
            self.sequencer.push(pattern)
            self._kick()

    # --- the thread ------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="feedback", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.show(OFF)

    def close(self) -> None:
        self._closed = True
        self.stop()
        for device in (self.green, self.red, self.buzzer):
            if device is not None:
                device.close()

    def _kick(self) -> None:  # called with the lock held
        self.idle.clear()
        self._wake.set()
        if self._thread is None and not self._closed:
            self.start()  # the first pattern starts the player

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                step = self.sequencer.next_step()
                one_shot = self.sequencer.last_was_one_shot
                self._wake.clear()
            if step is None:
                self.show(OFF)
                with self._lock:
                    if not self.sequencer.has_work():
                        self.idle.set()
                self._wake.wait()
                continue
            self.show(step)
            seconds = step.seconds * self.time_scale
            if one_shot:
                self._stop.wait(seconds)  # a one-shot always plays out
            else:
                self._wake.wait(seconds)  # a tap or a new condition cuts a background step

    def show(self, step: Step) -> None:
        """Set the outputs to ``step`` (used by the thread and by ``qatysu test feedback``)."""
        for device, on in (
            (self.green, step.green),
            (self.red, step.red),
            (self.buzzer, step.buzzer),
        ):
            if device is None:
                continue
            try:
                device.on() if on else device.off()
            except (GPIOZeroError, OSError) as exc:
                logger.warning("feedback: cannot drive %r: %s", device, exc)
