from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import ZERO_HASH, build_record, verify_chain


def test_three_records_chain_and_verify() -> None:
    key = Ed25519PrivateKey.generate()
    prev, records = ZERO_HASH, []
    for seq in (1, 2, 3):
        rec = build_record(
            key,
            device="dev-1",
            seq=seq,
            prev=prev,
            type="badge",
            wall_ms=seq,
            synced=True,
            boot="b",
            mono_ns=seq,
            anchor="",
            data={"uid": "04A1"},
        )
        records.append(rec)
        prev = rec["hash"]
    report = verify_chain(records, key.public_key(), "dev-1")
    assert report.ok and report.head_seq == 3
    records[1]["data"]["uid"] = "04A2"
    report = verify_chain(records, key.public_key(), "dev-1")
    assert report.failure is not None and (report.failure.seq, report.failure.reason) == (2, "hash")
