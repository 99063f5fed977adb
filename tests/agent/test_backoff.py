"""The one backoff: doubling to a cap, optional full jitter, reset on success."""

from __future__ import annotations

import pytest

from agent.backoff import Backoff


def test_without_jitter_the_delay_doubles_to_the_cap_and_success_starts_over() -> None:
    backoff = Backoff(0.5, 30.0)
    assert [backoff.failure() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    backoff.success()
    assert backoff.failure() == 0.5


def test_with_jitter_the_delay_is_drawn_below_the_bound() -> None:
    backoff = Backoff(1.0, 60.0, rand=lambda: 0.25)
    assert [backoff.failure() for _ in range(3)] == [0.25, 0.5, 1.0]
    assert backoff.ceiling() == 8.0


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (2.0, 1.0)])
def test_nonsense_is_refused(initial: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, cap)
