"""TinyDB's ``Storage`` over one append-only segment file.

TinyDB hands a storage the whole database on every write. Stock
``JSONStorage`` rewrites the file in place, which a power cut can tear and
which costs O(n) per insert. This storage appends only the documents that
are new since the last write, one checksummed line each, then fsyncs; a
segment holds a bounded number of records, so the per-insert work TinyDB
does on the whole table stays bounded too.

Contract: documents are only ever inserted (``Table.insert`` with a
``Document`` whose ``doc_id`` is the record's seq). Changing or removing a
stored document raises: a segment is deleted or rewritten as a whole by the
buffer, never edited through TinyDB.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from agent.buffer.lines import parse_segment, record_line
from agent.exceptions import BufferFullError, RecordBufferError

__all__ = ["TABLE", "SegmentStorage"]

TABLE = "_default"  # TinyDB's default table: one table per segment file
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class _StoredDoc(dict[str, Any]):
    """A stored document: TinyDB's update() mutates documents in place, so
    stored ones refuse mutation instead of silently diverging from the file."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RecordBufferError("segments are append-only: a stored record cannot change")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _refuse
    __ior__ = _refuse


class SegmentStorage(Storage):
    """One segment file as a TinyDB storage.

    ``path`` must exist and hold a valid header (the buffer creates segments
    and repairs them before TinyDB sees them). ``read_only`` storages refuse
    writes. ``used_bytes(extra)``, when given, is called before each append and
    raises :class:`BufferFullError` when ``extra`` more bytes would pass the quota.
    """

    def __init__(self, path: Path, *, read_only: bool = False, used_bytes: Any = None) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._used_bytes = used_bytes  # callable(extra) -> None, raises BufferFullError
        data = self.path.read_bytes()
        scan = parse_segment(data, _first_from_name(self.path))
        if scan.damaged or scan.torn_tail:
            raise RecordBufferError(f"{self.path}: segment needs recovery ({scan.problem})")
        self.size = scan.size
        self._docs: dict[str, dict[str, Any]] = {str(r["seq"]): _StoredDoc(r) for r in scan.records}
        self._fd: int | None = None
        if not read_only:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def read(self) -> dict[str, dict[str, Any]] | None:
        # A fresh outer dict: TinyDB replaces the table in it before write(),
        # which lets write() compare against the table as it was.
        return {TABLE: self._docs}

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        if self.read_only or self._fd is None:
            raise RecordBufferError(f"{self.path}: segment opened read-only")
        table = data.get(TABLE, {})
        old = self._docs
        if len(table) == len(old) + 1 and (last := next(reversed(table))) not in old:
            new = [(last, table[last])]  # one insert: TinyDB added it at the end
        else:
            if len(table) < len(old) or any(k not in table for k in old):
                raise RecordBufferError(f"{self.path}: segments are append-only")
            new = [(k, doc) for k, doc in table.items() if k not in old]
        if not new:
            return
        payload = b"".join(record_line(int(k), doc) for k, doc in new)
        self.append_bytes(payload)
        for k, doc in new:
            table[k] = _StoredDoc(doc)
        self._docs = table

    def append_bytes(self, payload: bytes) -> None:
        """Append and fsync; on any failure cut the file back and raise."""
        assert self._fd is not None
        if self._used_bytes is not None:
            self._used_bytes(len(payload))
        size = self.size
        try:
            written = os.write(self._fd, payload)
            if written != len(payload):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(self._fd)
        except OSError as exc:
            self._cut_back(size)
            if exc.errno in _FULL:
                raise BufferFullError(
                    exc.errno, f"{self.path}: disk full, record not stored ({exc.strerror})"
                ) from exc
            raise RecordBufferError(f"{self.path}: append failed: {exc}") from exc
        self.size = size + len(payload)

    def _cut_back(self, size: int) -> None:
        # Leave the file exactly as before the failed append. If even this
        # fails, recovery cuts the torn tail on the next start.
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError:
            pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _first_from_name(path: Path) -> int:
    # seg-000000000257.log
    try:
        return int(path.stem.split("-", 1)[1])
    except (IndexError, ValueError) as exc:
        raise RecordBufferError(f"{path}: not a segment file name") from exc
