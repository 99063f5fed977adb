"""Getting records to the portal: the httpx client, the sans-I/O policy, the uploader.

:class:`PortalClient` (client.py) is the only I/O; :mod:`agent.uplink.policy`
decides batches, backoff and what each answer means; :class:`Uploader`
(uploader.py) runs rounds against an :class:`UploadStore`. See docs/uplink.md.
"""

from __future__ import annotations

from agent.uplink.answer import PortalAnswer
from agent.uplink.client import PortalClient
from agent.uplink.store import ChainStore
from agent.uplink.uploader import Uploader, UploadResult, UploadStore

__all__ = ["ChainStore", "PortalAnswer", "PortalClient", "UploadResult", "UploadStore", "Uploader"]
