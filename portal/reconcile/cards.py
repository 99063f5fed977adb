"""Cards that prove their reads (NTAG 424 DNA SUN): the check of each read and the
city-wide order of each card's counters (docs/reconciliation.md, ``card_not_authenticated``
and ``card_replayed``; docs/cards.md).

A read of a card registered as ``ntag424-sun`` is card-proven when its record's
``card`` object holds a SUN message that decrypts to the record's UID and whose MAC
verifies (:func:`check_reads`), and its counter is greater than every counter
already accepted for that card, reads ordered by proven time, then device, then seq
(:func:`order_counters`). Counters accepted in earlier periods come in through
:attr:`CardBook.accepted` (the store keeps them, decision 0921). The order is
city-wide: a message copied at one club and replayed at another is caught wherever
each center falls in the engine's loop, so this pass runs once after every center,
like :mod:`.presence`, and re-judges the rows holding a replayed read.

Pure: keys come in as bytes in :class:`CardBook`, nothing is logged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.protocol.ntag424 import KIND, check_sun, sun_from_card_field
from portal.reconcile import rules
from portal.reconcile.index import (
    CARD_AUTHENTIC as AUTHENTIC,
)
from portal.reconcile.index import (
    CARD_NOT_AUTHENTICATED as NOT_AUTHENTICATED,
)
from portal.reconcile.index import (
    CARD_PROVEN as PROVEN,
)
from portal.reconcile.index import (
    CARD_REPLAYED as REPLAYED,
)
from portal.reconcile.index import Read
from portal.reconcile.model import ReconcileSettings

if TYPE_CHECKING:
    from portal.reconcile.engine import Row

__all__ = [
    "AUTHENTIC",
    "NOT_AUTHENTICATED",
    "PROVEN",
    "REPLAYED",
    "CardBook",
    "CardKey",
    "check_reads",
    "order_counters",
    "rejudge_replays",
]


@dataclass(frozen=True, slots=True)
class CardKey:
    """A registered SUN card's read keys and what bounds its counters."""

    uid: str  # normalised, uppercase hex
    meta_read: bytes
    file_read: bytes
    floor: int = -1  # the counter accepted at activation (-1: none, e.g. imported)
    until_ms: int | None = None  # revoked or replaced then: later reads are not its own
    kind: str = KIND

    def __repr__(self) -> str:  # keys never reach a log or a report
        return f"CardKey({self.uid!r}, floor={self.floor}, until_ms={self.until_ms})"


@dataclass(slots=True)
class CardBook:
    """The city's card registry as the reconciliation needs it."""

    keys: Mapping[str, CardKey] = field(default_factory=dict)
    # Centers with require_card_auth: reads of other cards there are not authenticated.
    require_auth: frozenset[str] = frozenset()
    # Counters accepted before the period, per UID: (time_ms, device_id, seq, counter).
    accepted: Mapping[str, Sequence[tuple[int, str, int, int]]] = field(default_factory=dict)


def check_reads(reads: Iterable[Read], book: CardBook) -> None:
    """Set ``card_check`` and ``card_counter`` of each read of a registered card."""
    keys = book.keys
    for read in reads:
        key = keys.get(read.uid)
        if key is None:
            continue
        read.card_kind = key.kind
        if key.until_ms is not None and read.time_ms >= key.until_ms:
            read.card_check = NOT_AUTHENTICATED  # revoked: the card is no longer the child's
            continue
        message = sun_from_card_field(read.card)
        if message is None:
            read.card_check = NOT_AUTHENTICATED
            continue
        verdict = check_sun(key.meta_read, key.file_read, bytes.fromhex(read.uid), message)
        read.card_counter = verdict.counter
        read.card_check = AUTHENTIC if verdict.authentic else NOT_AUTHENTICATED


def order_counters(
    reads: Iterable[tuple[Read, str]], book: CardBook
) -> list[tuple[str, str, int, int, int]]:
    """Order every authentic read (with its center) per card; mark replays, set jumps.

    Returns the reads accepted, as (uid, device_id, seq, counter, time_ms), for the
    store to keep. A jump is how far the counter moved since the card's previous
    accepted read at the same center, less one: the reads made elsewhere in between.
    """
    by_card: dict[str, list[tuple[int, str, int, int, Read | None, str]]] = defaultdict(list)
    loaded: set[tuple[str, str, int]] = set()
    for r, where in reads:
        if r.card_check != AUTHENTIC or r.card_counter is None:
            continue
        by_card[r.uid].append((r.time_ms, r.device_id, r.seq, r.card_counter, r, where))
        loaded.add((r.uid, r.device_id, r.seq))
    for uid, earlier in book.accepted.items():
        if uid not in by_card:
            continue  # only the cards read in this period need their past
        for t, dev, seq, counter in earlier:
            if (uid, dev, seq) not in loaded:
                by_card[uid].append((t, dev, seq, counter, None, ""))
    accepted: list[tuple[str, str, int, int, int]] = []
    for uid, entries in by_card.items():
        entries.sort(key=lambda e: (e[0], e[1], e[2]))
        key = book.keys.get(uid)
        highest = key.floor if key is not None else -1
        at_center: dict[str, int] = {}
        for t, dev, seq, counter, read, center in entries:
            if counter <= highest:
                if read is not None:
                    read.card_check = REPLAYED
                continue
            highest = counter
            if read is None:
                continue
            read.card_check = PROVEN
            previous = at_center.get(center)
            read.card_jump = None if previous is None else counter - previous - 1
            at_center[center] = counter
            accepted.append((uid, dev, seq, counter, t))
    return accepted


def rejudge_replays(rows: Sequence[Row], settings: ReconcileSettings) -> None:
    """Give ``card_replayed`` to each replayed read of each row and re-derive the row."""
    for row in rows:
        if row.facts is None or not any(r.card_check == REPLAYED for r, _ in row.reads):
            continue
        row.reads = tuple(
            (r, rules.ordered([*reasons, "card_replayed"]) if r.card_check == REPLAYED else reasons)
            for r, reasons in row.reads
        )
        for read, _ in row.reads:
            if read.card_check == REPLAYED and "card_replayed" not in read.reasons:
                read.reasons = rules.ordered([*read.reasons, "card_replayed"])
        f = row.facts
        f.clean = any(not reasons for _, reasons in row.reads)
        f.proven = any(r.proven for r, reasons in row.reads if not reasons)
        union = () if f.clean else rules.ordered(x for _, rs in row.reads for x in rs)
        fired = [r.name for r in rules.ROW_REASONS if r.check(f, settings)]
        row.reasons = rules.ordered([*union, *fired]) if fired else union
        row.status = rules.status(f, row.reasons)
