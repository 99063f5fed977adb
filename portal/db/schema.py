"""The portal's one :data:`metadata` and its core tables (SQLAlchemy Core).

Times are Unix milliseconds (UTC). Other areas import these tables by name.
The reconciliation tables (``portal/reconcile/schema.py``) register on the same
:data:`metadata`; the migrations' environment imports both modules, so the
Alembic revisions in ``portal/migrations`` describe exactly these tables
(checked by ``tests/portal/test_schema.py``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
    text,
)

__all__ = [
    "abuse_log",
    "admin_tokens",
    "card_counters",
    "card_grants",
    "cards",
    "centers",
    "declared_gaps",
    "device_addresses",
    "devices",
    "enroll_tokens",
    "integrity_events",
    "metadata",
    "rate_buckets",
    "receipts",
    "records",
    "rejected_records",
    "sessions",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

centers = Table(
    "centers",
    metadata,
    Column("center_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # Reads of cards not registered as ntag424-sun are card_not_authenticated (0009).
    Column("require_card_auth", Boolean, nullable=False, server_default=false()),
    # The city district, free text as the city names it; None when not given (0011).
    Column("district", Text, nullable=True),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("center_id", String(64), ForeignKey("centers.center_id"), nullable=False),
    Column("public_key", String(64), nullable=False, unique=True),
    Column("agent_version", Text, nullable=False),
    Column("hardware", JSON, nullable=False),
    Column("enrolled_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
    Column("last_seen_ms", BigInteger, nullable=True),
    # The stored chain's head; after a declared hole, the hole's end and the
    # ``prev`` the next record must carry (docs/protocol.md, Receipts).
    Column("head_seq", BigInteger, nullable=False, default=0),
    Column("head_hash", String(64), nullable=False),
)

records = Table(
    "records",
    metadata,
    Column("device_id", String(64), ForeignKey("devices.device_id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("prev", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("wall_ms", BigInteger, nullable=False),
    Column("synced", Boolean, nullable=False),
    Column("boot", String(64), nullable=False),
    Column("mono_ns", BigInteger, nullable=False),
    Column("anchor", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("body", JSON, nullable=False),  # the record exactly as received (parsed)
    Column("received_ms", BigInteger, nullable=False),
    Column("covered_ms", BigInteger, nullable=True),  # server_ms of the first covering receipt
    Column("sig_checked", Boolean, nullable=False),
    PrimaryKeyConstraint("device_id", "seq"),
    Index("ix_records_type_wall", "type", "wall_ms"),
    Index("ix_records_unchecked", "sig_checked"),
    # Each device's boot records alone (a few per device): its latest boot before a
    # reconciliation period is one seek, however long ago it was (migration 0008).
    Index(
        "ix_records_boots",
        "device_id",
        "seq",
        sqlite_where=text("type = 'boot'"),
        postgresql_where=text("type = 'boot'"),
    ),
)

receipts = Table(
    "receipts",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("device_id", String(64), ForeignKey("devices.device_id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("record_hash", String(64), nullable=False),
    Column("server_ms", BigInteger, nullable=False),
    Column("body", JSON, nullable=False),
    Index("ix_receipts_device_seq", "device_id", "seq"),
)

declared_gaps = Table(
    "declared_gaps",
    metadata,
    Column("device_id", String(64), ForeignKey("devices.device_id"), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),  # "" when the device could not know it
    Column("gap_record_hash", String(64), nullable=False),
    Column("gap_record_seq", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("record", JSON, nullable=False),  # the signed gap record itself
    Column("declared_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("device_id", "gap_record_hash"),
)

integrity_events = Table(
    "integrity_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), ForeignKey("devices.device_id"), nullable=False),
    Column("kind", String(32), nullable=False),  # gap, rejected, fork, signature_late
    Column("first_seq", BigInteger, nullable=True),
    Column("last_seq", BigInteger, nullable=True),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_integrity_events_device", "device_id", "at_ms"),
)

rejected_records = Table(
    "rejected_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),  # as named in the URL; may be unknown
    Column("seq", BigInteger, nullable=True),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("signed_by_device", Boolean, nullable=False),
    Index("ix_rejected_records_device", "device_id", "received_ms"),
)

abuse_log = Table(
    "abuse_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("client", String(64), nullable=True),
    Column("at_ms", BigInteger, nullable=False),
)

admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", String(16), nullable=False),  # operator | auditor
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
)

enroll_tokens = Table(
    "enroll_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("center_id", String(64), ForeignKey("centers.center_id"), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_by_key", String(64), nullable=True),
    Column("device_id", String(64), nullable=True),
)

# A page session: the cookie carries only a random id; this row holds whose it is, so a
# logout (or the token's revocation) ends every copy of the cookie.
sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # SHA-256 of the cookie's session id
    Column("token_hash", String(64), ForeignKey("admin_tokens.token_hash"), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
    Index("ix_sessions_token", "token_hash"),
)

# The rate limiter's buckets when several portal processes serve one database
# (``serve --workers N`` on PostgreSQL): one row per bucket key, updated in one upsert.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("tokens", Double, nullable=False),
    Column("at_s", Double, nullable=False),  # wall clock, seconds
    Column("granted", Boolean, nullable=False),  # did the last take succeed
)

# Where a device's signed uploads came from, as runs: a new row when the address
# differs from the device's latest run, else that run's last_ms and count move on.
# An honest device has a row per address change; the clone check reads the runs.
device_addresses = Table(
    "device_addresses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), ForeignKey("devices.device_id"), nullable=False),
    Column("address", String(64), nullable=False),
    Column("first_ms", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
    Column("uploads", Integer, nullable=False),
    Index("ix_device_addresses_device", "device_id", "id"),
)

# Cards with their own proof of a read (NTAG 424 DNA SUN, docs/cards.md; migration 0009).
# Keys are never stored in the clear: ``diversified`` cards' keys are derived from the
# card master key in the data dir; ``imported`` cards' keys are sealed under a key
# derived from it (``sealed_keys``, AES-GCM, hex).
cards = Table(
    "cards",
    metadata,
    Column("uid", String(14), primary_key=True),
    Column("kind", String(32), nullable=False),  # ntag424-sun
    Column("state", String(16), nullable=False),  # issued | active | revoked | replaced
    Column("key_source", String(16), nullable=False),  # diversified | imported
    Column("sealed_keys", Text, nullable=True),
    Column("activated_counter", BigInteger, nullable=True),  # the activation read's counter
    Column("grant_hash", String(64), nullable=True),  # the station grant that issued it
    Column("created_ms", BigInteger, nullable=False),
    Column("activated_ms", BigInteger, nullable=True),
    Column("revoked_ms", BigInteger, nullable=True),  # revoked or replaced: reads after fail
    Column("replaced_by", String(14), nullable=True),
)

# A personalisation station's grant: like an enrollment token, stored hashed, good for
# ``count`` cards until ``expires_ms``; bound to the Ed25519 key of the one station that
# enrolled with it, whose signed requests must come in time order (migration 0010).
card_grants = Table(
    "card_grants",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("used", Integer, nullable=False),
    Column("url", Text, nullable=False),  # the base URL written into the cards' NDEF file
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("station_key", String(64), nullable=True, unique=True),
    Column("enrolled_ms", BigInteger, nullable=True),
    Column("last_at_ms", BigInteger, nullable=True),  # the newest signed request's time
    Column("ended_ms", BigInteger, nullable=True),  # ended early by the operator
)

# Every SUN read the reconciliation accepted, by its position in time: the counters a
# later period's reads must exceed (decision 0921).
card_counters = Table(
    "card_counters",
    metadata,
    Column("uid", String(14), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("counter", BigInteger, nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("uid", "device_id", "seq"),
    Index("ix_card_counters_uid_time", "uid", "time_ms"),
)
