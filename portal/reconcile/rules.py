"""The reasons and statuses of docs/reconciliation.md: one pure function per reason, one table.

A reason is a check on plain facts: :class:`ReadFacts` (one badge read, lesson
aside), :class:`WindowFacts` (a device during one lesson's window: its reasons go
to each of its reads there) or
:class:`RowFacts` (one child's row for a date). The engine builds the facts from
the center's :class:`~portal.reconcile.index.CenterIndex`, applies
:data:`REASONS` in order and asks :func:`status` for the row's status; reports,
pages and docs/reconciliation.md name the reasons of this table (the tests check
that the docs describe each one and that the engine names none itself).

To add a reason: write its check, add one :class:`Reason` line to
:data:`REASONS` (its place there is its place in every listing), describe it
under "Reasons" in docs/reconciliation.md and label it in portal/web/i18n.py. A
check that needs a fact not computed yet gets a field on its facts class and
one line in the engine that fills it from the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agent.protocol.drivers import HARDWARE_DRIVERS, SIMULATED_DRIVER
from agent.protocol.ntag424 import KIND as SUN_KIND
from portal.reconcile.index import CARD_NOT_AUTHENTICATED, CARD_REPLAYED, Read
from portal.reconcile.model import ReconcileSettings

VERIFIED = "verified"
SUSPECT = "suspect"
CONFIRMED_WITHOUT_PRESENCE = "confirmed_without_presence"
CONFIRMED_DEVICE_OFFLINE = "confirmed_device_offline"
PRESENT_UNPROVEN = "present_unproven"
PRESENT_NOT_CONFIRMED = "present_not_confirmed"
STATUSES = (
    VERIFIED,
    SUSPECT,
    CONFIRMED_WITHOUT_PRESENCE,
    CONFIRMED_DEVICE_OFFLINE,
    PRESENT_UNPROVEN,
    PRESENT_NOT_CONFIRMED,
)
AT_RISK = frozenset({SUSPECT, CONFIRMED_WITHOUT_PRESENCE})  # their price is KZT at risk
# Neither paid as proven nor accused: their price is KZT unverifiable.
UNVERIFIABLE = frozenset({CONFIRMED_DEVICE_OFFLINE, PRESENT_UNPROVEN})


# The facts classes are not frozen: a frozen dataclass's __init__ costs several times
# more, and the engine makes one per read and per row.
@dataclass(slots=True)
class ReadFacts:
    """One badge read and what its center's records say around it, whatever the lesson."""

    read: Read
    doors: tuple[str, ...]  # door sensors named by the device's last boot before the read
    door_open: bool  # one of those doors was open within the door window of the read
    run_badges: int  # distinct badges in the read's run at its device (gaps < burst gap)
    center_id: str = ""
    # The door counts as open at the read only through an ``open`` older than
    # door_open_max (no ``closed`` since, no boot since).
    door_held_open: bool = False
    booted: bool = False  # a boot record of the device at or before the read exists
    # The (reader, driver) pair is listed by that boot record.
    reader_listed: bool = True
    stale_anchor: bool = False  # an anchor older than a receipt the device had been given
    # Distinct badges in the read's run at its reader (gaps under burst_gap_ms), and at
    # its reader at the slower tempo (gaps under burst_slow_gap_ms).
    reader_run_badges: int = 0
    slow_run_badges: int = 0
    # Of the slow run's badges, those read again at the center between pair_min and
    # pair_max before or after (tapped in and out); -1 where the center's children do
    # not tap out (under paired_center_share of its reads paired), so it cannot count.
    slow_run_paired: int = -1
    require_card_auth: bool = False  # the read's center requires cards that prove reads


@dataclass(slots=True)
class WindowFacts:
    """One device of the center during one lesson's window (a reason for each of its reads)."""

    device_id: str
    chain_broken: bool  # its chain has a hole or a refused record in the window
    clone_suspected: bool = False  # a clone sign (interleaved boots, mono back, two addresses)


@dataclass(slots=True)
class RowFacts:
    """One (child, group, date): confirmation, lesson and the evidence found."""

    confirmed: bool
    scheduled: bool  # the group has a lesson that date
    reads: int  # the child's reads in the lesson window
    clean: bool  # at least one of them carries no reason
    offline: bool  # the center's devices were silent for a while during the window
    proven: bool = True  # at least one clean read's time is proven (tight receipt bracket)
    double_presence: bool = False  # the child is also present in an overlapping lesson
    # The child was read in an overlapping lesson elsewhere and this row has no read.
    elsewhere: bool = False
    # No read, but the child was read cleanly at the same center in a lesson that ended
    # at most the margin before this one started (stayed on after one tap): unverifiable.
    carried: bool = False
    schedule_changed_late: bool = False  # the lesson's schedule row changed after its date
    confirmed_early: bool = False  # confirmed_at before the lesson's end
    shared_signer: bool = False  # the signer confirmed for more children than allowed
    implausible_schedule: bool = False  # a lesson longer than lesson_max_min


