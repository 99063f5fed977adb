"""The offline path for centers without a network: bundle out, receipt file back in.

``qatysu export DIR`` writes the pending records as a bundle (docs/protocol.md)
with :func:`export_bundle`; at the city ``qatysu-portal import-bundle FILE
--receipt-out R`` stores it and signs a receipt; back at the device ``qatysu
ack R`` applies it with :func:`apply_receipt_file`, which checks it exactly as
an upload's receipt is checked (docs/protocol.md, Receipts) before anything is freed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from agent.durable import replace_file
from agent.exceptions import OfflineError, ProtocolError, ReceiptError
from agent.protocol import (
    RECEIPT_FIELDS,
    bundle_filename,
    make_bundle,
    parse_json,
    public_key_from_b64,
)
from agent.records.interfaces import BundleStore, UploadStore
from agent.uplink.policy import check_receipt

__all__ = ["apply_receipt_file", "export_bundle", "read_receipt_file"]

logger = logging.getLogger(__name__)

MAX_RECEIPT_FILE = 64 * 1024


def export_bundle(store: BundleStore, dir: Path) -> Path:
    """Write every pending record to ``dir/qatysu-<device>-<first>-<last>.json``; returns the path.

    Undeclared losses are declared first, so the bundle bridges its own holes.
    The file appears whole or not at all (temporary file, fsync, rename).
    Nothing is freed here: only the receipt file does that.
    """
    if not dir.is_dir():
        raise OfflineError(f"{dir}: not a directory")
    store.declare_losses()
    records = store.pending()
    if not records:
        raise OfflineError(f"{dir}: nothing to export, no records are pending")
    bundle = make_bundle(store.device_id, store.public_key, records)
    target = dir / bundle_filename(bundle)
    data = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
    try:
        replace_file(target, data)
    except OSError as exc:
        raise OfflineError(f"{target}: cannot write the bundle: {exc.strerror or exc}") from exc
    logger.info(
        "exported records %d..%d (%d) to %s",
        records[0]["seq"],
        records[-1]["seq"],
        len(records),
        target,
    )
    return target


def read_receipt_file(path: Path) -> dict[str, Any]:
    """The receipt in ``path``: a bare receipt, or an answer holding one under ``receipt``."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_RECEIPT_FILE + 1)
    except OSError as exc:
        raise OfflineError(f"{path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_RECEIPT_FILE:
        raise OfflineError(f"{path}: too large for a receipt file")
    try:
        value = parse_json(raw)
    except ProtocolError as exc:
        raise OfflineError(f"{path}: not a receipt file: {exc}") from exc
    if isinstance(value, dict) and isinstance(value.get("receipt"), dict):
        value = value["receipt"]
    if not isinstance(value, dict):
        raise OfflineError(f"{path}: not a receipt file: expected a JSON object")
    if set(value) != set(RECEIPT_FIELDS):
        # A wrong file handed over (a bundle, a config): no alarm for that.
        missing = [name for name in RECEIPT_FIELDS if name not in value]
        extra = sorted(set(value) - set(RECEIPT_FIELDS))
        parts = [f"lacks {', '.join(missing)}"] if missing else []
        parts += [f"has unexpected {', '.join(extra)}"] if extra else []
        got = " and ".join(parts)
        raise OfflineError(
            f"{path}: not a receipt file: it {got} (a receipt is the JSON file "
            "'qatysu-portal import-bundle --receipt-out' writes)"
        )
    return value


def apply_receipt_file(store: BundleStore, path: Path, portal_key_b64: str) -> int:
    """Verify the receipt in ``path`` and free the records it covers; returns how many.

    A receipt not signed by the pinned portal key, for another device, below
    the last acknowledged seq or naming a hash this device does not know frees
    nothing, writes an ``alarm`` record and raises :class:`OfflineError`.
    """
    receipt = read_receipt_file(path)
    try:
        portal_key = public_key_from_b64(portal_key_b64)
    except ProtocolError as exc:
        raise OfflineError(f"portal.public_key: not a usable key: {exc}") from exc
    verdict = check_receipt(receipt, portal_key, store.device_id, store.knows, store.last_ack)
    if verdict.receipt is None:
        _alarm(store, verdict.kind, f"receipt file {path.name}: {verdict.problem}")
        raise OfflineError(f"{path}: {verdict.problem}; nothing freed")
    checked = verdict.receipt
    if (checked["seq"], checked["record_hash"]) == store.last_ack or checked["seq"] == 0:
        return 0  # already applied, or the portal held nothing
    try:
        freed = store.acknowledge(checked)
    except ReceiptError as exc:
        _alarm(store, "receipt_unknown_hash", f"receipt file {path.name}: {exc}")
        raise OfflineError(f"{path}: {exc}") from exc
    logger.info("receipt file %s: acknowledged up to seq %d, %d freed", path, checked["seq"], freed)
    return freed


def _alarm(store: UploadStore, kind: str, detail: str) -> None:
    try:
        store.write("alarm", {"kind": kind, "detail": detail[:300]})
    except OSError as exc:  # BufferFullError is an OSError too
        logger.error("cannot write alarm %s (%s): %s", kind, detail, exc)
