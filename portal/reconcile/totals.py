"""Totals of a reconciliation per center and per group (docs/reconciliation.md).

``lessons`` counts rows (child-lessons) by status; ``share_verified`` is the
verified share of confirmed rows (what the city is asked to pay for); KZT at
risk sums ``price_kzt`` of ``confirmed_without_presence`` and ``suspect`` rows,
KZT unverifiable that of the unverifiable statuses (:data:`~portal.reconcile.rules.UNVERIFIABLE`:
``confirmed_device_offline``, ``present_unproven``). Centers whose devices
went offline during any lesson are ranked first, then by KZT at risk.
"""

from __future__ import annotations

from typing import Any

from portal.reconcile.engine import Result
from portal.reconcile.rules import (
    AT_RISK,
    PRESENT_NOT_CONFIRMED,
    STATUSES,
    UNVERIFIABLE,
    VERIFIED,
)


def _blank() -> dict[str, Any]:
    return {
        "lessons": dict.fromkeys(STATUSES, 0),
        "confirmed": 0,
        "share_verified": None,
        "kzt_at_risk": 0,
        "kzt_unverifiable": 0,
    }


def _add(acc: dict[str, Any], status: str, price: int) -> None:
    acc["lessons"][status] += 1
    if status != PRESENT_NOT_CONFIRMED:
        acc["confirmed"] += 1
    if status in AT_RISK:
        acc["kzt_at_risk"] += price
    elif status in UNVERIFIABLE:
        acc["kzt_unverifiable"] += price


def _share(acc: dict[str, Any]) -> None:
    confirmed = acc["confirmed"]
    acc["share_verified"] = round(acc["lessons"][VERIFIED] / confirmed, 4) if confirmed else None


def totals(result: Result) -> dict[str, Any]:
    """``{"all", "centers": [...ranked], "groups": [...]}``."""
    everything = _blank()
    centers: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for row in result.rows:
        center = centers.setdefault(row.center_id, {"center_id": row.center_id, **_blank()})
        group = groups.setdefault(
            row.group_id, {"group_id": row.group_id, "center_id": row.center_id, **_blank()}
        )
        for acc in (everything, center, group):
            _add(acc, row.status, row.price_kzt)
    for center_id, count in result.offline_lessons.items():
        if center_id not in centers:
            centers[center_id] = {"center_id": center_id, **_blank()}
        centers[center_id]["offline_lessons"] = count
    for acc in (everything, *centers.values(), *groups.values()):
        _share(acc)
    ranked = sorted(
        centers.values(),
        key=lambda c: (-(c.get("offline_lessons", 0) > 0), -c["kzt_at_risk"], c["center_id"]),
    )
    for c in ranked:
        c.setdefault("offline_lessons", 0)
    return {
        "all": everything,
        "centers": ranked,
        "groups": sorted(groups.values(), key=lambda g: (g["center_id"], g["group_id"])),
    }
