"""``cards import FILE``: CSV ``badge_uid,kind,meta_key,file_key`` of cards personalised
elsewhere, parsed the way the city's other imports are (portal/reconcile/imports.py).

A bad row raises :class:`~portal.exceptions.ImportFileError` naming file, line and
column, so nothing from the file is applied. Messages never quote a key.
"""

from __future__ import annotations

import re

from agent.protocol.ntag424 import KIND
from portal.cards.keys import SunKeys
from portal.exceptions import ImportFileError
from portal.reconcile.imports import _Bad, _dedupe, _field, _table, _uid

__all__ = ["CARDS", "parse_cards"]

CARDS = ("badge_uid", "kind", "meta_key", "file_key")
_KEY = re.compile(r"[0-9A-Fa-f]{32}")


def _kind(text: str) -> str:
    if text != KIND:
        raise _Bad(f"{text!r} is not a card kind this import takes (only {KIND})")
    return text


def _key(text: str) -> bytes:
    if not _KEY.fullmatch(text):
        raise _Bad("not an AES-128 key (32 hex digits)")  # the value is never repeated
    return bytes.fromhex(text)


def parse_cards(data: bytes, name: str) -> list[tuple[int, str, SunKeys]]:
    """(line, normalised 7-byte UID, keys) of each distinct row."""
    header, rows = _table(data, name, CARDS, ())
    items: list[tuple[int, str, tuple[int, str, SunKeys]]] = []
    for line, row in rows:
        uid = _field(name, header, line, row, "badge_uid", _uid)
        if len(uid) != 14:
            raise ImportFileError(
                f"{name}:{line}:{header.index('badge_uid') + 1}: badge_uid: an NTAG 424 DNA "
                f"UID is 7 bytes (14 hex digits), not {len(uid) // 2}"
            )
        _field(name, header, line, row, "kind", _kind)
        meta = _field(name, header, line, row, "meta_key", _key)
        file = _field(name, header, line, row, "file_key", _key)
        items.append((line, uid, (line, uid, SunKeys(meta, file))))
    deduped = _dedupe_keys(name, items)
    return deduped


def _dedupe_keys(
    name: str, items: list[tuple[int, str, tuple[int, str, SunKeys]]]
) -> list[tuple[int, str, SunKeys]]:
    """One row per UID: exact repeats taken once, the same UID with other keys refused."""
    by_uid = _dedupe(name, [(line, uid, value[2]) for line, uid, value in items], "badge_uid")
    first_line: dict[str, int] = {}
    for line, uid, _ in items:
        first_line.setdefault(uid, line)
    uids = list(dict.fromkeys(uid for _, uid, _ in items))
    return [(first_line[u], u, k) for u, k in zip(uids, by_uid, strict=True)]
