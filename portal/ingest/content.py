"""The content phase: encoding, device, hash and signature of each record, before any lock."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.protocol import Failure, bad_signature, content_bytes
from portal.ingest.signatures import CHUNK, SignatureJobs, run_tails
from portal.ingest.storage import batch_rows

__all__ = ["CheckedContent", "check_content"]


@dataclass
class CheckedContent:
    """Records whose encoding, device and hash are right, with their canonical bytes."""

    data: list[bytes]
    failure: Failure | None  # the first content failure (at index len(data))
    sig_checked: list[bool]
    rows: list[tuple[Any, ...]]  # the insert's values for each, but ``sig_checked``


def check_content(
    batch: Sequence[object],
    device_id: str,
    public_key: Ed25519PublicKey,
    every: bool,
    pool: Executor | None,
    now: int,
) -> CheckedContent:
    """Encoding, device and hash of each record, then its signature (all or run tails).

    The checks of :func:`agent.protocol.content_bytes`, keeping the canonical
    bytes. With ``every`` the signature checks go to ``pool`` in chunks while
    this thread goes on with the next records, and then builds the rows to
    insert, so the Ed25519 work (which releases the GIL) overlaps the Python work.
    """
    datas: list[bytes] = []
    failure: Failure | None = None
    jobs = SignatureJobs(public_key, pool)
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
            if len(pending) == CHUNK:
                jobs.add(len(datas) - CHUNK, pending)
                pending = []
    if pending:
        jobs.add(len(datas) - len(pending), pending)
    if not every:
        for i in run_tails(len(datas), batch):
            jobs.add(i, [(datas[i], batch[i]["sig"])])  # type: ignore[index]
    rows = batch_rows(device_id, batch, datas, now)
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
    return CheckedContent(datas, failure, checked_flags, rows)
