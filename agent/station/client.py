"""The station's side of the portal's card API over httpx: the only I/O to the portal here.

TLS rules are the uplink's (:mod:`agent.uplink.client`): always verified, plain
``http://`` only when ``insecure``. Enrollment sends the grant once; every later
request is signed with the station key (``QatysuStation``, agent.protocol.card_keys),
its time strictly after the previous one even if the wall clock steps back.
Transport failures become :class:`~agent.exceptions.PortalUnreachable`, refusals
:class:`~agent.exceptions.PortalRefused` with the status. Nothing here logs a body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.exceptions import ConfigError, PortalRefused, PortalUnreachable
from agent.protocol.card_keys import station_authorization
from agent.uplink.client import _tls_context

__all__ = ["API", "StationClient"]

API = "/api/v1/cards"
ANSWER_LIMIT = 8192  # a sealed bundle is about 500 bytes; a longer answer is refused


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class StationClient:
    """One portal; ``key`` signs every request but the enrollment."""

    def __init__(
        self,
        url: str,
        key: Ed25519PrivateKey,
        *,
        insecure: bool = False,
        ca_file: str = "",
        timeout_s: float = 10.0,
        now_ms: Callable[[], int] = _wall_ms,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"portal {url!r}: must be an https:// URL")
        if parts.scheme == "http" and not insecure:
            raise ConfigError(f"portal {url!r}: plain http is refused without --insecure")
        self.url = url.rstrip("/")
        self._key = key
        self._now_ms = now_ms
        self._last_ms = 0
        verify = _tls_context(ca_file) if parts.scheme == "https" else True
        self._http = httpx.Client(
            base_url=self.url + API,
            verify=verify,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"User-Agent": "qatysu-station"},
            follow_redirects=False,
        )

    def enroll(self, grant: str, public_key_b64: str) -> dict[str, Any]:
        """``POST /station``: bind the grant to this station's key; the pinned key comes back."""
        return self._post("/station", {"grant": grant, "public_key": public_key_b64}, 201, False)

    def card_keys(self, uid: str, station_key_b64: str, resume: bool) -> dict[str, Any]:
        """``POST /keys``: card ``uid``'s keys sealed to ``station_key_b64`` (X25519)."""
        body = {"uid": uid, "station_key": station_key_b64, "resume": resume}
        return self._post("/keys", body, 201, True)

    def activate(self, uid: str, picc: str, mac: str) -> dict[str, Any]:
        """``POST /activate`` with the card's first SUN message."""
        return self._post("/activate", {"uid": uid, "picc": picc, "mac": mac}, 200, True)

    def _at_ms(self) -> int:
        self._last_ms = max(self._now_ms(), self._last_ms + 1)
        return self._last_ms

    def _post(self, path: str, body: dict[str, Any], ok: int, signed: bool) -> dict[str, Any]:
        raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["Authorization"] = station_authorization(
                self._key, "POST", API + path, self._at_ms(), raw
            )
        try:
            with self._http.stream("POST", path, content=raw, headers=headers) as response:
                data = b""
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > ANSWER_LIMIT:
                        raise PortalRefused(
                            f"{self.url}{API}{path}: answer over {ANSWER_LIMIT} bytes",
                            response.status_code,
                        )
                status = response.status_code
        except httpx.RequestError as exc:
            raise PortalUnreachable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if status != ok or not isinstance(value, dict):
            detail = value.get("detail") if isinstance(value, dict) else None
            why = detail if isinstance(detail, str) else "no JSON answer"
            raise PortalRefused(f"{self.url}{API}{path}: {status}: {why[:200]}", status)
        return value

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StationClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
