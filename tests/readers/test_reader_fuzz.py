"""Fuzzed bytes through a real pty into a running rdm6300 reader."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.clock import ManualClock
from agent.hardware.events import BadgeRead, ReaderStatus
from agent.readers.framing import em4100_frame
from agent.readers.rdm6300 import Rdm6300Reader
from tests.hardware.helpers import WAIT_S, Pty, Running


def test_noise_never_ends_the_reader_loop_and_frames_are_found() -> None:
    clock = ManualClock()
    pty = Pty()
    reader = Rdm6300Reader("fuzz", pty.name, clock=clock)
    try:
        with Running(reader) as run:
            assert reader.port_open.wait(WAIT_S)

            @given(noise=st.binary(max_size=120), uid=st.binary(min_size=5, max_size=5))
            @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
            def one(noise: bytes, uid: bytes) -> None:
                clock.advance(1.0)  # a new presentation each time
                pty.write(noise + em4100_frame(uid.hex()))
                want = uid.hex().upper()
                seen = run.wait_for(lambda e: isinstance(e, BadgeRead) and e.uid == want)
                assert not any(isinstance(e, ReaderStatus) for e in seen)

            one()
            assert run.thread.is_alive()
    finally:
        pty.close()
