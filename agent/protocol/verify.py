"""Chain verification (docs/protocol.md): one record at a time, first failure wins.

Checks run in the order docs/protocol.md fixes: ``encoding``, ``device``, ``hash``,
``signature``, then the sequence: ``regression``, ``gap``, ``link``. The
verifier never raises on what it is given; every problem is a :class:`Failure`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.protocol.records import ZERO_HASH, check_record_shape, seal_digest, signature_valid
from agent.protocol.values import is_hex64, is_int

__all__ = [
    "REASONS",
    "ChainReport",
    "ChainVerifier",
    "DeclaredGap",
    "Failure",
    "bad_signature",
    "collect_declared_gaps",
    "content_bytes",
    "parse_gap_data",
    "verify_chain",
]

REASONS = ("encoding", "device", "hash", "signature", "regression", "gap", "link")


@dataclass(frozen=True)
class Failure:
    """The first thing wrong with a record: its ``seq`` (None if unreadable) and why."""

    seq: int | None
    reason: str
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "record"
        return f"{where}: {self.reason}: {self.detail}"


@dataclass(frozen=True)
class DeclaredGap:
    """A hole the device declared with a signed ``gap`` record."""

    first_seq: int
    last_seq: int
    last_hash: str  # "" when the device lost its newest records and cannot know it
    reason: str
    declared_at: int  # seq of the gap record itself

    @property
    def resume_prev(self) -> str:
        """The ``prev`` the record after the hole must carry."""
        return self.last_hash or ZERO_HASH

    def bridges(self, expected_seq: int) -> bool:
        """True when a verifier expecting ``expected_seq`` may jump past this hole."""
        return self.first_seq <= expected_seq <= self.last_seq + 1


def parse_gap_data(record: dict[str, Any]) -> DeclaredGap | str:
    """The declared hole of a well-formed ``gap`` record, or why its data is invalid."""
    data = record["data"]
    first, last = data.get("first_seq"), data.get("last_seq")
    last_hash, reason = data.get("last_hash"), data.get("reason", "")
    if not (is_int(first) and is_int(last) and 1 <= first <= last):
        return "gap data needs integers 1 <= first_seq <= last_seq"
    if not (last_hash == "" or is_hex64(last_hash)):
        return "gap data 'last_hash' must be \"\" or 64 lowercase hex characters"
    if last >= record["seq"]:
        return "gap record must come after the hole it declares"
    if last_hash == "" and record["seq"] != last + 1:
        return "a gap with unknown last_hash must be the record right after the hole"
    return DeclaredGap(first, last, last_hash, str(reason), record["seq"])


def content_bytes(record: object, device: str) -> bytes | Failure:
    """Encoding, device and hash of ``record``: its canonical bytes, or the first failure.

    The signature over those bytes is the caller's next check (see
    :meth:`ChainVerifier.check_content`); a verifier of many records may
    spread those checks over threads.
    """
    problem = check_record_shape(record)
    if problem:
        return Failure(_seq_of(record), "encoding", problem)
    assert isinstance(record, dict)
    if record["device"] != device:
        return Failure(record["seq"], "device", f"record is for device {record['device']!r}")
    data, digest = seal_digest(record, checked=True)
    if digest != record["hash"]:
        return Failure(record["seq"], "hash", "hash does not match the canonical bytes")
    return data


def bad_signature(seq: int) -> Failure:
    return Failure(seq, "signature", "signature does not verify with the device key")


@dataclass
class ChainVerifier:
    """Checks each next record of one device against the last accepted ``(seq, hash)``.

    ``check`` only inspects; ``feed`` checks and, on success, advances.
    ``signatures=False`` checks hashes and links only (the chain-only mode).
    """

    public_key: Ed25519PublicKey
    device: str
    last_seq: int = 0
    last_hash: str = ZERO_HASH
    gaps: list[DeclaredGap] = field(default_factory=list)
    signatures: bool = True
    # Filled by ``feed``: the holes jumped, and the gap records accepted.
    bridged: list[DeclaredGap] = field(default_factory=list)
    declared: list[DeclaredGap] = field(default_factory=list)

    @property
    def next_seq(self) -> int:
        return self.last_seq + 1

    def check_content(self, record: object) -> Failure | None:
        """Encoding, device, hash and signature: everything but the sequence."""
        checked = content_bytes(record, self.device)
        if isinstance(checked, Failure):
            return checked
        assert isinstance(record, dict)
        if self.signatures and not signature_valid(checked, record["sig"], self.public_key):
            return bad_signature(record["seq"])
        return None

    def check_sequence(self, record: dict[str, Any]) -> Failure | None:
        """Regression, gap and link, bridging holes that a known ``gap`` declares."""
        seq = record["seq"]
        if seq < self.next_seq:
            return Failure(seq, "regression", f"expected seq {self.next_seq}")
        if seq > self.next_seq and self._bridge_for(seq, record["prev"]) is None:
            if any(g.last_seq + 1 == seq and g.bridges(self.next_seq) for g in self.gaps):
                return Failure(seq, "link", "prev is not the last_hash its declared gap names")
            return Failure(seq, "gap", f"expected seq {self.next_seq}")
        # The one bridge at the expected seq: the device lost its newest records
        # (last_hash ""), the verifier already holds the whole declared range,
        # and the record after it carries 64 zeros.
        if (
            seq == self.next_seq
            and record["prev"] != self.last_hash
            and self._bridge_for(seq, record["prev"]) is None
        ):
            return Failure(seq, "link", "prev is not the hash of the previous record")
        return None

    def _bridge_for(self, seq: int, prev: str) -> DeclaredGap | None:
        """A declared hole ending at ``seq - 1`` that the verifier may jump from here."""
        for gap in self.gaps:
            if (
                gap.last_seq + 1 == seq
                and gap.bridges(self.next_seq)
                and gap.resume_prev == prev
                and (seq > self.next_seq or gap.last_hash == "")
            ):
                return gap
        return None

    def check(self, record: object) -> Failure | None:
        failure = self.check_content(record)
        if failure is None:
            assert isinstance(record, dict)
            failure = self.check_sequence(record)
        return failure

    def feed(self, record: object) -> Failure | None:
        """Check ``record`` and, when it passes, make it the new head."""
        failure = self.check(record)
        if failure is None:
            assert isinstance(record, dict)
            if record["seq"] != self.next_seq or record["prev"] != self.last_hash:
                gap = self._bridge_for(record["seq"], record["prev"])
                if gap is not None:
                    self.bridged.append(gap)
            self.last_seq = record["seq"]
            self.last_hash = record["hash"]
            if record["type"] == "gap":
                declared = parse_gap_data(record)
                if isinstance(declared, DeclaredGap):
                    self.declared.append(declared)
        return failure


def _seq_of(record: object) -> int | None:
    if isinstance(record, dict):
        seq = record.get("seq")
        if isinstance(seq, int) and is_int(seq):
            return seq
    return None


def collect_declared_gaps(
    records: Iterable[object], public_key: Ed25519PublicKey, device: str
) -> list[DeclaredGap]:
    """The holes declared by validly signed ``gap`` records of ``device`` among ``records``."""
    probe = ChainVerifier(public_key, device)
    gaps = []
    for record in records:
        if not (isinstance(record, dict) and record.get("type") == "gap"):
            continue
        if probe.check_content(record) is not None:
            continue
        parsed = parse_gap_data(record)
        if isinstance(parsed, DeclaredGap):
            gaps.append(parsed)
    return gaps


@dataclass(frozen=True)
class ChainReport:
    """Outcome of verifying a run of records."""

    checked: int  # records accepted before the failure (all of them when ok)
    failure: Failure | None
    gaps: tuple[DeclaredGap, ...]  # the holes actually bridged
    head_seq: int
    head_hash: str
    declared: tuple[DeclaredGap, ...] = ()  # every gap record accepted, bridged or not

    @property
    def ok(self) -> bool:
        return self.failure is None


def verify_chain(
    records: Sequence[object],
    public_key: Ed25519PublicKey,
    device: str,
    *,
    start: tuple[int, str] | None = None,
    signatures: bool = True,
) -> ChainReport:
    """Verify ``records`` in order, bridging only holes their own ``gap`` records declare.

    ``start`` is the last accepted ``(seq, hash)``; without it the first
    record's ``prev`` is taken as given unless its ``seq`` is 1.
    """
    if not isinstance(records, list | tuple):
        not_array = Failure(None, "encoding", "records must be an array")
        return ChainReport(0, not_array, (), 0, ZERO_HASH)
    if start is None:
        start = (0, ZERO_HASH)
        first = records[0] if records else None
        if isinstance(first, dict) and is_int(first.get("seq")) and first["seq"] > 1:
            prev = first.get("prev")
            start = (first["seq"] - 1, prev if isinstance(prev, str) else "")
    gaps = collect_declared_gaps(records, public_key, device)
    verifier = ChainVerifier(public_key, device, start[0], start[1], gaps, signatures)
    failure: Failure | None = None
    checked = 0
    for record in records:
        failure = verifier.feed(record)
        if failure is not None:
            break
        checked += 1
    return ChainReport(
        checked,
        failure,
        tuple(verifier.bridged),
        verifier.last_seq,
        verifier.last_hash,
        tuple(verifier.declared),
    )
