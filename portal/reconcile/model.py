"""Plain-data inputs and settings of the reconciliation (no I/O, no database).

The database loader (:mod:`portal.reconcile.store`), the synthetic city
(:mod:`portal.synthetic.generator`) and tests all build these, and the engine
reads nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# Record types whose ``data`` the engine reads; every other record is only a time.
DATA_TYPES = ("badge", "door", "boot", "gap")


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    """Thresholds of docs/reconciliation.md, with the trusted-time tolerance."""

    margin_s: int = 30 * 60
    # Bursts (docs/reconciliation.md, bench/bursts.py): a run with gaps under burst_gap_ms
    # of burst_min_uids badges at one device (any reader) or of burst_reader_min_uids
    # at one reader, or a run at one reader with gaps under burst_slow_gap_ms of
    # burst_slow_min_uids badges.
    burst_gap_ms: int = 1500
    burst_min_uids: int = 5
    burst_reader_min_uids: int = 4
    burst_slow_gap_ms: int = 3100
    burst_slow_min_uids: int = 7
    # A shorter slow run is a burst when its cards were used once: at most one of its
    # badges read again at the center between pair_min_ms and pair_max_ms before or
    # after (a child who tapped in and out), at a center where at least
    # paired_center_share of all reads are paired so (its children do tap out).
    burst_unpaired_min_uids: int = 5
    pair_min_ms: int = 20 * 60_000
    pair_max_ms: int = 6 * 3_600_000
    paired_center_share: float = 0.5
    door_window_ms: int = 60_000
    heartbeat_interval_s: int = 300
    time_tolerance_ms: int = 120_000
    # Retired with decision 0810 (decision 0820): read from the settings, no effect.
    time_bracket_ms: int = 600_000
    # Proven time: both receipts of a read at most this far from it (it decides payment).
    proof_bracket_ms: int = 900_000
    # An ``open`` with no ``closed`` counts as open for at most this long: an honest door
    # propped for arrivals is open at most 70 min (docs/reconciliation.md, door_held_open).
    door_open_max_ms: int = 5_400_000
    # Reads of one badge at devices of two centers less than this apart: double_presence.
    travel_min_ms: int = 900_000
    # Children one signer may confirm for: 4, not 3, so that families of four are not
    # accused (decision 0843); a larger family's signer is listed below once checked.
    shared_signer_max: int = 4
    # Signers an operator checked (a family of four or more): shared_signer spares them.
    shared_signer_allowed: frozenset[str] = frozenset()
    lesson_max_min: int = 180  # a longer lesson is refused at import, or implausible
    # Centers whose devices may run without a door sensor (no_door_sensor off there).
    door_optional_centers: frozenset[str] = frozenset()
    # Uploads of one device switching address this many times within clone_window_ms
    # (A, B, A, B): two machines with one key (decision 0822).
    clone_switches: int = 3
    clone_window_ms: int = 600_000
    timezone: str = "Asia/Almaty"

    def __post_init__(self) -> None:
        for name in (
            "margin_s",
            "burst_gap_ms",
            "burst_min_uids",
            "burst_reader_min_uids",
            "burst_slow_gap_ms",
            "burst_slow_min_uids",
            "burst_unpaired_min_uids",
            "pair_min_ms",
            "pair_max_ms",
            "paired_center_share",
            "door_window_ms",
            "heartbeat_interval_s",
            "time_tolerance_ms",
            "time_bracket_ms",
            "proof_bracket_ms",
            "door_open_max_ms",
            "travel_min_ms",
            "shared_signer_max",
            "lesson_max_min",
            "clone_switches",
            "clone_window_ms",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"reconciliation setting {name} must not be negative")

    @property
    def offline_ms(self) -> int:
        return 2 * self.heartbeat_interval_s * 1000

    @classmethod
    def from_portal(cls, settings: Any) -> ReconcileSettings:
        """From the portal's :class:`~portal.settings.Settings` (and its ``extra`` map:
        ``burst_gap_ms``, ``burst_min_uids``, ``burst_reader_min_uids``,
        ``burst_slow_gap_ms``, ``burst_slow_min_uids``, ``burst_unpaired_min_uids``,
        ``pair_min_s``, ``pair_max_s``, ``paired_center_share``,
        ``door_window_s`` and the keys named below)."""
        extra = getattr(settings, "extra", {}) or {}
        d = cls()  # the defaults: one source, so a changed default reaches the portal
        return cls(
            margin_s=int(settings.lesson_margin_min) * 60,
            burst_gap_ms=int(extra.get("burst_gap_ms", d.burst_gap_ms)),
            burst_min_uids=int(extra.get("burst_min_uids", d.burst_min_uids)),
            burst_reader_min_uids=int(extra.get("burst_reader_min_uids", d.burst_reader_min_uids)),
            burst_slow_gap_ms=int(extra.get("burst_slow_gap_ms", d.burst_slow_gap_ms)),
            burst_slow_min_uids=int(extra.get("burst_slow_min_uids", d.burst_slow_min_uids)),
            burst_unpaired_min_uids=int(
                extra.get("burst_unpaired_min_uids", d.burst_unpaired_min_uids)
            ),
            pair_min_ms=int(extra.get("pair_min_s", d.pair_min_ms // 1000)) * 1000,
            pair_max_ms=int(extra.get("pair_max_s", d.pair_max_ms // 1000)) * 1000,
            paired_center_share=float(extra.get("paired_center_share", d.paired_center_share)),
            door_window_ms=int(extra.get("door_window_s", d.door_window_ms // 1000)) * 1000,
            heartbeat_interval_s=int(settings.heartbeat_interval_s),
            time_tolerance_ms=int(settings.time_tolerance_s) * 1000,
            time_bracket_ms=int(getattr(settings, "time_bracket_s", d.time_bracket_ms // 1000))
            * 1000,
            proof_bracket_ms=int(extra.get("proof_bracket_s", d.proof_bracket_ms // 1000)) * 1000,
            door_open_max_ms=int(extra.get("door_open_max_s", d.door_open_max_ms // 1000)) * 1000,
            travel_min_ms=int(extra.get("travel_min_s", d.travel_min_ms // 1000)) * 1000,
            shared_signer_max=int(extra.get("shared_signer_max", d.shared_signer_max)),
            shared_signer_allowed=frozenset(
                signer_key(n) for n in _names(extra.get("shared_signer_allowed", ()))
            ),
            lesson_max_min=int(extra.get("lesson_max_min", d.lesson_max_min)),
            door_optional_centers=frozenset(_names(extra.get("door_optional_centers", ()))),
            clone_switches=int(extra.get("clone_switches", d.clone_switches)),
            clone_window_ms=int(extra.get("clone_window_s", d.clone_window_ms // 1000)) * 1000,
            timezone=str(settings.tz),
        )


def signer_key(signer: str) -> str:
    """A signer as the shared_signer rule counts it: case and outer spaces aside."""
    return signer.strip().casefold()


def _names(value: Any) -> list[str]:
    """A list setting given as a list or as one comma-separated string."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


