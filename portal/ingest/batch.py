"""Verified ingest: the one path by which records enter the store (HTTP and bundles).

A batch is checked in two phases. The content phase (encoding, device, hash,
signature; the order of :meth:`agent.protocol.ChainVerifier.check_content`)
needs no database and runs before any lock, with the Ed25519 checks spread over
a thread pool (``cryptography`` releases the GIL). The sequence phase runs
inside one write transaction against the device's stored head, which it locks:
duplicates are skipped, a held seq with another hash is a ``fork``, and the
longest valid prefix is stored together with the new head and a signed receipt.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import Connection, Engine, insert, select, update

from agent.protocol import (
    ZERO_HASH,
    ChainVerifier,
    DeclaredGap,
    Failure,
    ProtocolError,
    bad_signature,
    build_receipt,
    collect_declared_gaps,
    content_bytes,
    parse_gap_data,
    public_key_from_b64,
    seal_digest,
    signature_valid,
)
from portal.db.engine import write_transaction
from portal.db.schema import (
    abuse_log,
    declared_gaps,
    devices,
    integrity_events,
    receipts,
    records,
    rejected_records,
)
from portal.exceptions import RevokedDeviceError, UnknownDeviceError

__all__ = [
    "DeviceHead",
    "IngestOutcome",
    "cursor_receipt",
    "declare_gap",
    "ingest_batch",
    "load_device",
    "record_abuse",
    "signed_by",
    "store_receipt",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceHead:
    device_id: str
    public_key: Ed25519PublicKey
    head_seq: int
    head_hash: str
    revoked: bool


@dataclass
class IngestOutcome:
    """What an ingest or gap declaration answers: HTTP status and JSON body."""

    status: int  # 200, 409 or 422
    receipt: dict[str, Any]
    accepted: int = 0
    duplicates: int = 0
    failure: Failure | None = None
    expected_seq: int | None = None
    stored_seqs: list[int] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        if self.status == 200:
            return {
                "receipt": self.receipt,
                "accepted": self.accepted,
                "duplicates": self.duplicates,
            }
        if self.status == 409:
            return {"error": "gap", "expected_seq": self.expected_seq, "receipt": self.receipt}
        assert self.failure is not None
        return {
            "error": "rejected",
            "seq": self.failure.seq,
            "reason": self.failure.reason,
            "detail": self.failure.detail,
            "receipt": self.receipt,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
        }


# --- reading and signing -------------------------------------------------------------


def load_device(conn: Connection, device_id: str, *, lock: bool = False) -> DeviceHead:
    """The device row; ``lock`` holds it (FOR UPDATE) until the transaction ends."""
    query = select(
        devices.c.public_key, devices.c.head_seq, devices.c.head_hash, devices.c.revoked_ms
    ).where(devices.c.device_id == device_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise UnknownDeviceError(f"device {device_id!r} is not enrolled")
    return DeviceHead(
        device_id,
        public_key_from_b64(row.public_key),
        int(row.head_seq),
        row.head_hash,
        row.revoked_ms is not None,
    )


def store_receipt(
    conn: Connection, key: Ed25519PrivateKey, device_id: str, seq: int, record_hash: str, now: int
) -> dict[str, Any]:
    """Sign a receipt for ``(seq, record_hash)`` and keep it by hash (device row held)."""
    receipt = build_receipt(key, device=device_id, seq=seq, record_hash=record_hash, server_ms=now)
    # The same head in the same millisecond signs to the same bytes (Ed25519 is
    # deterministic): keep it once. Callers hold the device row, so no race here.
    known = select(receipts.c.hash).where(receipts.c.hash == receipt["hash"])
    if conn.execute(known).first() is not None:
        return receipt
    conn.execute(
        insert(receipts).values(
            hash=receipt["hash"],
            device_id=device_id,
            seq=seq,
            record_hash=record_hash,
            server_ms=now,
            body=receipt,
        )
    )
    return receipt


def cursor_receipt(
    engine: Engine, key: Ed25519PrivateKey, device_id: str, now: int
) -> dict[str, Any]:
    """A fresh receipt for the device's current head (``GET .../cursor``)."""
    with write_transaction(engine) as conn:
        head = load_device(conn, device_id, lock=True)
        if head.revoked:
            raise RevokedDeviceError(f"device {device_id!r} is revoked")
        conn.execute(
            update(devices).where(devices.c.device_id == device_id).values(last_seen_ms=now)
        )
        return store_receipt(conn, key, device_id, head.head_seq, head.head_hash, now)