def card_burst(f: ReadFacts, s: ReconcileSettings) -> bool:
    return (
        f.run_badges >= s.burst_min_uids
        or f.reader_run_badges >= s.burst_reader_min_uids
        or f.slow_run_badges >= s.burst_slow_min_uids
        or (f.slow_run_badges >= s.burst_unpaired_min_uids and 0 <= f.slow_run_paired <= 1)
    )


def no_door_passage(f: ReadFacts, s: ReconcileSettings) -> bool:
    return bool(f.doors) and not f.door_open


def door_held_open(f: ReadFacts, s: ReconcileSettings) -> bool:
    return f.door_held_open


def no_door_sensor(f: ReadFacts, s: ReconcileSettings) -> bool:
    return f.booted and not f.doors and f.center_id not in s.door_optional_centers


def time_untrusted(f: ReadFacts, s: ReconcileSettings) -> bool:
    return not f.read.trusted


def stale_anchor(f: ReadFacts, s: ReconcileSettings) -> bool:
    return f.stale_anchor


def simulated_reader(f: ReadFacts, s: ReconcileSettings) -> bool:
    return f.read.driver.casefold() == SIMULATED_DRIVER


def unknown_reader(f: ReadFacts, s: ReconcileSettings) -> bool:
    driver = f.read.driver.casefold()
    if driver == SIMULATED_DRIVER:
        return False  # simulated_reader says it
    return driver not in HARDWARE_DRIVERS or not f.reader_listed


def card_not_authenticated(f: ReadFacts, s: ReconcileSettings) -> bool:
    card = f.read
    if card.card_check == CARD_NOT_AUTHENTICATED:
        return True
    return f.require_card_auth and card.card_kind != SUN_KIND


def card_replayed(f: ReadFacts, s: ReconcileSettings) -> bool:
    # Known only once every center's reads of the card are ordered (portal.reconcile.cards).
    return f.read.card_check == CARD_REPLAYED


def chain_integrity(f: WindowFacts, s: ReconcileSettings) -> bool:
    return f.chain_broken


def device_clone_suspected(f: WindowFacts, s: ReconcileSettings) -> bool:
    return f.clone_suspected


def double_presence(f: RowFacts, s: ReconcileSettings) -> bool:
    return f.double_presence


def no_lesson_scheduled(f: RowFacts, s: ReconcileSettings) -> bool:
    return f.confirmed and not f.scheduled


def schedule_changed_late(f: RowFacts, s: ReconcileSettings) -> bool:
    return f.schedule_changed_late


def confirmed_early(f: RowFacts, s: ReconcileSettings) -> bool:
    return f.confirmed_early


def shared_signer(f: RowFacts, s: ReconcileSettings) -> bool:
    return f.shared_signer


def implausible_schedule(f: RowFacts, s: ReconcileSettings) -> bool:
    return f.implausible_schedule


F = TypeVar("F", ReadFacts, WindowFacts, RowFacts)


@dataclass(frozen=True, slots=True)
class Reason(Generic[F]):
    """One line of the table: a reason, what it reads, its check and what it does to a row."""

    name: str
    facts: type[F]  # what the check reads: a read, a read in a lesson window, or a row
    check: Callable[[F, ReconcileSettings], bool]
    description: str
    # The status it leads to: a read or window reason discounts the read (a confirmed
    # row whose every read has one is suspect); a row reason sets the row's status.
    effect: str


