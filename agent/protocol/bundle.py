"""Bundles: pending records on a USB stick (SPEC section 1, ``qatysu export``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.exceptions import ProtocolError
from agent.protocol.keys import public_key_from_b64
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
    """Verify a parsed bundle; with ``public_key`` it must be signed by that key."""

    def broken(reason: str, detail: str, device: str | None = None) -> BundleReport:
        return BundleReport(device, 0, Failure(None, reason, detail), (), None, None)

    if not isinstance(bundle, dict) or set(bundle) != {"v", "device", "public_key", "records"}:
        return broken("encoding", "bundle must hold exactly v, device, public_key, records")
    device, records = bundle["device"], bundle["records"]
    if bundle["v"] != 1 or not isinstance(device, str) or not isinstance(records, list):
        return broken("encoding", "bundle v, device or records has the wrong type")
    key_text = bundle["public_key"]
    if public_key is not None and key_text != public_key:
        return broken("signature", "bundle is not signed by the given public key", device)
    try:
        key = public_key_from_b64(key_text if isinstance(key_text, str) else "")
    except ProtocolError as exc:
        return broken("encoding", f"bundle public_key: {exc}", device)
    if not records:
        return BundleReport(device, 0, None, (), None, None)
    report: ChainReport = verify_chain(records, key, device)
    first = records[0].get("seq") if isinstance(records[0], dict) else None
    return BundleReport(
        device,
        len(records),
        report.failure,
        report.gaps,
        first if isinstance(first, int) else None,
        report.head_seq if report.ok else None,
    )