def signed_by(record: object, public_key: Ed25519PublicKey) -> bool:
    """True when ``record`` carries a valid signature of ``public_key`` over its content."""
    if not isinstance(record, dict) or not isinstance(record.get("sig"), str):
        return False
    try:
        data, _ = seal_digest(record)
    except (ProtocolError, TypeError, ValueError):
        return False
    return signature_valid(data, record["sig"], public_key)


# --- the content phase (no database) -------------------------------------------------


@dataclass
class _Content:
    """Records whose encoding, device and hash are right, with their canonical bytes."""

    data: list[bytes]
    failure: Failure | None  # the first content failure (at index len(data))
    sig_checked: list[bool]
    rows: list[tuple[Any, ...]]  # the insert's values for each, but ``sig_checked``


_CHUNK = 64  # signatures per thread-pool job: large enough to amortise, small to overlap


def _check_content(
    batch: Sequence[object],
    device_id: str,
    public_key: Ed25519PublicKey,
    every: bool,
    pool: Executor | None,
    now: int,
) -> _Content:
    """Encoding, device and hash of each record, then its signature (all or run tails).

    The checks of :func:`agent.protocol.content_bytes`, keeping the canonical
    bytes. With ``every`` the signature checks go to ``pool`` in chunks while
    this thread goes on with the next records, and then builds the rows to
    insert, so the Ed25519 work (which releases the GIL) overlaps the Python work.
    """
    datas: list[bytes] = []
    failure: Failure | None = None
    jobs = _SignatureJobs(public_key, pool)
    pending: list[tuple[bytes, str]] = []
    for record in batch:
        checked = content_bytes(record, device_id)
        if type(checked) is not bytes:
            assert isinstance(checked, Failure)
            failure = checked
            break
        datas.append(checked)
        if every:
            pending.append((checked, record["sig"]))  # type: ignore[index]
            if len(pending) == _CHUNK:
                jobs.add(len(datas) - _CHUNK, pending)
                pending = []
    if pending:
        jobs.add(len(datas) - len(pending), pending)
    if not every:
        for i in _run_tails(len(datas), batch):
            jobs.add(i, [(datas[i], batch[i]["sig"])])  # type: ignore[index]
    rows = _rows(device_id, batch, datas, now)
    checked_flags = [False] * len(datas)
    for first, oks in jobs.finish():
        bad = next((n for n, ok in enumerate(oks) if not ok), None)
        for n in range(len(oks) if bad is None else bad):
            checked_flags[first + n] = True
        if bad is not None:
            index = first + bad
            del datas[index:]
            del checked_flags[index:]
            del rows[index:]
            failure = bad_signature(batch[index]["seq"])  # type: ignore[index]
            break
    return _Content(datas, failure, checked_flags, rows)


class _SignatureJobs:
    """Chunks of signature checks taken by the pool's threads and, at the end, by ours.

    The caller's thread helps drain the queue once its own Python work is done,
    instead of idling while the pool catches up.
    """

    def __init__(self, public_key: Ed25519PublicKey, pool: Executor | None) -> None:
        self._key = public_key
        self._pool = pool
        self._queue: deque[tuple[int, list[tuple[bytes, str]]]] = deque()
        self._results: dict[int, list[bool]] = {}
        self._futures: list[Future[None]] = []

    def add(self, first: int, items: list[tuple[bytes, str]]) -> None:
        self._queue.append((first, items))
        if self._pool is not None:
            self._futures.append(self._pool.submit(self._work))

    def _work(self) -> None:
        try:
            first, items = self._queue.popleft()
        except IndexError:  # another thread took it
            return
        self._results[first] = _verify_chunk(items, self._key)

    def finish(self) -> list[tuple[int, list[bool]]]:
        """Every chunk's results, in index order."""
        while self._queue:
            self._work()
        for future in self._futures:
            future.result()
        return sorted(self._results.items())