REASONS: tuple[Reason[Any], ...] = (
    Reason(
        "card_burst",
        ReadFacts,
        card_burst,
        "one of a run of distinct badges read at one device too fast for children to tap",
        SUSPECT,
    ),
    Reason(
        "no_door_passage",
        ReadFacts,
        no_door_passage,
        "the device has a door sensor and no door was open within 60 s of the read",
        SUSPECT,
    ),
    Reason(
        "door_held_open",
        ReadFacts,
        door_held_open,
        "the door counts as open only through an opening older than door_open_max",
        SUSPECT,
    ),
    Reason(
        "no_door_sensor",
        ReadFacts,
        no_door_sensor,
        "the device's latest boot record at or before the read lists no door sensor",
        SUSPECT,
    ),
    Reason(
        "time_untrusted",
        ReadFacts,
        time_untrusted,
        "the read's time lies outside the bounds its receipts give",
        SUSPECT,
    ),
    Reason(
        "stale_anchor",
        ReadFacts,
        stale_anchor,
        "the read names an anchor older than a receipt the device had already been given",
        SUSPECT,
    ),
    Reason(
        "simulated_reader",
        ReadFacts,
        simulated_reader,
        "the read came from the simulated (test) driver",
        SUSPECT,
    ),
    Reason(
        "unknown_reader",
        ReadFacts,
        unknown_reader,
        "the driver is no known hardware driver, or its boot record did not list the reader",
        SUSPECT,
    ),
    Reason(
        "card_not_authenticated",
        ReadFacts,
        card_not_authenticated,
        "a card registered as ntag424-sun sent no valid proof of the read (none, undecryptable, "
        "wrong UID or MAC, or revoked), or the center requires such cards and this is none",
        SUSPECT,
    ),
    Reason(
        "card_replayed",
        ReadFacts,
        card_replayed,
        "the card's read counter is not above one already accepted for that card: an old "
        "message sent again",
        SUSPECT,
    ),
    Reason(
        "chain_integrity",
        WindowFacts,
        chain_integrity,
        "the device's chain of records is broken during the lesson window",
        SUSPECT,
    ),
    Reason(
        "device_clone_suspected",
        WindowFacts,
        device_clone_suspected,
        "the device's records show a second device with its key during the lesson window",
        SUSPECT,
    ),
    Reason(
        "double_presence",
        RowFacts,
        double_presence,
        "the child is also present in an overlapping lesson elsewhere, or travelled impossibly",
        SUSPECT,
    ),
    Reason(
        "no_lesson_scheduled",
        RowFacts,
        no_lesson_scheduled,
        "a confirmation on a date when the group has no lesson",
        CONFIRMED_WITHOUT_PRESENCE,
    ),
    Reason(
        "schedule_changed_late",
        RowFacts,
        schedule_changed_late,
        "the lesson's schedule or price row was created or changed after its date, unapproved",
        SUSPECT,
    ),
    Reason(
        "confirmed_early",
        RowFacts,
        confirmed_early,
        "the confirmation was signed before the lesson ended",
        SUSPECT,
    ),
    Reason(
        "shared_signer",
        RowFacts,
        shared_signer,
        "the signer confirmed for more children than a family has",
        SUSPECT,
    ),
    Reason(
        "implausible_schedule",
        RowFacts,
        implausible_schedule,
        "a lesson longer than lesson_max_min, admitted with --allow-long",
        SUSPECT,
    ),
)
BY_NAME = {r.name: r for r in REASONS}
READ_REASONS: tuple[Reason[ReadFacts], ...] = tuple(r for r in REASONS if r.facts is ReadFacts)
WINDOW_REASONS: tuple[Reason[WindowFacts], ...] = tuple(
    r for r in REASONS if r.facts is WindowFacts
)
ROW_REASONS: tuple[Reason[RowFacts], ...] = tuple(r for r in REASONS if r.facts is RowFacts)
_ORDER = {r.name: i for i, r in enumerate(REASONS)}
_ROW_EFFECT = {r.name: r.effect for r in ROW_REASONS}


def ordered(reasons: Iterable[str]) -> tuple[str, ...]:
    """Distinct reasons in the order of :data:`REASONS`."""
    return tuple(sorted(set(reasons), key=_ORDER.__getitem__))


def status(f: RowFacts, reasons: tuple[str, ...]) -> str:
    """The row's status (docs/reconciliation.md, Statuses) from its facts and ``reasons``.

    ``reasons`` are the row's: its row reasons, and those of its reads when none is clean.
    """
    if not f.confirmed:
        return PRESENT_NOT_CONFIRMED
    for name in reasons:
        effect = _ROW_EFFECT.get(name)
        if effect is not None:
            return effect
    if f.reads:
        if not f.clean:
            return BY_NAME[reasons[0]].effect
        return VERIFIED if f.proven else PRESENT_UNPROVEN
    if f.elsewhere:
        return CONFIRMED_WITHOUT_PRESENCE  # the child was read at the same time elsewhere
    if f.carried:
        return PRESENT_UNPROVEN  # stayed on from the lesson before: neither proven nor accused
    return CONFIRMED_DEVICE_OFFLINE if f.offline else CONFIRMED_WITHOUT_PRESENCE
