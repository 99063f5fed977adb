"""The portal's device API over httpx (docs/portal.md): the only module here that does I/O.

TLS is always verified (the system's and certifi's CAs, plus ``ca_file`` for a
city PKI). Plain ``http://`` is refused unless ``insecure=True``, which allows
plain http and nothing else: it never turns certificate checks off.
Transport failures become :class:`~agent.exceptions.PortalUnreachable`. Bodies are
made and read by :mod:`agent.uplink.codec`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import certifi
import httpx

from agent.config import PortalConfig
from agent.exceptions import ConfigError, PortalRefused, PortalUnreachable
from agent.uplink.codec import (
    PortalAnswer,
    decode_answer,
    encode_record,
    enrollment_problem,
    gzip_batch,
)

__all__ = ["PortalClient"]

logger = logging.getLogger(__name__)

API = "/api/v1"


def _tls_context(ca_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"portal.ca_file {ca_file}: cannot load CA certificates: {exc}"
            ) from exc
    return context


class PortalClient:
    """One portal, one pooled httpx client. Not shared between threads without a lock."""

    def __init__(
        self,
        url: str,
        *,
        ca_file: str = "",
        insecure: bool = False,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"portal.url {url!r}: must be an https:// URL")
        if parts.scheme == "http" and not insecure:
            raise ConfigError(f"portal.url {url!r}: plain http is refused without --insecure")
        self.url = url.rstrip("/")
        verify: ssl.SSLContext | bool = _tls_context(ca_file) if parts.scheme == "https" else True
        self._http = httpx.Client(
            base_url=self.url + API,
            verify=verify,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"User-Agent": "qatysu-agent"},
            follow_redirects=False,
        )

    @classmethod
    def from_config(cls, portal: PortalConfig, *, insecure: bool = False) -> PortalClient:
        return cls(
            portal.url, ca_file=portal.ca_file, insecure=insecure, timeout_s=portal.timeout_s
        )

    # --- the device API -----------------------------------------------------------

    def enroll(
        self, token: str, public_key_b64: str, agent_version: str, hardware: dict[str, Any]
    ) -> dict[str, Any]:
        """docs/portal.md, Device API: ``{device_id, center_id, portal_public_key}`` on 201.

        Raises PortalRefused (401 unknown token, 410 used or expired, ...)
        or PortalUnreachable."""
        answer = self._send(
            "POST",
            "/enroll",
            json={
                "token": token,
                "public_key": public_key_b64,
                "agent_version": agent_version,
                "hardware": hardware,
            },
        )
        problem = enrollment_problem(answer)
        if problem or answer.body is None:
            raise PortalRefused(f"{self.url}: {problem}", answer.status)
        return answer.body

    def post_records(self, device_id: str, records: Sequence[dict[str, Any]]) -> PortalAnswer:
        """``POST /devices/{id}/records`` with a gzip body; any status is returned."""
        return self.post_encoded(device_id, [encode_record(r) for r in records])

    def post_encoded(self, device_id: str, parts: Sequence[bytes]) -> PortalAnswer:
        """:meth:`post_records` for records already encoded by :func:`encode_record`."""
        return self.post_body(device_id, gzip_batch(parts))

    def post_body(self, device_id: str, body: bytes) -> PortalAnswer:
        """:meth:`post_records` for a body made by :func:`gzip_batch`."""
        return self._send(
            "POST",
            f"/devices/{quote(device_id, safe='')}/records",
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    def post_gap(self, device_id: str, record: dict[str, Any]) -> PortalAnswer:
        """``POST /devices/{id}/gaps`` with the signed gap record alone."""
        return self._send(
            "POST", f"/devices/{quote(device_id, safe='')}/gaps", json={"record": record}
        )

    def cursor(self, device_id: str) -> PortalAnswer:
        """``GET /devices/{id}/cursor``: a receipt for the portal's head of this device."""
        return self._send("GET", f"/devices/{quote(device_id, safe='')}/cursor")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PortalClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> PortalAnswer:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.RequestError as exc:  # connect, read, write, timeouts, protocol, decoding
            raise PortalUnreachable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        return decode_answer(response.status_code, response.content, response.headers)
