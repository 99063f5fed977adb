"""Bundles: pending records on a USB stick (docs/protocol.md, ``qatysu export``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.protocol.canonical import DuplicateKeys, check_value
from agent.protocol.errors import EncodingError, ProtocolError
from agent.protocol.keys import public_key_b64, public_key_from_b64
from agent.protocol.values import is_int
from agent.protocol.verify import ChainReport, DeclaredGap, Failure, verify_chain

__all__ = ["BundleReport", "bundle_filename", "make_bundle", "verify_bundle"]


def make_bundle(device: str, public_key: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"v": 1, "device": device, "public_key": public_key, "records": list(records)}


def bundle_filename(bundle: dict[str, Any]) -> str:
    records = bundle["records"]
    if not records:
        raise ProtocolError("an empty bundle has no file name")
    return f"qatysu-{bundle['device']}-{records[0]['seq']}-{records[-1]['seq']}.json"


@dataclass(frozen=True)
class BundleReport:
    device: str | None
    count: int
    failure: Failure | None
    gaps: tuple[DeclaredGap, ...]
    first_seq: int | None
    last_seq: int | None

    @property
    def exit_code(self) -> int:
        """0 intact, 3 intact with declared gaps, 1 broken or forged."""
        if self.failure is not None:
            return 1
        return 3 if self.gaps else 0


def verify_bundle(bundle: object, public_key: str | None = None) -> BundleReport:
    """Verify a parsed bundle; with ``public_key`` it must be signed by that key.

    Every record and link inside is checked, bridging the holes the bundle's
    own signed ``gap`` records declare; the first record's ``prev`` is taken
    as given unless its ``seq`` is 1. ``gaps`` lists every declaration in an
    intact bundle (a reader of it should know records were lost, even where
    the hole lies before the bundle's first record).
    """

    def broken(reason: str, detail: str, device: str | None = None) -> BundleReport:
        return BundleReport(device, 0, Failure(None, reason, detail), (), None, None)

    if not isinstance(bundle, dict) or set(bundle) != {"v", "device", "public_key", "records"}:
        return broken("encoding", "bundle must hold exactly v, device, public_key, records")
    device, records = bundle["device"], bundle["records"]
    try:  # the records are checked one by one below, with their seq
        check_value({k: v for k, v in bundle.items() if k != "records"})
        if isinstance(bundle, DuplicateKeys):
            raise EncodingError(f"duplicate key {bundle.duplicate!r}")
    except EncodingError as exc:
        return broken("encoding", f"bundle: {exc}")
    if not (is_int(bundle["v"]) and bundle["v"] == 1):
        return broken("encoding", "bundle 'v' must be 1")
    if not isinstance(device, str) or not device or not isinstance(records, list):
        return broken("encoding", "bundle 'device' must be a string and 'records' an array")
    try:
        key = public_key_from_b64(bundle["public_key"])
    except ProtocolError as exc:
        return broken("encoding", f"bundle public_key: {exc}", device)
    if public_key is not None:
        try:
            wanted = public_key_from_b64(public_key)
        except ProtocolError as exc:
            return broken("signature", f"given public key: {exc}", device)
        if public_key_b64(wanted) != public_key_b64(key):
            return broken("signature", "bundle is not signed by the given public key", device)
    if not records:
        return BundleReport(device, 0, None, (), None, None)
    report: ChainReport = verify_chain(records, key, device)
    first = records[0].get("seq") if isinstance(records[0], dict) else None
    return BundleReport(
        device,
        len(records),
        report.failure,
        report.declared if report.ok else report.gaps,
        first if is_int(first) else None,
        report.head_seq if report.ok else None,
    )
