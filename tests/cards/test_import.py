"""``cards import``: good rows registered with keys sealed at rest; a bad row names file,
line and column and applies nothing; the same file again changes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select

from portal.cards.registry import card_book, import_cards, list_cards
from portal.db.schema import cards
from portal.exceptions import ImportFileError
from portal.keys import load_or_create_card_master
from portal.state import Portal

META = "00112233445566778899AABBCCDDEEFF"
FILE = "FFEEDDCCBBAA99887766554433221100"
GOOD = (
    "badge_uid,kind,meta_key,file_key\n"
    f"04C767F2066180,ntag424-sun,{META},{FILE}\n"
    f"04:C7:67:F2:06:61:81,ntag424-sun,{FILE},{META}\n"
).encode()


def _count(portal: Portal) -> int:
    with portal.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(cards)).scalar_one())


def _master(portal: Portal) -> bytes:
    return load_or_create_card_master(portal.settings.data_dir)


def test_good_rows_then_the_same_file_again(
    portal: Portal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    done = import_cards(portal.engine, _master(portal), GOOD, "cards.csv", now=1)
    assert (done.rows, done.added) == (2, 2)
    again = import_cards(portal.engine, _master(portal), GOOD, "cards.csv", now=2)
    assert (again.added, again.unchanged) == (0, 2)
    assert _count(portal) == 2
    listed = list_cards(portal.engine)
    assert [(r["uid"], r["state"], r["key_source"]) for r in listed] == [
        ("04C767F2066180", "active", "imported"),
        ("04C767F2066181", "active", "imported"),
    ]
    with portal.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(select(cards)) for v in row)
    for key in (META, FILE):
        assert key.lower() not in stored.lower()  # sealed at rest
        assert key.lower() not in str(listed).lower()
        assert key.lower() not in caplog.text.lower()
    book = card_book(portal.engine, portal.settings.data_dir)
    assert book.keys["04C767F2066180"].meta_read == bytes.fromhex(META)
    assert book.keys["04C767F2066181"].file_read == bytes.fromhex(META)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "badge_uid,kind,meta_key,file_key\n04C767F2066182,ntag424-sun,{m},{f}\n"
            "04C767F2066183,ntag424-sun,{m}00,{f}\n",
            "cards.csv:3:3: meta_key: not an AES-128 key",
        ),
        (
            "badge_uid,kind,meta_key,file_key\n04C767F2066182,ntag424-sun,{m},{f}\n"
            "04C767F2066183,mifare,{m},{f}\n",
            "cards.csv:3:2: kind:",
        ),
        (
            "badge_uid,kind,meta_key,file_key\n04C767F2066182,ntag424-sun,{m},{f}\n"
            "04A1B2C3,ntag424-sun,{m},{f}\n",
            "cards.csv:3:1: badge_uid: an NTAG 424 DNA UID is 7",
        ),
        (
            "badge_uid,kind,meta_key,file_key\n04C767F2066182,ntag424-sun,{m},{f}\n"
            "04C767F2066182,ntag424-sun,{f},{m}\n",
            "cards.csv:3:1: badge_uid 04C767F2066182 repeats",
        ),
        ("badge_uid,kind,meta_key\n04C767F2066182,ntag424-sun,{m}\n", "cards.csv:1:4: missing"),
        (
            "badge_uid,kind,meta_key,file_key\n04C767F2066182,ntag424-sun,{m},zz{f}\n",
            "cards.csv:2:4: file_key",
        ),
    ],
)
def test_a_bad_row_applies_nothing(portal: Portal, text: str, where: str) -> None:
    data = text.format(m=META, f=FILE).encode()
    with pytest.raises(ImportFileError) as caught:
        import_cards(portal.engine, _master(portal), data, "cards.csv", now=1)
    assert str(caught.value).startswith(where), str(caught.value)
    assert META.lower() not in str(caught.value).lower()
    assert FILE.lower() not in str(caught.value).lower()
    assert _count(portal) == 0


def test_a_known_card_with_other_keys_is_refused(portal: Portal) -> None:
    import_cards(portal.engine, _master(portal), GOOD, "cards.csv", now=1)
    other = GOOD.replace(META.encode(), b"A" * 32, 1) + (
        f"04C767F2066199,ntag424-sun,{META},{FILE}\n".encode()
    )
    with pytest.raises(ImportFileError, match=r"other\.csv:2:1: badge_uid 04C767F2066180"):
        import_cards(portal.engine, _master(portal), other, "other.csv", now=2)
    assert _count(portal) == 2  # the new row of the bad file was not applied


def test_cli_import_and_list_never_print_keys(
    portal: Portal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from portal.cli import main

    csv = tmp_path / "cards.csv"
    csv.write_bytes(GOOD)
    base = ["--data-dir", str(portal.settings.data_dir)]
    if portal.settings.db_url:
        base += ["--db", portal.settings.db_url]
    assert main([*base, "cards", "import", str(csv)]) == 0
    assert main([*base, "cards", "import", str(csv)]) == 0
    assert _count(portal) == 2
    assert main([*base, "cards", "list"]) == 0
    assert main([*base, "cards", "list", "--json"]) == 0
    out = capsys.readouterr()
    assert "04C767F2066180\tntag424-sun\tactive\timported" in out.out
    assert '"uid": "04C767F2066181"' in out.out
    text = (out.out + out.err).lower()
    assert META.lower() not in text and FILE.lower() not in text
