"""The rules table is the one home of the reasons: each documented, labelled, and pure."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from portal.reconcile import engine, index, rules
from portal.reconcile.index import Read
from portal.reconcile.model import ReconcileSettings
from portal.reconcile.rules import REASONS, STATUSES, ReadFacts, RowFacts, WindowFacts
from portal.web import i18n

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "reconciliation.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    return DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_reason_is_documented_and_nothing_else_is() -> None:
    listed = re.findall(r"^- `([a-z_]+)`:", _section("Reasons"), flags=re.M)
    assert listed == [r.name for r in REASONS]


def test_every_status_is_documented() -> None:
    listed = re.findall(r"^\| `([a-z_]+)` \|", _section("Statuses"), flags=re.M)
    assert listed == list(STATUSES)


def test_every_reason_and_status_has_a_label_in_every_language() -> None:
    for lang in i18n.LANGS:
        t = i18n.translator(lang)
        for name in [*(r.name for r in REASONS), *STATUSES]:
            assert name in t, (lang, name)


def test_the_table_is_well_formed() -> None:
    names = [r.name for r in REASONS]
    assert len(set(names)) == len(names)
    for r in REASONS:
        assert r.facts in (ReadFacts, WindowFacts, RowFacts)
        assert r.effect in STATUSES and r.description and "\n" not in r.description
        assert r.check.__name__ == r.name  # one function per reason, named after it


@pytest.mark.parametrize("module", [engine, index])
def test_no_reason_string_outside_the_table(module: object) -> None:
    source = Path(module.__file__).read_text(encoding="utf-8")  # type: ignore[attr-defined]
    strings = {
        n.value
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }
    assert not strings & {r.name for r in REASONS}
    assert not strings & set(STATUSES)


def test_the_engine_rules_index_and_trusted_time_load_no_io_library() -> None:
    code = (
        "import sys\n"
        "import portal.reconcile.engine, portal.reconcile.rules, portal.reconcile.index\n"
        "import portal.reconcile.trusted_time\n"
        "bad = {'sqlalchemy', 'fastapi', 'httpx', 'tinydb', 'starlette', 'jinja2'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def _read(**kw: object) -> Read:
    base: dict[str, object] = {
        "device_id": "D1",
        "seq": 1,
        "reader": "main",
        "driver": "mfrc522",
        "uid": "04A1B2C3",
        "time_ms": 0,
        "wall_ms": 0,
        "trusted": True,
    }
    return Read(**{**base, **kw})  # type: ignore[arg-type]


S = ReconcileSettings()


def test_read_rules_on_hand_made_facts() -> None:
    plain = ReadFacts(_read(), ("front",), True, 1)
    assert not any(r.check(plain, S) for r in rules.READ_REASONS)
    assert rules.card_burst(ReadFacts(_read(), (), False, 5), S)
    assert not rules.card_burst(ReadFacts(_read(), (), False, 4), S)
    assert rules.no_door_passage(ReadFacts(_read(), ("front",), False, 1), S)
    assert not rules.no_door_passage(ReadFacts(_read(), (), False, 1), S)  # no sensor
    assert rules.time_untrusted(ReadFacts(_read(trusted=False), (), False, 1), S)
    assert rules.simulated_reader(ReadFacts(_read(driver="simulated"), (), False, 1), S)


def test_window_and_row_rules_and_status() -> None:
    assert rules.chain_integrity(WindowFacts("D1", True), S)
    assert not rules.chain_integrity(WindowFacts("D1", False), S)
    orphan = RowFacts(True, False, 0, False, False)
    assert rules.no_lesson_scheduled(orphan, S)
    assert rules.status(orphan, ("no_lesson_scheduled",)) == "confirmed_without_presence"
    assert rules.status(RowFacts(True, True, 2, True, False), ()) == "verified"
    assert rules.status(RowFacts(True, True, 1, False, False), ("card_burst",)) == "suspect"
    assert rules.status(RowFacts(True, True, 0, False, True), ()) == "confirmed_device_offline"
    assert rules.status(RowFacts(True, True, 0, False, False), ()) == ("confirmed_without_presence")
    assert rules.status(RowFacts(False, True, 1, True, False), ()) == "present_not_confirmed"
    assert rules.ordered(["chain_integrity", "card_burst", "card_burst"]) == (
        "card_burst",
        "chain_integrity",
    )
