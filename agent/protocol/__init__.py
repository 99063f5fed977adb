"""The wire format: canonical encoding, records, chains, receipts, bundles and badge UIDs.

Imports only the standard library and ``cryptography`` (docs/architecture.md), so
the portal and third parties can verify records without hardware libraries.
"""

from __future__ import annotations

from agent.protocol.bundle import BundleReport, bundle_filename, make_bundle, verify_bundle
from agent.protocol.canonical import (
    MAX_DEPTH,
    MAX_SAFE_INT,
    DuplicateKeys,
    canonical_bytes,
    canonical_bytes_checked,
    check_value,
    parse_json,
    parse_json_lenient,
)
from agent.protocol.errors import EncodingError, ProtocolError, ReceiptError, UidError
from agent.protocol.keys import (
    b64decode_strict,
    private_key_from_raw,
    private_key_raw,
    public_key_b64,
    public_key_from_b64,
)
from agent.protocol.receipts import RECEIPT_FIELDS, build_receipt, verify_receipt
from agent.protocol.records import (
    RECORD_FIELDS,
    RECORD_TYPES,
    RECORD_VERSION,
    ZERO_HASH,
    build_record,
    check_record_shape,
    seal,
    seal_digest,
    signature_valid,
)
from agent.protocol.uids import CARD_UID_BYTES, normalise_uid
from agent.protocol.verify import (
    REASONS,
    ChainReport,
    ChainVerifier,
    DeclaredGap,
    Failure,
    bad_signature,
    collect_declared_gaps,
    content_bytes,
    parse_gap_data,
    verify_chain,
)

__all__ = [
    "CARD_UID_BYTES",
    "MAX_DEPTH",
    "MAX_SAFE_INT",
    "REASONS",
    "RECEIPT_FIELDS",
    "RECORD_FIELDS",
    "RECORD_TYPES",
    "RECORD_VERSION",
    "ZERO_HASH",
    "BundleReport",
    "ChainReport",
    "ChainVerifier",
    "DeclaredGap",
    "DuplicateKeys",
    "EncodingError",
    "Failure",
    "ProtocolError",
    "ReceiptError",
    "UidError",
    "b64decode_strict",
    "bad_signature",
    "build_receipt",
    "build_record",
    "bundle_filename",
    "canonical_bytes",
    "canonical_bytes_checked",
    "check_record_shape",
    "check_value",
    "collect_declared_gaps",
    "content_bytes",
    "make_bundle",
    "normalise_uid",
    "parse_gap_data",
    "parse_json",
    "parse_json_lenient",
    "private_key_from_raw",
    "private_key_raw",
    "public_key_b64",
    "public_key_from_b64",
    "seal",
    "seal_digest",
    "signature_valid",
    "verify_bundle",
    "verify_chain",
    "verify_receipt",
]
