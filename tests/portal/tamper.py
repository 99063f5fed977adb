"""Generated mutations of valid batches, each with the answer the portal must give.

Every mutation is built against the device's current stored head ``h`` from a
window of honest records ``h+1 ..``; the expected answer says which status
and reason the portal must give, at which seq, and how many honest records of
the window it may store before the bad one.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import build_record, seal
from tests.portal.support import SimDevice


@dataclass(frozen=True)
class Expected:
    status: int
    reason: str | None
    seq: int | None
    stored: int  # honest records of the window the portal stores
    signed: bool  # the refused record carries the device's valid signature


@dataclass
class Case:
    kind: str
    batch: list[Any]
    expected: Expected


def _unsigned(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("hash", "sig")}


def _flip_sig(sig: str, rng: random.Random) -> str:
    raw = bytearray(base64.b64decode(sig))
    raw[rng.randrange(64)] ^= 1 << rng.randrange(8)
    return base64.b64encode(bytes(raw)).decode()


class Campaign:
    """Mutations of ``honest`` (the device's full honest chain) at head ``h``."""

    def __init__(
        self,
        device: SimDevice,
        honest: list[dict[str, Any]],
        other: list[dict[str, Any]],
        seed: int,
    ) -> None:
        self.device = device
        self.honest = honest
        self.other = other  # another device's valid records
        self.rng = random.Random(seed)
        self.attacker = Ed25519PrivateKey.generate()
        self.kinds: dict[str, Callable[[int, list[dict[str, Any]], int], Case]] = {
            "changed_field": self.changed_field,
            "changed_field_rehashed": self.changed_field_rehashed,
            "changed_signature": self.changed_signature,
            "dropped": self.dropped,
            "inserted": self.inserted,
            "swapped": self.swapped,
            "replayed_other_device": self.replayed,
            "resigned_other_key": self.resigned,
            "resigned_batch": self.resigned_batch,
            "forked_seq": self.forked,
            "relinked": self.relinked,
            "broken_shape": self.broken_shape,
        }

    def make(self, head: int) -> Case:
        size = self.rng.randint(2, 8)
        window = [dict(r) for r in self.honest[head : head + size]]
        p = self.rng.randrange(len(window) - 1)  # leave one after p for drops and swaps
        kind = self.rng.choice(sorted(self.kinds))
        return self.kinds[kind](head, window, p)

    def _refused(
        self,
        kind: str,
        batch: list[Any],
        p: int,
        reason: str,
        seq: int | None,
        signed: bool = False,
    ) -> Case:
        return Case(kind, batch, Expected(422, reason, seq, p, signed))

    def changed_field(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        field, value = self.rng.choice(
            [("wall_ms", w[p]["wall_ms"] + 1), ("synced", not w[p]["synced"]), ("type", "door"),
             ("data", {**w[p]["data"], "uid": "DEADBEEF"}), ("mono_ns", w[p]["mono_ns"] + 7),
             ("anchor", "a" * 64), ("boot", "x")]
        )  # fmt: skip
        w[p] = dict(w[p], **{field: value})
        return self._refused("changed_field", w, p, "hash", w[p]["seq"])

    def changed_field_rehashed(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        body = dict(_unsigned(w[p]), wall_ms=w[p]["wall_ms"] - 3_600_000)
        resealed = seal(body, self.attacker)
        w[p] = dict(resealed, sig=w[p]["sig"])  # new hash, the old signature
        return self._refused("changed_field_rehashed", w, p, "signature", w[p]["seq"])

    def changed_signature(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        w[p] = dict(w[p], sig=_flip_sig(w[p]["sig"], self.rng))
        return self._refused("changed_signature", w, p, "signature", w[p]["seq"])

    def dropped(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        del w[p]
        if p == 0:
            return Case("dropped", w, Expected(409, "gap", None, 0, False))
        return self._refused("dropped", w, p, "gap", w[p]["seq"], signed=True)

    def inserted(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        body = dict(
            _unsigned(w[p]),
            data={"reader": "r", "driver": "simulated", "uid": "0BADC0DE", "uid_len": 4},
        )
        w.insert(p, seal(body, self.attacker))
        return self._refused("inserted", w, p, "signature", w[p]["seq"])

    def swapped(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        w[p], w[p + 1] = w[p + 1], w[p]
        if p == 0:
            return Case("swapped", w, Expected(409, "gap", None, 0, False))
        return self._refused("swapped", w, p, "gap", w[p]["seq"], signed=True)

    def replayed(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        foreign = dict(self.rng.choice(self.other))
        w[p] = foreign
        return self._refused("replayed_other_device", w, p, "device", foreign["seq"])

    def resigned(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        w[p] = seal(_unsigned(w[p]), self.attacker)  # same content and hash, another key
        return self._refused("resigned_other_key", w, p, "signature", w[p]["seq"])

    def resigned_batch(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        prev = w[0]["prev"]
        forged = []
        for r in w:
            body = dict(_unsigned(r), prev=prev, wall_ms=r["wall_ms"] + 60_000)
            forged.append(seal(body, self.attacker))
            prev = forged[-1]["hash"]
        return self._refused("resigned_batch", forged, 0, "signature", forged[0]["seq"])

    def forked(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        # The device's own key signs another record at a seq the portal holds.
        target = self.rng.randint(max(1, head + p - 5), head + p) if head + p >= 1 else None
        if target is None:
            return self.changed_signature(head, w, p)
        honest = self.honest[target - 1]
        alt = build_record(
            self.device.key,
            **{k: v for k, v in _unsigned(honest).items() if k != "v"}
            | {"wall_ms": honest["wall_ms"] + 5},
        )
        w.insert(p, alt)
        return self._refused("forked_seq", w, p, "fork", target, signed=True)

    def relinked(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        # The device's key signs the next seq with a prev that is not the stored hash.
        body = {k: v for k, v in _unsigned(w[p]).items() if k != "v"}
        body["prev"] = "f" * 64
        w[p] = build_record(self.device.key, **body)
        return self._refused("relinked", w, p, "link", w[p]["seq"], signed=True)

    def broken_shape(self, head: int, w: list[dict[str, Any]], p: int) -> Case:
        choice = self.rng.randrange(4)
        if choice == 0:
            w[p] = {k: v for k, v in w[p].items() if k != "anchor"}
        elif choice == 1:
            w[p] = dict(w[p], extra=1)
        elif choice == 2:
            w[p] = dict(w[p], seq=str(w[p]["seq"]))
        else:
            w[p] = [w[p]]  # type: ignore[assignment]
        seq = w[p]["seq"] if isinstance(w[p], dict) and isinstance(w[p]["seq"], int) else None
        return self._refused("broken_shape", w, p, "encoding", seq)