def _verify_chunk(items: list[tuple[bytes, str]], public_key: Ed25519PublicKey) -> list[bool]:
    return [signature_valid(data, sig, public_key) for data, sig in items]


def _run_tails(count: int, batch: Sequence[object]) -> list[int]:
    """The last record of each run linked by ``prev``: one signature covers each run."""
    tails = []
    for i in range(count):
        nxt: Any = batch[i + 1] if i + 1 < count else None
        if nxt is None or nxt["prev"] != batch[i]["hash"]:  # type: ignore[index]
            tails.append(i)
    return tails


def _seq_of(record: object) -> int | None:
    if isinstance(record, dict):
        seq = record.get("seq")
        if type(seq) is int:
            return seq
    return None


# --- the sequence phase and storage --------------------------------------------------


def ingest_batch(
    engine: Engine,
    key: Ed25519PrivateKey,
    device_id: str,
    batch: Sequence[object],
    *,
    now: int,
    signatures: str = "all",
    pool: Executor | None = None,
) -> IngestOutcome:
    """Verify ``batch`` against the stored head of ``device_id`` and store its valid prefix.

    Raises :class:`UnknownDeviceError` or :class:`RevokedDeviceError`; every
    other problem is an :class:`IngestOutcome` (409 or 422) with a receipt.
    """
    with engine.connect() as conn:
        device = load_device(conn, device_id)
    if device.revoked:
        raise RevokedDeviceError(f"device {device_id!r} is revoked")
    tail_only = signatures == "tail"
    content = _check_content(batch, device_id, device.public_key, not tail_only, pool, now)
    outcome = _store(engine, key, device, batch, content, now)
    if tail_only and outcome is None:
        # A tail signature failed to cover the stored prefix: check every one.
        content = _check_content(batch, device_id, device.public_key, True, pool, now)
        outcome = _store(engine, key, device, batch, content, now)
    assert outcome is not None
    return outcome


def _store(
    engine: Engine,
    key: Ed25519PrivateKey,
    device: DeviceHead,
    batch: Sequence[object],
    content: _Content,
    now: int,
) -> IngestOutcome | None:
    """The sequence phase in one transaction; None asks the caller to check every signature."""
    good: list[dict[str, Any]] = [r for r in batch[: len(content.data)]]  # type: ignore[misc]
    with write_transaction(engine) as conn:
        head = load_device(conn, device.device_id, lock=True)
        if head.revoked:
            raise RevokedDeviceError(f"device {device.device_id!r} is revoked")
        gaps = collect_declared_gaps(good, head.public_key, head.device_id)
        verifier = ChainVerifier(
            head.public_key, head.device_id, head.head_seq, head.head_hash, gaps, signatures=False
        )
        held = _held_hashes(conn, head, good)
        accepted = _linked_prefix(good, verifier)
        if len(accepted) < len(good):
            held.update((good[i]["seq"], good[i]["hash"]) for i in accepted)
        bridged: list[DeclaredGap] = []
        duplicates = 0
        failure: Failure | None = None
        failed_at = len(good)
        for index in range(len(accepted), len(good)):
            record = good[index]
            seq = record["seq"]
            if seq <= verifier.last_seq:
                known = held.get(seq)
                if known == record["hash"]:
                    duplicates += 1
                    continue
                failure = (
                    Failure(seq, "regression", f"expected seq {verifier.next_seq}")
                    if known is None
                    else Failure(seq, "fork", "the portal holds another record at this seq")
                )
                failed_at = index
                break
            before = verifier.next_seq
            failure = verifier.check_sequence(record)
            if failure is not None:
                failed_at = index
                break
            if seq > before:
                bridged.append(next(g for g in gaps if g.last_seq + 1 == seq))
            verifier.last_seq, verifier.last_hash = seq, record["hash"]
            held[seq] = record["hash"]
            accepted.append(index)
        if failure is None:
            failure = content.failure
            failed_at = len(good)
        if accepted and not content.sig_checked[accepted[-1]]:
            # Tail mode: the stored prefix ends before the signature that covered it.
            tail = good[accepted[-1]]
            data, _ = seal_digest(tail, checked=True)
            if not signature_valid(data, tail["sig"], head.public_key):
                conn.rollback()
                return None
            content.sig_checked[accepted[-1]] = True
        if failure is not None and failure.reason == "gap" and failed_at == 0:
            receipt = store_receipt(conn, key, head.device_id, head.head_seq, head.head_hash, now)
            _touch(conn, head.device_id, now)
            return IngestOutcome(409, receipt, expected_seq=head.head_seq + 1, failure=failure)
        _insert_records(conn, content, accepted)
        for gap in bridged:
            _record_gap(conn, head.device_id, gap, _gap_record(good, gap), now)
        head_seq, head_hash = verifier.last_seq, verifier.last_hash
        conn.execute(
            update(devices)
            .where(devices.c.device_id == head.device_id)
            .values(head_seq=head_seq, head_hash=head_hash, last_seen_ms=now)
        )
        receipt = store_receipt(conn, key, head.device_id, head_seq, head_hash, now)
        outcome = IngestOutcome(
            200 if failure is None else 422,
            receipt,
            accepted=len(accepted),
            duplicates=duplicates,
            failure=failure,
            stored_seqs=[good[i]["seq"] for i in accepted],
        )
        if failure is not None:
            _keep_evidence(conn, head, batch[failed_at:], failure, now)
        return outcome


