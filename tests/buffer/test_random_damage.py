"""Random damage to random files: whatever happens, the chain stays verifiable.

For each seed: write a random number of records (acknowledging some), damage
one file at random, reopen, declare the losses and write one more record.
Every record of an undamaged segment that was pending is still pending, and
the pending chain verifies, bridging only declared holes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.buffer.conftest import Device

KINDS = ["truncate", "flip", "zeros", "delete", "garbage", "state"]


@pytest.mark.parametrize("seed", range(30))
def test_random_damage_keeps_the_chain_verifiable(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    device = Device(tmp_path / "state")
    buffer = device.open()
    written = device.write(rng.randrange(1, 260))
    if rng.random() < 0.5:
        seq = rng.randrange(1, len(written) + 1)
        buffer.acknowledge(device.receipt(seq, written[seq - 1]["hash"]))
    acked = buffer.last_ack[0]
    device.close()

    files = device.segment_files()
    victim = rng.choice(files)
    kind = rng.choice(KINDS)
    data = victim.read_bytes()
    if kind == "truncate":
        victim.write_bytes(data[: rng.randrange(0, len(data))])
    elif kind == "flip":
        at = rng.randrange(len(data))
        victim.write_bytes(data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :])
    elif kind == "zeros":
        start = rng.randrange(len(data))
        end = min(len(data), start + rng.randrange(1, 2000))
        victim.write_bytes(data[:start] + b"\0" * (end - start) + data[end:])
    elif kind == "delete":
        victim.unlink()
    elif kind == "garbage":
        victim.write_bytes(data + rng.randbytes(rng.randrange(1, 300)))
    else:
        (device.state_dir / "buffer" / "state.json").unlink()

    buffer = device.open()
    pending = {r["seq"]: r for r in buffer.pending()}
    untouched = {p.name for p in files} - {victim.name}
    for name in untouched:
        first = int(name[4:16])
        for record in written[first - 1 : first - 1 + 64]:
            if record["seq"] > max(acked, buffer.last_ack[0]):
                assert pending.get(record["seq"]) == record, (kind, name, record["seq"])

    assert device.writer is not None
    device.writer.declare_losses()
    device.write(1)
    buffer = device.reopen()
    assert buffer.lost_ranges == []
    records = buffer.pending()
    assert records, kind
    device.verify(records)
    # No seq is reused where the buffer could know it was used: only a
    # damaged tail of the newest segment (indistinguishable from a torn
    # append, docs/buffer.md) may give back seqs.
    newest = victim == files[-1]
    if not (newest and kind in ("truncate", "flip", "zeros")):
        assert records[-1]["seq"] > len(written), (kind, victim.name)
    device.close()
