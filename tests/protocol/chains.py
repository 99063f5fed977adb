"""Building blocks for the protocol tests: keys, chains and hypothesis strategies."""

from __future__ import annotations

import copy
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from agent.protocol import MAX_SAFE_INT, RECORD_TYPES, ZERO_HASH, build_record

DEVICE = "dev-7"
# Fixed keys keep failures reproducible; any key works.
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
HEX = "0123456789abcdef"

safe_ints = st.integers(-MAX_SAFE_INT, MAX_SAFE_INT)
ascii_keys = st.text(st.characters(max_codepoint=127), max_size=8)
# st.text never yields surrogates by default: these are Unicode scalar values.
scalar_text = st.text(max_size=12)
hex64 = st.text(st.sampled_from(HEX), min_size=64, max_size=64)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | safe_ints | scalar_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ascii_keys, inner, max_size=4),
    max_leaves=12,
)
data_objects = st.dictionaries(ascii_keys, json_values, max_size=5)
# Random types, but never "gap": a gap record could bridge holes the tests make.
record_types = st.sampled_from(sorted(RECORD_TYPES - {"gap"})) | st.text(
    min_size=1, max_size=10
).filter(lambda t: t != "gap")


def make_chain(
    items: list[tuple[str, dict[str, Any]]],
    *,
    key: Ed25519PrivateKey = KEY,
    device: str = DEVICE,
    first_seq: int = 1,
    prev: str = ZERO_HASH,
) -> list[dict[str, Any]]:
    """Sign one record per ``(type, data)``, chained from ``(first_seq - 1, prev)``."""
    records = []
    for offset, (rtype, data) in enumerate(items):
        seq = first_seq + offset
        record = build_record(
            key,
            device=device,
            seq=seq,
            prev=prev,
            type=rtype,
            wall_ms=1_700_000_000_000 + seq * 1000,
            synced=seq % 2 == 0,
            boot="3f1c2b7e-0d1a-4c55-9a0e-6b2d1f00aa01",
            mono_ns=5_000_000_000 + seq * 1_000_000,
            anchor="" if seq < 3 else "ab" * 32,
            data=data,
        )
        records.append(record)
        prev = record["hash"]
    return records


def resign(record: dict[str, Any], key: Ed25519PrivateKey = KEY) -> dict[str, Any]:
    """``record`` with hash and signature recomputed (a forgery by whoever holds ``key``)."""
    from agent.protocol import seal

    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return seal(copy.deepcopy(body), key)


chain_items = st.lists(st.tuples(record_types, data_objects), min_size=1, max_size=8)