def _linked_prefix(good: list[dict[str, Any]], verifier: ChainVerifier) -> list[int]:
    """Accept the leading records that are each the next seq and link to the one before.

    The common case, in a tight loop: for such a record
    ``ChainVerifier.check_sequence`` finds nothing and bridges nothing.
    """
    seq, prev = verifier.next_seq, verifier.last_hash
    count = 0
    for record in good:
        if record["seq"] != seq or record["prev"] != prev:
            break
        seq, prev = seq + 1, record["hash"]
        count += 1
    if count:
        verifier.last_seq, verifier.last_hash = seq - 1, prev
    return list(range(count))


def _held_hashes(conn: Connection, head: DeviceHead, good: list[dict[str, Any]]) -> dict[int, str]:
    """Stored hashes for the batch's seqs at or below the head (duplicates and forks)."""
    seqs = [r["seq"] for r in good if r["seq"] <= head.head_seq]
    if not seqs:
        return {}
    rows = conn.execute(
        select(records.c.seq, records.c.hash).where(
            records.c.device_id == head.device_id,
            records.c.seq >= min(seqs),
            records.c.seq <= max(seqs),
        )
    )
    return {int(row.seq): row.hash for row in rows}


_RECORD_COLUMNS = (
    "device_id", "seq", "hash", "prev", "type", "wall_ms", "synced", "boot", "mono_ns",
    "anchor", "data", "body", "received_ms", "covered_ms", "sig_checked",
)  # fmt: skip
# ``data`` as it was stored so far: compact, keys in the order received.
_encode_data = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# Plain positional statements for the drivers: the JSON columns get text we already encoded.
_INSERT_SQL = (
    f"INSERT INTO records ({', '.join(_RECORD_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_RECORD_COLUMNS))})"
)
_COPY_SQL = f"COPY records ({', '.join(_RECORD_COLUMNS)}) FROM STDIN"


def _rows(
    device_id: str, batch: Sequence[object], datas: list[bytes], now: int
) -> list[tuple[Any, ...]]:
    """The values of each checked record's row, all but ``sig_checked`` (known later).

    ``body`` is the canonical text the content phase already built, with
    ``hash`` and ``sig`` spliced in, which parses back to the record; this and
    a positional executemany spare SQLAlchemy's per-row JSON processing.
    """
    rows = []
    for r, data in zip(batch, datas, strict=False):
        assert isinstance(r, dict)
        canonical = data.decode("utf-8")
        rows.append(
            (
                device_id, r["seq"], r["hash"], r["prev"], r["type"], r["wall_ms"],
                r["synced"], r["boot"], r["mono_ns"], r["anchor"], _encode_data(r["data"]),
                f'{canonical[:-1]},"hash":"{r["hash"]}","sig":"{r["sig"]}"}}',
                now,
                now,  # covered_ms: the receipt signed in the same transaction covers it
            )
        )  # fmt: skip
    return rows


