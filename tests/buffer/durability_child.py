"""The writer traced by test_durability_trace: a real RecordBuffer and ChainWriter
appending records (across two segment rolls) and applying one receipt.

``python -m tests.buffer.durability_child STATE_DIR MARKERS`` writes one line to
MARKERS (its own fd, so the write shows in the trace) right after each call
returns: ``K <seq> <hash>`` once a record is appended, ``A <seq>`` once a
receipt is applied; the first line, ``P <public key> <device>``, names the key.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer.buffer import RecordBuffer
from agent.clock import ManualClock
from agent.config import BufferConfig
from agent.protocol import build_receipt, public_key_b64
from agent.records.chain import ChainWriter

DEVICE = "dev-trace"
RECORDS = 150  # segments of 64: rolls at 65 and 129
ACK_AFTER = 140  # then a receipt for ACK_SEQ frees the first segment
ACK_SEQ = 70
CONFIG = BufferConfig(segment_records=64)


def main(state_dir: Path, markers: Path) -> int:
    key = Ed25519PrivateKey.generate()
    portal = Ed25519PrivateKey.generate()
    clock = ManualClock()
    out = os.open(markers, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def mark(text: str) -> None:
        os.write(out, text.encode("ascii") + b"\n")

    mark(f"P {public_key_b64(key)} {DEVICE}")
    buffer = RecordBuffer(state_dir, CONFIG, clock=clock).open()
    writer = ChainWriter(buffer, key, DEVICE, clock)
    hashes: dict[int, str] = {}
    for index in range(RECORDS):
        clock.advance(0.5)
        record = writer.write("badge", {"reader": "door", "uid": f"{index:08X}", "uid_len": 4})
        hashes[record["seq"]] = record["hash"]
        mark(f"K {record['seq']} {record['hash']}")
        if record["seq"] == ACK_AFTER:
            receipt = build_receipt(
                portal, device=DEVICE, seq=ACK_SEQ, record_hash=hashes[ACK_SEQ], server_ms=1
            )
            buffer.acknowledge(receipt)
            mark(f"A {ACK_SEQ}")
    buffer.close()
    os.close(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
