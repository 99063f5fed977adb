"""Card bursts per device across readers, per reader, and at the slower tempo.

Thresholds (docs/reconciliation.md, bench/bursts.py): gaps under 1.5 s with 5 badges at
one device or 4 at one reader; gaps under 3.1 s with 7 badges at one reader, or with 5
at a center whose children tap out when at most one of the run's cards was read there
again (the cards were used once).
"""

from __future__ import annotations

from .support import END, MIN, START, Log, S, confirm, run, sorted_log, status

K1 = "04A1B2C3"  # the first card of every stack below belongs to K1
TWO = {"main": "mfrc522", "side": "mfrc522"}


def _stack(
    gaps_ms: list[int],
    readers: list[str] | None = None,
    propped: bool = False,
    others: int = 0,
    stack_out: int = 0,
) -> str:
    """K1's card then one more card after each gap, behind one door opening (or propped).

    ``others``: children of other badges who tap in alone before the lesson and out
    after it; ``stack_out``: the stack's first cards tapped out too."""
    log = Log()
    for k in range(others):  # alone: a minute apart, in and out each with the door
        for at in (START - 25 * MIN + k * MIN, END + 2 * MIN + k * MIN):
            log.door(at - 2 * S, "open")
            log.badge(at, f"04EE{k:04X}")
            log.door(at + 6 * S, "closed")
    log.boot_record(START - 2 * 3600 * S, readers=TWO)
    log.heartbeats(START - 2 * 3600 * S + MIN, END + 3600 * S)
    t = START - 10 * MIN
    if propped:
        log.door(START - 30 * MIN, "open")
        log.door(START + 20 * MIN, "closed")
    else:
        log.door(t - 2 * S, "open")
    times = [t]
    for gap in gaps_ms:
        times.append(times[-1] + gap)
    for k, at in enumerate(times):
        reader = (readers or ["main"])[k % len(readers or ["main"])]
        log.badge(at, K1 if k == 0 else f"04FF{k:04X}", reader=reader)
    if not propped:
        log.door(times[-1] + 8 * S, "closed")
    for k in range(stack_out):
        at = END + 40 * S + k * 5 * S
        log.door(at - 2 * S, "open")
        log.badge(at, K1 if k == 0 else f"04FF{k:04X}")
        log.door(at + 4 * S, "closed")
    log.log = sorted_log(log.log)
    got, reasons = status(run([log.log], [confirm()]))
    assert reasons in ((), ("card_burst",)), reasons
    return got


def test_a_split_stack_across_two_readers_is_a_burst_two_queues_are_not() -> None:
    assert _stack([900, 1100, 800, 1300], ["main", "side"]) == "suspect"
    # Four: two clusters tapping at once at the two readers of one device.
    assert _stack([700, 1400, 600], ["main", "side"]) == "verified"


def test_four_fast_badges_at_one_reader_are_a_burst() -> None:
    assert _stack([1000, 1400, 1200]) == "suspect"
    assert _stack([1000, 1500, 1200]) == "verified"  # one gap of 1.5 s breaks the run


def test_runs_of_four_behind_a_propped_door_are_each_a_burst() -> None:
    gaps = [900, 1100, 1000, 30_000, 800, 1200, 1000, 45_000, 1300, 700, 900]
    assert _stack(gaps, propped=True) == "suspect"


def test_a_slow_stack_of_seven_at_one_reader_is_a_burst_an_honest_cluster_is_not() -> None:
    gaps = [1600, 3000, 2200, 2900, 1700, 2500]
    assert _stack(gaps) == "suspect"
    assert _stack(gaps, propped=True) == "suspect"
    # Six at that tempo pass: an honest cluster of six looks the same.
    assert _stack(gaps[:-1]) == "verified"
    assert _stack([2000, 3500, 1200, 2800, 3900]) == "verified"  # taps 1-4 s apart
    # A gap of 3.1 s breaks a slow run.
    assert _stack([1600, 3000, 2200, 3100, 1700, 2500]) == "verified"


def test_a_slow_stack_of_five_used_once_is_a_burst_where_children_tap_out() -> None:
    gaps = [1600, 3000, 2200, 2900]
    # Twelve other children tap in and out: the center's children do tap out, so five
    # cards in a slow run that none of them ever taps again were carried in together.
    assert _stack(gaps, others=12) == "suspect"
    assert _stack(gaps, others=12, stack_out=1) == "suspect"  # one may forget: K1 left
    # Two of the five tapped out: children who came together and left (honest).
    assert _stack(gaps, others=12, stack_out=2) == "verified"
    assert _stack(gaps[:-1], others=12) == "verified"  # four: siblings and friends
    # Where children do not tap out (no departures at all), the pairing says nothing.
    assert _stack(gaps) == "verified"