def _insert_records(conn: Connection, content: _Content, indexes: list[int]) -> None:
    """Insert the accepted records (``indexes`` into the batch) in one executemany."""
    if not indexes:
        return
    rows, flags = content.rows, content.sig_checked
    params = [(*rows[i], flags[i]) for i in indexes]
    if conn.dialect.name == "postgresql":
        # COPY streams the rows in one go, where an executemany of INSERTs
        # cost a round trip per row (about 70 µs of wall time each here).
        cursor = conn.connection.cursor()  # psycopg's, in this transaction
        try:
            with cursor.copy(_COPY_SQL) as copy:
                for row in params:
                    copy.write_row(row)
        finally:
            cursor.close()
        return
    conn.exec_driver_sql(_INSERT_SQL, params)


def _gap_record(good: list[dict[str, Any]], gap: DeclaredGap) -> dict[str, Any]:
    return next(r for r in good if r["type"] == "gap" and r["seq"] == gap.declared_at)


def _record_gap(
    conn: Connection, device_id: str, gap: DeclaredGap, record: dict[str, Any], now: int
) -> bool:
    """Keep a declared hole and its integrity event once; False if already known."""
    known = conn.execute(
        select(declared_gaps.c.first_seq).where(
            declared_gaps.c.device_id == device_id,
            declared_gaps.c.gap_record_hash == record["hash"],
        )
    ).first()
    if known is not None:
        return False
    conn.execute(
        insert(declared_gaps).values(
            device_id=device_id,
            first_seq=gap.first_seq,
            last_seq=gap.last_seq,
            last_hash=gap.last_hash,
            gap_record_hash=record["hash"],
            gap_record_seq=record["seq"],
            reason=gap.reason,
            record=record,
            declared_ms=now,
        )
    )
    conn.execute(
        insert(integrity_events).values(
            device_id=device_id,
            kind="gap",
            first_seq=gap.first_seq,
            last_seq=gap.last_seq,
            reason="declared",
            detail=f"device declared seq {gap.first_seq}..{gap.last_seq} lost: {gap.reason}",
            at_ms=now,
        )
    )
    return True


def _touch(conn: Connection, device_id: str, now: int) -> None:
    conn.execute(update(devices).where(devices.c.device_id == device_id).values(last_seen_ms=now))


def _evidence_text(record: object) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=repr)


def _keep_evidence(
    conn: Connection, head: DeviceHead, refused: Sequence[object], failure: Failure, now: int
) -> None:
    """Keep every refused record; taint the device only if it signed the first one."""
    signed = [signed_by(r, head.public_key) for r in refused]
    conn.execute(
        insert(rejected_records),
        [
            {
                "device_id": head.device_id,
                "seq": _seq_of(r),
                "reason": failure.reason if i == 0 else "after_rejected",
                "detail": failure.detail if i == 0 else f"follows refused seq {failure.seq}",
                "body": _evidence_text(r),
                "received_ms": now,
                "signed_by_device": signed[i],
            }
            for i, r in enumerate(refused)
        ],
    )
    if signed and signed[0]:
        conn.execute(
            insert(integrity_events).values(
                device_id=head.device_id,
                kind="fork" if failure.reason == "fork" else "rejected",
                first_seq=failure.seq,
                last_seq=_seq_of(refused[-1]),
                reason=failure.reason,
                detail=failure.detail,
                at_ms=now,
            )
        )
        logger.warning("device %s: signed record refused: %s", head.device_id, failure)
    else:
        _abuse(conn, head.device_id, failure.reason, f"unsigned or foreign: {failure}", now)


