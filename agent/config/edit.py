"""Changing one config value by dotted path, keeping the file's comments.

``qatysu config set readers.0.port /dev/ttyUSB1`` and ``qatysu enroll`` go
through :func:`set_values`: it resolves each dotted key against the config's
dataclasses (a ``[[readers]]`` key against every driver's, from the
registry), naming the nearest valid key for a typo, converts the text value
to the key's type, applies it with tomlkit so comments and layout survive,
and checks that the result still loads (with the keys of the entry's own
driver) before anyone writes it. :func:`write_preserving_mode` is the one
place that replaces the file.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, InlineTable, Table

from agent.config.schema import _LISTS, _SECTIONS, AgentConfig, config_from_dict
from agent.exceptions import ConfigError
from agent.readers.registry import DRIVERS, config_class, reader_keys

__all__ = ["KeyPath", "parse_value", "resolve_key", "set_values", "write_preserving_mode"]

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class KeyPath:
    """A resolved dotted key: section, list index (for ``[[...]]`` lists), field and type."""

    def __init__(self, section: str, index: int | None, name: str, hint: Any) -> None:
        self.section = section
        self.index = index
        self.name = name
        self.hint = hint

    def __str__(self) -> str:
        middle = f".{self.index}" if self.index is not None else ""
        return f"{self.section}{middle}.{self.name}"


def _nearest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid: {', '.join(choices)})"


def resolve_key(key: str) -> KeyPath:
    """``portal.url`` or ``readers.0.port`` to a :class:`KeyPath`; ConfigError names the key."""
    parts = key.split(".")
    sections = [*_SECTIONS, *_LISTS]
    section = parts[0]
    if section not in sections:
        raise ConfigError(f"unknown key {key}: no section {section!r}{_nearest(section, sections)}")
    index: int | None = None
    rest = parts[1:]
    if section in _LISTS:
        cls = _LISTS[section]
        if not rest or not rest[0].isdigit():
            raise ConfigError(
                f"key {key}: [[{section}]] is a list; name an entry, e.g. {section}.0.name"
            )
        index = int(rest[0])
        rest = rest[1:]
    else:
        cls = _SECTIONS[section]
    hints = reader_keys() if section == "readers" else get_type_hints(cls)
    names = list(hints) if section == "readers" else [f.name for f in fields(cls)]
    if len(rest) != 1:
        prefix = f"{section}.{index}" if index is not None else section
        raise ConfigError(f"key {key}: expected {prefix}.NAME with NAME one of {', '.join(names)}")
    name = rest[0]
    if name not in names:
        prefix = f"{section}.{index}." if index is not None else f"{section}."
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f" (did you mean {prefix}{close[0]}?)" if close else f" (valid: {', '.join(names)})"
        raise ConfigError(f"unknown key {key}{hint}")
    return KeyPath(section, index, name, hints[name])


def parse_value(path: KeyPath, text: str) -> Any:
    """The command-line text ``text`` as the type ``path`` holds; ConfigError names the key."""
    accepted = get_args(path.hint) if get_origin(path.hint) in (Union, UnionType) else (path.hint,)
    if type(None) in accepted and text.lower() in ("none", ""):
        return None
    for kind in accepted:
        if kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
        elif kind is int:
            try:
                return int(text, 0)
            except ValueError:
                pass
        elif kind is float:
            try:
                return float(text)
            except ValueError:
                pass
        elif kind in (str, Path):
            return text
    names = " or ".join(getattr(k, "__name__", str(k)) for k in accepted if k is not type(None))
    raise ConfigError(f"{path}: {text!r} is not a valid {names}")


def _table_for(doc: tomlkit.TOMLDocument, path: KeyPath) -> Table | InlineTable:
    if path.index is None:
        table = doc.get(path.section)
        if table is None:
            table = tomlkit.table()
            doc.add(path.section, table)
        if not isinstance(table, Table | InlineTable):
            raise ConfigError(f"{path}: [{path.section}] is not a table")
        return table
    entries = doc.get(path.section)
    count = len(entries) if isinstance(entries, AoT | Array) else 0
    if entries is None or path.index >= count:
        raise ConfigError(
            f"{path}: no entry {path.section}.{path.index} "
            f"(the file has {count} [[{path.section}]] entr{'y' if count == 1 else 'ies'})"
        )
    entry = entries[path.index]
    if not isinstance(entry, Table | InlineTable):
        raise ConfigError(f"{path}: {path.section}.{path.index} is not a table")
    return entry


def set_values(
    text: str,
    changes: list[tuple[str, Any]],
    where: Path,
    *,
    dropped: list[str] | None = None,
) -> tuple[str, AgentConfig]:
    """Apply ``(key, value)`` pairs to the TOML ``text``; returns the new text and its config.

    ``value`` is a string from the command line (converted to the key's type)
    or an already typed value. ``None`` removes the key (its default applies).
    Setting a reader's ``driver`` to another driver removes the keys only the old
    one had (an RC522's SPI pins mean nothing to a UART reader); their dotted
    names are appended to ``dropped``. Nothing is written here; the result is
    validated as a whole first.
    """
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    for key, raw in changes:
        path = resolve_key(key)
        value = parse_value(path, raw) if isinstance(raw, str) and path.hint is not str else raw
        table = _table_for(doc, path)
        if value is None:
            if path.name in table:
                del table[path.name]
        else:
            table[path.name] = str(value) if isinstance(value, Path) else value
        if path.section == "readers" and path.name == "driver" and value in DRIVERS:
            known = {f.name for f in fields(config_class(str(value)))}
            for name in [k for k in table if k not in known]:
                del table[name]
                if dropped is not None:
                    dropped.append(f"readers.{path.index}.{name}")
    new_text = tomlkit.dumps(doc)
    config = config_from_dict(tomlkit.parse(new_text).unwrap(), where)
    return new_text, config


def write_preserving_mode(path: Path, text: str, *, default_mode: int = 0o644) -> None:
    """Replace ``path`` atomically, keeping its mode and owner (or ``default_mode`` if new)."""
    try:
        st = path.stat()
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode, owner = default_mode, None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if owner is not None and os.geteuid() == 0:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
