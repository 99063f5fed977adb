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

from portal.reconcile.index import Read
from portal.reconcile.model import ReconcileSettings

VERIFIED = "verified"
SUSPECT = "suspect"
CONFIRMED_WITHOUT_PRESENCE = "confirmed_without_presence"
CONFIRMED_DEVICE_OFFLINE = "confirmed_device_offline"
PRESENT_NOT_CONFIRMED = "present_not_confirmed"
STATUSES = (
    VERIFIED,
    SUSPECT,
    CONFIRMED_WITHOUT_PRESENCE,
    CONFIRMED_DEVICE_OFFLINE,
    PRESENT_NOT_CONFIRMED,
)
AT_RISK = frozenset({SUSPECT, CONFIRMED_WITHOUT_PRESENCE})  # their price is KZT at risk


# The facts classes are not frozen: a frozen dataclass's __init__ costs several times
# more, and the engine makes one per read and per row.
@dataclass(slots=True)
class ReadFacts:
    """One badge read and what its center's records say around it, whatever the lesson."""

    read: Read
    doors: tuple[str, ...]  # door sensors named by the device's last boot before the read
    door_open: bool  # one of those doors was open within the door window of the read
    run_badges: int  # distinct badges in the read's run at its reader (gaps < burst gap)


@dataclass(slots=True)
class WindowFacts:
    """One device of the center during one lesson's window (a reason for each of its reads)."""

    device_id: str
    chain_broken: bool  # its chain has a hole or a refused record in the window


@dataclass(slots=True)
class RowFacts:
    """One (child, group, date): confirmation, lesson and the evidence found."""

    confirmed: bool
    scheduled: bool  # the group has a lesson that date
    reads: int  # the child's reads in the lesson window
    clean: bool  # at least one of them carries no reason
    offline: bool  # the center's devices were silent for a while during the window


def card_burst(f: ReadFacts, s: ReconcileSettings) -> bool:
    return f.run_badges >= s.burst_min_uids


def no_door_passage(f: ReadFacts, s: ReconcileSettings) -> bool:
    return bool(f.doors) and not f.door_open


def time_untrusted(f: ReadFacts, s: ReconcileSettings) -> bool:
    return not f.read.trusted


def simulated_reader(f: ReadFacts, s: ReconcileSettings) -> bool:
    return f.read.driver == "simulated"


def chain_integrity(f: WindowFacts, s: ReconcileSettings) -> bool:
    return f.chain_broken


def no_lesson_scheduled(f: RowFacts, s: ReconcileSettings) -> bool:
    return f.confirmed and not f.scheduled


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
        "one of at least 5 badges read at a reader less than 1.5 s apart",
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
        "time_untrusted",
        ReadFacts,
        time_untrusted,
        "the read's time cannot be checked against portal receipts",
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
        "chain_integrity",
        WindowFacts,
        chain_integrity,
        "the device's chain of records is broken during the lesson window",
        SUSPECT,
    ),
    Reason(
        "no_lesson_scheduled",
        RowFacts,
        no_lesson_scheduled,
        "a confirmation on a date when the group has no lesson",
        CONFIRMED_WITHOUT_PRESENCE,
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
        return VERIFIED if f.clean else BY_NAME[reasons[0]].effect
    return CONFIRMED_DEVICE_OFFLINE if f.offline else CONFIRMED_WITHOUT_PRESENCE