def _abuse(
    conn: Connection,
    device_id: str | None,
    kind: str,
    detail: str,
    now: int,
    client: str | None = None,
) -> None:
    conn.execute(
        insert(abuse_log).values(
            device_id=device_id, kind=kind, detail=detail[:2000], client=client, at_ms=now
        )
    )
    logger.info("abuse for device %s from %s: %s", device_id, client, detail)


def record_abuse(
    engine: Engine, device_id: str, kind: str, detail: str, *, client: str | None, now: int
) -> None:
    """Log a refused request (malformed, too large) against an enrolled device's id.

    Requests naming unknown ids go to the server log only, so that random ids
    cannot fill the table.
    """
    with engine.begin() as conn:
        known = conn.execute(
            select(devices.c.device_id).where(devices.c.device_id == device_id)
        ).first()
        if known is None:
            logger.info(
                "refused request for unknown device %r from %s: %s", device_id, client, detail
            )
            return
        _abuse(conn, device_id, kind, detail, now, client)


# --- gap declarations ----------------------------------------------------------------


def declare_gap(
    engine: Engine, key: Ed25519PrivateKey, device_id: str, record: object, *, now: int
) -> IngestOutcome:
    """Record a hole declared by a signed ``gap`` record (docs/protocol.md)."""
    with engine.connect() as conn:
        device = load_device(conn, device_id)
    if device.revoked:
        raise RevokedDeviceError(f"device {device_id!r} is revoked")
    failure = ChainVerifier(device.public_key, device_id).check_content(record)
    gap: DeclaredGap | None = None
    if failure is None:
        assert isinstance(record, dict)
        if record["type"] != "gap":
            failure = Failure(record["seq"], "encoding", "a gap declaration needs a 'gap' record")
        else:
            parsed = parse_gap_data(record)
            if isinstance(parsed, str):
                failure = Failure(record["seq"], "encoding", parsed)
            else:
                gap = parsed
    with write_transaction(engine) as conn:
        head = load_device(conn, device_id, lock=True)
        if gap is not None:
            assert isinstance(record, dict)
            failure = _gap_problem(conn, head, gap, record)
        if failure is None and gap is not None:
            assert isinstance(record, dict)
            _record_gap(conn, device_id, gap, record, now)
            if gap.last_seq > head.head_seq:
                conn.execute(
                    update(devices)
                    .where(devices.c.device_id == device_id)
                    .values(head_seq=gap.last_seq, head_hash=gap.resume_prev)
                )
                head = load_device(conn, device_id)
        _touch(conn, device_id, now)
        receipt = store_receipt(conn, key, device_id, head.head_seq, head.head_hash, now)
        if failure is not None:
            _keep_evidence(conn, head, [record], failure, now)
            return IngestOutcome(422, receipt, failure=failure)
        return IngestOutcome(200, receipt)


def _gap_problem(
    conn: Connection, head: DeviceHead, gap: DeclaredGap, record: dict[str, Any]
) -> Failure | None:
    seq = record["seq"]
    known = conn.execute(
        select(declared_gaps.c.first_seq).where(
            declared_gaps.c.device_id == head.device_id,
            declared_gaps.c.gap_record_hash == record["hash"],
        )
    ).first()
    if known is not None:
        return None  # the same declaration again: the same answer
    if seq <= head.head_seq:
        stored = conn.execute(
            select(records.c.hash).where(
                records.c.device_id == head.device_id, records.c.seq == seq
            )
        ).scalar()
        if stored == record["hash"]:
            return None  # already stored in order
        if stored is not None:
            return Failure(seq, "fork", "the portal holds another record at this seq")
    expected = head.head_seq + 1
    if not gap.bridges(expected):
        return Failure(
            seq,
            "gap",
            f"declared range {gap.first_seq}..{gap.last_seq} does not contain expected seq "
            f"{expected}",
        )
    if gap.last_seq == head.head_seq and gap.last_hash not in ("", head.head_hash):
        return Failure(seq, "link", "last_hash differs from the stored record at last_seq")
    if gap.last_seq == head.head_seq and gap.last_hash == "" and head.head_hash != ZERO_HASH:
        return Failure(seq, "link", "the portal holds record last_seq: last_hash must be given")
    return None
