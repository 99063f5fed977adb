"""Every message id the templates and the code ask for exists in ru, en and kk."""

from __future__ import annotations

import re
from pathlib import Path

from portal.reconcile.report import RENDERERS
from portal.reconcile.risk import FEATURES
from portal.reconcile.rules import REASONS, STATUSES
from portal.registry import ROLES
from portal.web import i18n
from portal.web.auditor import CENTER_FILTERS, CENTER_SORTS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "portal" / "web" / "templates"
# t.id, t["id"], t("id") in templates; word("id") / .word("id") / t.get("id") in code.
IN_TEMPLATES = re.compile(r"""\bt(?:\.(\w+)|\[\s*["'](\w+)["']\s*\]|\(\s*["'](\w+)["']\s*\))""")
IN_CODE = re.compile(r"""\b(?:word|t\.get)\(\s*["'](\w+)["']""")
# The kinds of integrity event the ingest records (portal/ingest: gaps, evidence, reverify).
INTEGRITY_KINDS = ("gap", "fork", "rejected", "stored_chain", "signature_late")
# Ids a template builds from data (t["dl_" ~ f], t[s], t[x]...): named here by family.
DYNAMIC = {
    *(f"dl_{f}" for f in RENDERERS if f != "table"),
    *(f"filter_{f}" for f in CENTER_FILTERS),
    *(f"role_{r}" for r in ROLES),
    *CENTER_SORTS,
    *STATUSES,
    *(r.name for r in REASONS),
    *(f"feature_{f}" for f in FEATURES),
    *(f"event_{k}" for k in INTEGRITY_KINDS),
    "state_open",
    "state_closed",
    "unknown_token",
}
JINJA_ATTRS = {"get", "items", "keys"}  # dict methods, not ids


def used_ids() -> set[str]:
    ids: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        for m in IN_TEMPLATES.finditer(path.read_text(encoding="utf-8")):
            ids.add(next(g for g in m.groups() if g))
    for path in (ROOT / "portal").rglob("*.py"):
        ids.update(IN_CODE.findall(path.read_text(encoding="utf-8")))
    return (ids - JINJA_ATTRS) | DYNAMIC


def test_the_scan_finds_the_ids_it_should() -> None:
    ids = used_ids()
    # One id from each place: base.html, a macro, the report template, report.py, charts.
    assert {"logout", "download", "rows_not_verified", "lesson_start", "door"} <= ids
    assert len(ids) > 100


def test_every_id_used_exists_in_all_three_languages() -> None:
    ids = used_ids()
    for lang in i18n.LANGS:
        missing = sorted(ids - set(i18n.MESSAGES[lang]))
        assert not missing, (lang, missing)


def test_the_three_languages_have_the_same_ids_and_no_empty_text() -> None:
    keys = set(i18n.MESSAGES["en"])
    for lang in i18n.LANGS:
        assert set(i18n.MESSAGES[lang]) == keys, lang
        assert all(v.strip() for v in i18n.MESSAGES[lang].values()), lang


def test_kazakh_is_its_own_translation_not_a_copy_of_russian() -> None:
    ru, kk = i18n.MESSAGES["ru"], i18n.MESSAGES["kk"]
    same = sorted(k for k in kk if kk[k] == ru[k])
    # Words the two languages share (Аудит, Карта, Датчик...) and format names only.
    assert len(same) <= 12, same
    assert kk["logout"] == "Шығу" and kk["title"] != ru["title"]


def test_every_integrity_event_kind_the_ingest_records_has_words() -> None:
    found: set[str] = set()
    for path in (ROOT / "portal" / "ingest").rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if "kind=" in line:
                found.update(re.findall(r'"(\w+)"', line.split("kind=", 1)[1]))
    assert found == set(INTEGRITY_KINDS)
