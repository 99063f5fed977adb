"""Reads of cards that prove them (NTAG 424 DNA SUN): card_not_authenticated, card_replayed."""

from __future__ import annotations

from datetime import time
from typing import Any

from portal.reconcile.cards import CardBook, CardKey
from portal.reconcile.engine import CenterInput, Result, reconcile
from portal.reconcile.lessons import ScheduleEntry
from portal.reconcile.model import Confirmation, DeviceLog, Member, ReconcileSettings
from portal.reconcile.report import row_dict
from tests.cards.sun import sun_field
from tests.reconcile.support import (
    DAY,
    END,
    MIN,
    SCHEDULE,
    START,
    ZONE,
    Log,
    confirm,
    sorted_log,
)

UID = "04C767F2066180"
OTHER = "04C767F2066181"
META = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
FILE = bytes.fromhex("FFEEDDCCBBAA99887766554433221100")
PLAIN = "04A1B2C4"  # K2's UID-only card
MEMBERS = [
    Member("K1", "G1", "C1", frozenset({UID})),
    Member("K2", "G1", "C1", frozenset({PLAIN})),
]
BOOK = CardBook({UID: CardKey(UID, META, FILE)})


def sun(counter: int, uid: str = UID, meta: bytes = META, file: bytes = FILE) -> dict[str, str]:
    return sun_field(meta, file, bytes.fromhex(uid), counter)


def _log(device: str = "D1", center: str = "C1") -> Log:
    log = Log(device, center)
    log.boot_record(START - 60 * MIN)
    log.heartbeats(START - 40 * MIN, END + 10 * MIN)
    return log


def badge(log: Log, at: int, uid: str, card: dict[str, Any] | None) -> None:
    data: dict[str, Any] = {"reader": "main", "driver": "mfrc522", "uid": uid, "uid_len": 7}
    if card is not None:
        data["card"] = card
    log.add("badge", at, data)
    log.door(at - 5_000, "open")


def run(
    logs: list[DeviceLog],
    book: CardBook | None = BOOK,
    confirmations: list[Confirmation] | None = None,
    schedule: list[ScheduleEntry] | None = None,
    observe: Any = None,
) -> Result:
    return reconcile(
        DAY,
        DAY,
        schedule=schedule or SCHEDULE,
        members=MEMBERS,
        confirmations=confirmations if confirmations is not None else [confirm("K1")],
        load_center=lambda c: CenterInput(
            c, [sorted_log(lg) for lg in logs if lg.center_id == c], []
        ),
        settings=ReconcileSettings(),
        zone=ZONE,
        cards=book,
        observe=observe,
    )


def row_of(result: Result, child: str = "K1") -> Any:
    [row] = [r for r in result.rows if r.child_id == child]
    return row


def test_a_genuine_sun_read_is_verified_with_its_card_evidence() -> None:
    log = _log()
    badge(log, START + 2 * MIN, UID, sun(7))
    row = row_of(run([log.log]))
    assert (row.status, row.reasons) == ("verified", ())
    [read] = row_dict(row, ZONE)["evidence"]["records"]
    assert read["card"] == {"kind": "ntag424-sun", "check": "proven", "counter": 7, "jump": None}


def test_without_the_card_book_nothing_is_checked() -> None:
    log = _log()
    badge(log, START + 2 * MIN, UID, None)
    assert row_of(run([log.log], book=None)).status == "verified"


def test_reads_that_do_not_prove_themselves_are_not_authenticated() -> None:
    wrong_mac = dict(sun(7), mac="00" * 8)
    cases = {
        "no card field": None,
        "wrong MAC": wrong_mac,
        "wrong UID": sun(7, uid=OTHER),  # a message of another card, under the same keys
        "undecryptable": sun(7, meta=bytes(16)),
        "malformed": {"kind": "ntag424-sun", "picc": "XYZ", "mac": "00"},
    }
    for what, card in cases.items():
        log = _log()
        badge(log, START + 2 * MIN, UID, card)
        row = row_of(run([log.log]))
        assert (row.status, row.reasons) == ("suspect", ("card_not_authenticated",)), what


def test_one_good_read_among_bad_ones_keeps_the_row_verified() -> None:
    log = _log()
    badge(log, START + 2 * MIN, UID, None)
    badge(log, START + 4 * MIN, UID, sun(3))
    assert row_of(run([log.log])).status == "verified"


def test_a_replayed_counter_same_or_lower_is_card_replayed() -> None:
    for counter in (5, 4):
        log = _log()
        badge(log, START - 20 * MIN, UID, sun(5))  # in the window (margin 30 min)
        badge(log, START + 2 * MIN, UID, sun(counter))
        row = row_of(run([log.log]))
        checks = [r.card_check for r, _ in row.reads]
        assert checks == ["proven", "replayed"], counter
        assert row.reads[1][1] == ("card_replayed",)
        assert row.status == "verified"  # the first read stands


