"""The portal's settings as one validated value object.

:meth:`Settings.from_env` is the only place that reads the environment; every
other module takes a :class:`Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from portal.exceptions import PortalConfigError

__all__ = ["DB_FILE", "Settings"]

DB_FILE = "portal.sqlite3"
SignatureMode = Literal["all", "tail"]


@dataclass(frozen=True)
class Settings:
    """Everything the portal can be told; defaults are the documented ones (docs/portal.md)."""

    data_dir: Path = Path("portal-data")
    db_url: str = ""  # "" means SQLite in data_dir
    tz: str = "Asia/Almaty"
    check_signatures: SignatureMode = "all"
    max_batch_records: int = 5000
    max_body_bytes: int = 8 * 1024 * 1024
    rate_per_s: float = 5.0  # sustained requests per second per device
    rate_burst: int = 30
    heartbeat_interval_s: int = 300
    time_tolerance_s: int = 120
    # Trust an unsynced record's own clock when its receipts bracket it this tightly
    # (decision 0810); 0 disables that (the receipts-only rule).
    time_bracket_s: int = 600
    lesson_margin_min: int = 30
    verify_threads: int = 2
    signature_pass_s: float = 5.0  # tail mode: pause of the background signature pass
    session_max_age_s: int = 12 * 3600
    # The session cookie goes only over HTTPS (the portal runs behind a TLS proxy);
    # off only for plain http on 127.0.0.1 (tests, the demo).
    cookie_secure: bool = True
    # uvicorn under `serve`: open connections (503 beyond) and the seconds a
    # connection may take to send a request head (portal/http_server.py).
    max_connections: int = 1000
    head_timeout_s: float = 10.0
    language: str = "ru"  # auditor pages when neither the user nor the browser chooses
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.db_url:
            object.__setattr__(self, "db_url", f"sqlite:///{self.data_dir / DB_FILE}")
        if self.check_signatures not in ("all", "tail"):
            raise PortalConfigError(
                f"check_signatures must be 'all' or 'tail', not {self.check_signatures!r}"
            )
        for name in (
            "max_batch_records",
            "max_body_bytes",
            "rate_burst",
            "verify_threads",
            "max_connections",
        ):
            if getattr(self, name) < 1:
                raise PortalConfigError(f"{name} must be at least 1")
        if self.language not in ("ru", "en", "kk"):
            raise PortalConfigError(f"language must be ru, en or kk, not {self.language!r}")
        if self.time_bracket_s < 0:
            raise PortalConfigError("time_bracket_s must not be negative (0 disables it)")
        if self.rate_per_s <= 0:
            raise PortalConfigError("rate_per_s must be positive")
        if self.head_timeout_s <= 0:
            raise PortalConfigError("head_timeout_s must be positive")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.tz)
        except (KeyError, ValueError, OSError) as exc:
            raise PortalConfigError(f"tz {self.tz!r} is not a known time zone") from exc

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"Settings(data_dir={str(self.data_dir)!r}, db={_redact(self.db_url)!r}, "
            f"tz={self.tz!r}, check_signatures={self.check_signatures!r})"
        )

    @classmethod
    def from_env(
        cls,
        data_dir: Path | None = None,
        db_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: object,
    ) -> Settings:
        """Settings from arguments first, then QATYSU_PORTAL_* variables, then defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        directory = data_dir or env.get("QATYSU_PORTAL_DATA_DIR")
        if directory:
            values["data_dir"] = Path(directory)
        url = db_url or env.get("QATYSU_PORTAL_DB")
        if url:
            values["db_url"] = url
        for name, kind in _ENV_FIELDS.items():
            raw = env.get(f"QATYSU_PORTAL_{name.upper()}")
            if raw is None:
                continue
            try:
                values[name] = kind(raw)
            except ValueError as exc:
                raise PortalConfigError(
                    f"QATYSU_PORTAL_{name.upper()}={raw!r}: not a {_kind_name(kind)}"
                ) from exc
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _flag(raw: str) -> bool:
    """An on/off variable: 1/0, true/false, yes/no, on/off."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_ENV_FIELDS: dict[str, Callable[[str], object]] = {
    "tz": str,
    "check_signatures": str,
    "max_batch_records": int,
    "max_body_bytes": int,
    "rate_per_s": float,
    "rate_burst": int,
    "heartbeat_interval_s": int,
    "time_tolerance_s": int,
    "time_bracket_s": int,
    "language": str,
    "lesson_margin_min": int,
    "verify_threads": int,
    "signature_pass_s": float,
    "max_connections": int,
    "head_timeout_s": float,
    "cookie_secure": _flag,
}


def _kind_name(kind: Callable[[str], object]) -> str:
    return "flag (on/off)" if kind is _flag else getattr(kind, "__name__", "value")


def _redact(url: str) -> str:
    """A database URL without its password, for logs and reprs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
