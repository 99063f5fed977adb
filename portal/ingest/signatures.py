"""Ed25519 checks of a batch, spread over a thread pool (``cryptography`` releases the GIL)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.protocol import ProtocolError, seal_digest, signature_valid

__all__ = ["CHUNK", "SignatureJobs", "run_tails", "signed_by"]

CHUNK = 64  # signatures per thread-pool job: large enough to amortise, small to overlap


class SignatureJobs:
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
        """Queue the checks of ``(canonical bytes, sig)`` of records ``first``, ``first + 1``..."""
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


def run_tails(count: int, batch: Sequence[object]) -> list[int]:
    """The last record of each run linked by ``prev``: one signature covers each run."""
    tails = []
    for i in range(count):
        nxt: Any = batch[i + 1] if i + 1 < count else None
        if nxt is None or nxt["prev"] != batch[i]["hash"]:  # type: ignore[index]
            tails.append(i)
    return tails


def signed_by(record: object, public_key: Ed25519PublicKey) -> bool:
    """True when ``record`` carries a valid signature of ``public_key`` over its content."""
    if not isinstance(record, dict) or not isinstance(record.get("sig"), str):
        return False
    try:
        data, _ = seal_digest(record)
    except (ProtocolError, TypeError, ValueError):
        return False
    return signature_valid(data, record["sig"], public_key)