def test_a_replay_alone_makes_the_row_suspect() -> None:
    book = CardBook({UID: CardKey(UID, META, FILE, floor=9)})  # activated at counter 9
    log = _log()
    badge(log, START + 2 * MIN, UID, sun(9))
    row = row_of(run([log.log], book))
    assert (row.status, row.reasons) == ("suspect", ("card_replayed",))


def test_counters_accepted_in_earlier_periods_count() -> None:
    book = CardBook(
        {UID: CardKey(UID, META, FILE)}, accepted={UID: [(START - 86_400_000, "D9", 4, 30)]}
    )
    log = _log()
    badge(log, START + 2 * MIN, UID, sun(12))  # a message copied before the earlier read
    row = row_of(run([log.log], book))
    assert (row.status, row.reasons) == ("suspect", ("card_replayed",))
    log = _log()
    badge(log, START + 2 * MIN, UID, sun(31))
    result = run([log.log], book)
    assert row_of(result).status == "verified"
    [(uid, device, _seq, counter, at)] = result.card_accepted
    assert (uid, device, counter, at) == (UID, "D1", 31, START + 2 * MIN)


def test_replay_across_devices_and_a_read_released_later() -> None:
    """Order is proven time, whatever the device or the upload: the later read with the
    lower counter is the replay, even on another device whose records arrive later."""
    first, second = _log("D1"), _log("D2")
    badge(first, START + 10 * MIN, UID, sun(20))
    badge(second, START + 2 * MIN, UID, sun(19))  # earlier, lower: genuine
    badge(second, START + 20 * MIN, UID, sun(18))  # later, lower: a copied message
    row = row_of(run([second.log, first.log]))
    got = sorted((r.time_ms, r.card_check, r.card_counter) for r, _ in row.reads)
    assert [c for _, c, _ in got] == ["proven", "proven", "replayed"]
    assert [n for _, _, n in got] == [19, 20, 18]


def test_replay_at_another_center_is_caught_whichever_center_runs_first() -> None:
    home = _log("D1", "C1")
    badge(home, START + 2 * MIN, UID, sun(40))
    away = _log("D7", "A0")  # center A0 (a lesson of another group) runs before C1
    badge(away, START + 50 * MIN, UID, sun(40))
    schedule = [*SCHEDULE, ScheduleEntry("G9", "A0", 1, time(15, 0), time(16, 30), 3000)]
    seen: list[Any] = []
    result = run(
        [home.log, away.log],
        schedule=schedule,
        observe=lambda center, index: seen.append((center, list(index.reads))),
    )
    assert [c for c, _ in seen] == ["A0", "C1"]
    assert row_of(result).status == "verified"
    [(_, [away_read])] = [(c, reads) for c, reads in seen if c == "A0"]
    assert away_read.card_check == "replayed"  # the later one, judged after C1 was read
    assert [(a[1], a[3]) for a in result.card_accepted] == [("D1", 40)]


def test_a_counter_jump_between_reads_at_the_club_is_in_the_evidence() -> None:
    log = _log()
    badge(log, START - 20 * MIN, UID, sun(3))
    badge(log, START + 2 * MIN, UID, sun(9))  # five reads elsewhere in between
    records = row_dict(row_of(run([log.log])), ZONE)["evidence"]["records"]
    assert [r["card"]["jump"] for r in records] == [None, 5]


def test_require_card_auth_refuses_uid_only_cards_there() -> None:
    log = _log()
    badge(log, START + 2 * MIN, PLAIN, None)
    book = CardBook(BOOK.keys, require_auth=frozenset({"C1"}))
    row = row_of(run([log.log], book, [confirm("K2")]), "K2")
    assert (row.status, row.reasons) == ("suspect", ("card_not_authenticated",))
    row = row_of(run([log.log], CardBook(BOOK.keys, frozenset({"C9"})), [confirm("K2")]), "K2")
    assert row.status == "verified"


def test_an_honest_center_with_uid_cards_is_unaffected() -> None:
    """False-positive check: UID-only cards, require_card_auth off, a registry present."""
    log = _log()
    badge(log, START + 2 * MIN, PLAIN, None)
    badge(log, START + 3 * MIN, PLAIN, {"kind": "something-else"})
    with_book = run([log.log], BOOK, [confirm("K2")])
    without = run([log.log], None, [confirm("K2")])
    assert row_of(with_book, "K2").status == row_of(without, "K2").status == "verified"
    assert row_of(with_book, "K2").reasons == ()


def test_a_revoked_card_fails_from_its_revocation() -> None:
    book = CardBook({UID: CardKey(UID, META, FILE, until_ms=START)})
    log = _log()
    badge(log, START - 20 * MIN, UID, sun(1))  # before the revocation: its own
    badge(log, START + 2 * MIN, UID, sun(2))
    row = row_of(run([log.log], book))
    assert [r.card_check for r, _ in row.reads] == ["proven", "not_authenticated"]


def test_keys_are_never_in_a_repr() -> None:
    assert META.hex() not in repr(BOOK.keys[UID]).lower()
