"""The control socket's handler table (docs/daemon.md)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.control.server import Handler
from agent.exceptions import ControlError
from agent.hardware.feedback import PATTERNS

if TYPE_CHECKING:
    from agent.daemon.daemon import Daemon

__all__ = ["command_table", "export_answer", "is_mock_factory"]

MAX_WATCH_MS = 30_000
MAX_UPLOAD_WAIT_S = 600.0


def is_mock_factory(factory: Any) -> bool:
    if factory is None:
        return False
    from gpiozero.pins.mock import MockFactory

    return isinstance(factory, MockFactory)


def _number(fields: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = fields.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"{name!r} must be a number, not {value!r}")
    return min(max(float(value), low), high)


def command_table(daemon: Daemon) -> dict[str, Handler]:
    """Command name → handler; ``mock-pin`` exists only with gpiozero's MockFactory."""

    def writer() -> Any:
        if daemon.store is None or daemon.store.closed:
            raise ControlError("the daemon is stopping")
        return daemon.store

    def status(fields: dict[str, Any]) -> dict[str, Any]:
        store = writer()
        head_seq, head_hash = store.head
        oldest = store.oldest_pending_wall_ms
        now_ms = time.time_ns() // 1_000_000
        upload = daemon.upload_state
        return {
            "running": True,
            "pid": os.getpid(),
            "device_id": daemon.config.portal.device_id,
            "pending": store.pending_count,
            "oldest_pending_ms": None if oldest is None else max(0, now_ms - oldest),
            "head_seq": head_seq,
            "head_hash": head_hash,
            "last_ack_seq": store.last_ack[0],
            "last_receipt_server_ms": upload.last_receipt_server_ms,
            "last_upload_ms": upload.last_upload_ms,
            "last_upload_error": upload.last_error,
            "clock_synced": daemon.clock.read().synced,
            "readers": daemon.health.snapshot(),
            "doors": {s.name: s.state for s in daemon.sensors if s.kind == "door"},
            "tamper": {s.name: s.state for s in daemon.sensors if s.kind == "tamper"},
            "uptime_s": int(time.monotonic() - daemon.started_mono),
            "healthy": daemon.healthy(),
        }

    def upload(fields: dict[str, Any]) -> dict[str, Any]:
        store = writer()
        wait_s = _number(fields, "wait_s", 30.0, 0.0, MAX_UPLOAD_WAIT_S)
        if daemon.uploads is None:
            raise ControlError("the uploader is not running")
        result = daemon.uploads.upload_now(wait_s)
        if result is None:
            raise ControlError(f"an upload round was still running after {wait_s:g} s")
        return {"uploaded": result.uploaded, "pending": store.pending_count, "error": result.error}

    def export(fields: dict[str, Any]) -> dict[str, Any]:
        from agent.uplink.offline import export_bundle

        folder = fields.get("dir")
        if not isinstance(folder, str) or not os.path.isabs(folder):
            raise ControlError("'dir' must be an absolute path")
        store = writer()
        # Under the writer's lock the bundle holds exactly what is pending, so
        # its count is known without reading it back; taps wait meanwhile.
        with store.lock:
            path = export_bundle(store, Path(folder))
            count = store.pending_count
        return export_answer(path, count)

    def ack(fields: dict[str, Any]) -> dict[str, Any]:
        from agent.uplink.offline import apply_receipt_file

        receipt = fields.get("receipt")
        if not isinstance(receipt, dict):
            raise ControlError("'receipt' must be a JSON object")
        store = writer()
        # agent.uplink.offline checks receipt files; hand it this one as a file.
        with tempfile.NamedTemporaryFile(
            "w", prefix="receipt-from-control-", suffix=".json", dir=daemon.config.device.state_dir
        ) as handle:
            json.dump(receipt, handle)
            handle.flush()
            freed = apply_receipt_file(store, Path(handle.name), daemon.config.portal.public_key)
        return {"freed": freed, "last_ack_seq": store.last_ack[0]}

    def watch(fields: dict[str, Any]) -> dict[str, Any]:
        after = fields.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int):
            raise ControlError(f"'after' must be an integer cursor, not {after!r}")
        wait_ms = int(_number(fields, "wait_ms", 1000, 0, MAX_WATCH_MS))
        return daemon.watch.wait(after, wait_ms)

    def feedback(fields: dict[str, Any]) -> dict[str, Any]:
        name = fields.get("pattern")
        if name not in PATTERNS:
            raise ControlError(f"unknown pattern {name!r} (known: {', '.join(PATTERNS)})")
        if daemon.feedback is None:
            raise ControlError("no feedback outputs: no GPIO on this machine")
        daemon.feedback.play(name)
        return {"ok": True}

    table: dict[str, Handler] = {
        "status": status,
        "upload": upload,
        "export": export,
        "ack": ack,
        "watch": watch,
        "feedback": feedback,
    }
    if is_mock_factory(daemon.pin_factory):
        table["mock-pin"] = _mock_pin(daemon.pin_factory)
    return table


def _mock_pin(factory: Any) -> Handler:
    def mock_pin(fields: dict[str, Any]) -> dict[str, Any]:
        pin, level = fields.get("pin"), fields.get("level")
        if isinstance(pin, bool) or not isinstance(pin, int) or not isinstance(level, bool):
            raise ControlError("mock-pin needs an integer 'pin' and a boolean 'level'")
        try:
            mock = factory.pin(pin)
        except Exception as exc:
            raise ControlError(f"GPIO{pin}: {exc}") from exc
        mock.drive_high() if level else mock.drive_low()
        return {"ok": True, "pin": pin, "level": level}

    return mock_pin


def export_answer(path: Path, count: int) -> dict[str, Any]:
    """The ``export`` answer for a bundle ``qatysu-<device>-<first>-<last>.json``."""
    first, last = (int(part) for part in path.stem.rsplit("-", 2)[1:])
    return {"path": str(path), "first_seq": first, "last_seq": last, "count": count}
