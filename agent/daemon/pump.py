"""Events from readers and sensors become records, one at a time, in arrival order.

Readers and sensors call :meth:`EventPump.submit` from their own threads and
return at once; the pump's thread writes each event through the
:class:`~agent.records.store.RecordStore` and only then gives feedback: the green light means
the record is on disk. An event that cannot be stored gets the red pattern.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Protocol

from agent.daemon.health import ReaderHealth
from agent.daemon.watch import EventLog
from agent.exceptions import ProtocolError, QatysuError
from agent.hardware.events import BadgeRead, Event, ReaderStatus, SensorChange
from agent.records.store import RecordStore

__all__ = ["EventPump", "FeedbackSink"]

logger = logging.getLogger(__name__)

STALL_S = 10.0  # an event waiting this long means the writer is stuck


class FeedbackSink(Protocol):
    def accepted(self) -> None: ...

    def cannot_persist(self) -> None: ...

    def set_reader_fault(self, fault: bool) -> None: ...


class EventPump:
    def __init__(
        self,
        store: RecordStore,
        watch: EventLog,
        health: ReaderHealth,
        feedback: FeedbackSink | None = None,
    ) -> None:
        self.store = store
        self.watch = watch
        self.health = health
        self.feedback = feedback
        self._queue: queue.Queue[tuple[Event, float]] = queue.Queue()
        self._busy_since: float | None = None
        self.thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._stop = threading.Event()

    def submit(self, event: Event) -> None:
        self._queue.put((event, time.monotonic()))

    def start(self) -> None:
        self.thread.start()

    def stop(self, deadline_s: float) -> None:
        """Finish the event in progress and what is queued, within ``deadline_s``."""
        self._stop.set()
        self.thread.join(deadline_s)
        if self.thread.is_alive():
            logger.error("writer still busy after %.1f s; stopping without it", deadline_s)
        left = self._queue.qsize()
        if left:
            logger.warning("%d event(s) arrived during shutdown and were not recorded", left)

    @property
    def healthy(self) -> bool:
        """The thread runs and no event has waited or been in hand for STALL_S."""
        if not self.thread.is_alive():
            return False
        busy = self._busy_since
        return busy is None or time.monotonic() - busy < STALL_S

    def _run(self) -> None:
        while True:
            try:
                event, queued_at = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            self._busy_since = queued_at
            try:
                self.handle(event)
            except Exception:
                logger.exception("writing %r failed", event)
            finally:
                self._busy_since = None

    def handle(self, event: Event) -> dict[str, Any] | None:
        """Write ``event``'s record, then feedback and the watch event; the record or None."""
        if isinstance(event, BadgeRead):
            return self._badge(event)
        if isinstance(event, SensorChange):
            record = self._write(event.kind, event.record_data())
            self.watch.publish(
                {
                    "kind": event.kind,
                    "sensor": event.sensor,
                    "state": event.state,
                    "seq": record["seq"] if record else None,
                }
            )
            return record
        if isinstance(event, ReaderStatus):
            changed = self.health.apply(event)
            if self.feedback is not None and changed:
                self.feedback.set_reader_fault(self.health.any_fault)
            self.watch.publish(
                {
                    "kind": "reader",
                    "reader": event.reader,
                    "state": event.state,
                    "detail": event.detail,
                }
            )
            return self._write("reader", event.record_data())
        logger.error("unknown event %r", event)
        return None

    def _badge(self, read: BadgeRead) -> dict[str, Any] | None:
        record = self._write("badge", read.record_data())
        if self.feedback is not None:
            if record is not None:
                self.feedback.accepted()
            else:
                self.feedback.cannot_persist()
        self.watch.publish(
            {
                "kind": "badge",
                **read.record_data(),
                "stored": record is not None,
                "seq": record["seq"] if record else None,
            }
        )
        return record

    def _write(self, type: str, data: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return self.store.write(type, data)
        except (QatysuError, ProtocolError) as exc:
            logger.error("%s event not stored: %s", type, exc)
            return None
