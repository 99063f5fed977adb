"""Records signed and verified per second on one core, against raw Ed25519.

The ceiling is ``cryptography``'s own Ed25519 sign and verify of the same
canonical bytes, measured in the same run: a record can never be signed or
verified faster than that, so the ratios show what encoding, shape checks,
hashing and chaining cost on top.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import ZERO_HASH, ChainVerifier, build_record, seal_digest, verify_chain
from bench.common import finish, load_average, load_note, median, parse_args, table

DEVICE = "kz-alm-0001"


def pin_to_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def make_records(key: Ed25519PrivateKey, n: int) -> list[dict[str, Any]]:
    records, prev = [], ZERO_HASH
    for seq in range(1, n + 1):
        record = build_record(
            key, device=DEVICE, seq=seq, prev=prev, type="badge",
            wall_ms=1_767_225_600_000 + seq * 900, synced=True,
            boot="6f1d2a8e-3b7c-4e59-a0d4-2c8e9b1f7a35", mono_ns=4_000_000_000 + seq * 900_000_000,
            anchor="5f" * 32,
            data={"reader": "кіреберіс", "driver": "mfrc522", "uid": f"04{seq:012X}", "uid_len": 7},
        )  # fmt: skip
        records.append(record)
        prev = record["hash"]
    return records


def rate(n: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def measure(n: int, rounds: int) -> dict[str, list[float]]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    records = make_records(key, n)
    payloads = [seal_digest(r)[0] for r in records]
    sigs = [key.sign(p) for p in payloads]

    def raw_sign() -> None:
        for p in payloads:
            key.sign(p)

    def raw_verify() -> None:
        for s, p in zip(sigs, payloads, strict=True):
            public.verify(s, p)

    def sign() -> None:
        make_records(key, n)

    def feed(signatures: bool) -> Callable[[], None]:
        def run() -> None:
            verifier = ChainVerifier(public, DEVICE, signatures=signatures)
            for r in records:
                if verifier.feed(r) is not None:
                    raise AssertionError("benchmark chain does not verify")

        return run

    def whole_chain() -> None:
        if not verify_chain(records, public, DEVICE).ok:
            raise AssertionError("benchmark chain does not verify")

    cases: dict[str, Callable[[], object]] = {
        "raw_sign": raw_sign,
        "raw_verify": raw_verify,
        "sign": sign,
        "verify_full": feed(True),
        "verify_chain_only": feed(False),
        "verify_chain_call": whole_chain,
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():  # interleaved, so drift hits all alike
            results[name].append(rate(n, run))
    return results


def main() -> int:
    args = parse_args(__doc__ or "")
    n, rounds = (500, 3) if args.quick else (5000, 7)
    pinned = pin_to_one_core()
    loads = [load_average()]
    results = measure(n, rounds)
    loads.append(load_average())
    med = {name: median(values) for name, values in results.items()}
    rows = [
        ["raw Ed25519 sign (ceiling)", med["raw_sign"], min(results["raw_sign"]), 1.0],
        ["build_record (encode, check, hash, sign)", med["sign"], min(results["sign"]),
         med["sign"] / med["raw_sign"]],
        ["raw Ed25519 verify (ceiling)", med["raw_verify"], min(results["raw_verify"]), 1.0],
        ["ChainVerifier.feed, full (signature per record)", med["verify_full"],
         min(results["verify_full"]), med["verify_full"] / med["raw_verify"]],
        ["verify_chain() incl. gap pre-scan", med["verify_chain_call"],
         min(results["verify_chain_call"]), med["verify_chain_call"] / med["raw_verify"]],
        ["ChainVerifier.feed, chain only (signatures=False)", med["verify_chain_only"],
         min(results["verify_chain_only"]), med["verify_chain_only"] / med["raw_verify"]],
    ]  # fmt: skip
    body = (
        f"{n} badge records per round, {rounds} rounds interleaved, {pinned}; "
        "rates in records per second (median and worst round). The ratio is against "
        "the raw Ed25519 operation of the same kind, measured in the same run.\n\n"
        + table(["operation", "median /s", "worst /s", "ratio to raw"], rows)
        + "\n\n"
        + load_note(loads, "one core")
    )
    headline = {
        "records": n,
        "rounds": rounds,
        "sign_per_s": round(med["sign"]),
        "verify_full_per_s": round(med["verify_full"]),
        "verify_chain_only_per_s": round(med["verify_chain_only"]),
        "raw_sign_per_s": round(med["raw_sign"]),
        "raw_verify_per_s": round(med["raw_verify"]),
        "sign_ratio": round(med["sign"] / med["raw_sign"], 3),
        "verify_full_ratio": round(med["verify_full"] / med["raw_verify"], 3),
    }
    finish("protocol", "Protocol: signing and verifying records", body, headline, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
