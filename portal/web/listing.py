"""Filtering, sorting and paging of the pages' tables by query parameters (pure, no I/O).

Everything is in the URL (``?sort=&order=&page=``), so the pages work without
JavaScript and a link shows the same list to whoever opens it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

PER_PAGE = 25
MAX_PER_PAGE = 200


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    number: int  # 1-based
    pages: int
    total: int
    per: int


def _int(value: str | None, default: int, lo: int, hi: int) -> int:
    try:
        n = int(value) if value else default
    except ValueError:
        n = default
    return max(lo, min(hi, n))


def paged(items: Sequence[T], params: Mapping[str, str], per_default: int = PER_PAGE) -> Page:
    """The page ``?page=`` of ``items`` at ``?per=`` a page (out-of-range values clamp)."""
    per = _int(params.get("per"), per_default, 1, MAX_PER_PAGE)
    pages = max(1, -(-len(items) // per))
    number = _int(params.get("page"), 1, 1, pages)
    start = (number - 1) * per
    return Page(list(items[start : start + per]), number, pages, len(items), per)


def sorted_by(
    items: Sequence[T],
    keys: Mapping[str, Callable[[T], Any]],
    params: Mapping[str, str],
    default: str,
    ascending_first: frozenset[str] = frozenset(),
) -> tuple[list[T], str, str]:
    """``items`` by ``?sort=`` (one of ``keys``) and ``?order=asc|desc``.

    Numbers sort largest first unless asked otherwise; the keys in
    ``ascending_first`` (names) sort A to Z first. Returns the list, the sort key
    and the order applied.
    """
    sort = params.get("sort", default)
    if sort not in keys:
        sort = default
    order = params.get("order", "asc" if sort in ascending_first else "desc")
    if order not in ("asc", "desc"):
        order = "desc"
    return sorted(items, key=keys[sort], reverse=order == "desc"), sort, order


__all__ = ["MAX_PER_PAGE", "PER_PAGE", "Page", "paged", "sorted_by"]
