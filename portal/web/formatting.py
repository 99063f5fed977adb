"""Numbers, money, shares and times as each language writes them (pure, no I/O)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

NBSP = "\u00a0"


def number(value: int | float | None, lang: str) -> str:
    """``1,494,000`` in English, ``1 494 000`` (no-break spaces) in Russian and Kazakh."""
    if value is None:
        return "—"
    text = f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
    if lang == "en":
        return text
    return text.replace(",", NBSP).replace(".", ",")


def percent(share: float | None, lang: str) -> str:
    if share is None:
        return "—"
    text = f"{share:.1%}"
    return text if lang == "en" else text.replace(".", ",").replace("%", NBSP + "%")


def local_time(ms: int | None, zone: ZoneInfo, with_seconds: bool = False) -> str:
    if ms is None:
        return "—"
    pattern = "%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(ms / 1000, tz=zone).strftime(pattern)


def clock(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%H:%M:%S")


def seconds(ms: int, lang: str) -> str:
    """A signed duration in seconds, ``+1.5 s`` / ``+1,5 с``."""
    unit = {"en": "s", "ru": "с", "kk": "с"}.get(lang, "s")
    text = f"{ms / 1000:+,.1f}"
    if lang != "en":
        text = text.replace(",", NBSP).replace(".", ",")
    return f"{text}{NBSP}{unit}"


__all__ = ["clock", "local_time", "number", "percent", "seconds"]