@dataclass(slots=True)
class DeviceLog:
    """One device's records in seq order, column by column (cheap for millions of rows).

    ``anchor_ms`` is the ``server_ms`` of the receipt the record names as its
    anchor (None for ``""`` or an unknown receipt), ``covered_ms`` the
    ``server_ms`` of the first receipt that covered it. ``data`` is kept only
    for the types in :data:`DATA_TYPES`. ``receipt_ms`` is the sorted
    ``server_ms`` of the receipts the portal kept for the device (those of the
    loaded period and the first one ever: what ``stale_anchor`` compares
    anchors with); ``uploads`` the runs of its signed uploads from one network
    address, as ``(first_ms, last_ms, address)`` in order (the clone check).
    """

    device_id: str
    center_id: str
    seq: list[int] = field(default_factory=list)
    type: list[str] = field(default_factory=list)
    wall_ms: list[int] = field(default_factory=list)
    synced: list[bool] = field(default_factory=list)
    boot: list[str] = field(default_factory=list)
    mono_ns: list[int] = field(default_factory=list)
    anchor_ms: list[int | None] = field(default_factory=list)
    covered_ms: list[int | None] = field(default_factory=list)
    data: list[Mapping[str, Any] | None] = field(default_factory=list)
    # The data of the device's latest ``boot`` record before ``seq[0]``, however old: the
    # doors and readers it declared still hold when no boot falls inside the range.
    boot_before: Mapping[str, Any] | None = None
    receipt_ms: list[int] = field(default_factory=list)
    uploads: list[tuple[int, int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seq)

    def append(
        self,
        *,
        seq: int,
        type: str,
        wall_ms: int,
        synced: bool,
        boot: str,
        mono_ns: int,
        anchor_ms: int | None,
        covered_ms: int | None,
        data: Mapping[str, Any] | None,
    ) -> None:
        self.seq.append(seq)
        self.type.append(type)
        self.wall_ms.append(wall_ms)
        self.synced.append(synced)
        self.boot.append(boot)
        self.mono_ns.append(mono_ns)
        self.anchor_ms.append(anchor_ms)
        self.covered_ms.append(covered_ms)
        self.data.append(data if type in DATA_TYPES else None)

    @classmethod
    def from_records(
        cls,
        device_id: str,
        center_id: str,
        records: Iterable[Mapping[str, Any]],
        receipt_ms: Mapping[str, int],
        covered_ms: Mapping[int, int],
    ) -> DeviceLog:
        """From wire records, the receipts by hash, and the covering time by seq."""
        log = cls(device_id, center_id)
        for r in sorted(records, key=lambda r: int(r["seq"])):
            log.append(
                seq=r["seq"],
                type=r["type"],
                wall_ms=r["wall_ms"],
                synced=r["synced"],
                boot=r["boot"],
                mono_ns=r["mono_ns"],
                anchor_ms=receipt_ms.get(r["anchor"]) if r["anchor"] else None,
                covered_ms=covered_ms.get(r["seq"]),
                data=r["data"],
            )
        return log


@dataclass(frozen=True, slots=True)
class IntegrityEvent:
    """A break in a device's chain: a declared hole (kind ``gap``) or a refusal/fork.

    A declared hole spans from the time of record ``first_seq - 1`` to that of
    ``last_seq + 1``; any other event is placed at ``at_ms`` (portal clock).
    """

    device_id: str
    kind: str
    first_seq: int | None
    last_seq: int | None
    at_ms: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Member:
    """A child enrolled in a group, with the normalised UIDs of the child's badges."""

    child_id: str
    group_id: str
    center_id: str
    badges: frozenset[str]
    child_name: str = ""
    # When these badges count as this child's in this group (Unix ms, ``from_ms <= t <
    # to_ms``; None = open): a badge moved to another child, or a membership added
    # after the child's first roster import, applies from its import on.
    from_ms: int | None = None
    to_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A parent's confirmation that the child attended the group's lesson on ``date``."""

    child_id: str
    group_id: str
    date: date
    confirmed_at: str = ""
    signer: str = ""
    # ``confirmed_at`` as Unix ms (set by the import; None: the engine reads
    # ``confirmed_at``, in the portal's zone when it has no offset).
    confirmed_ms: int | None = None
