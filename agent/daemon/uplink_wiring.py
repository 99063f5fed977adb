"""The one place the daemon builds the uplink's client, policy and uploader."""

from __future__ import annotations

from agent.clock import Clock
from agent.config import AgentConfig
from agent.records.store import RecordStore
from agent.uplink.client import PortalClient
from agent.uplink.policy import UploadPolicy
from agent.uplink.uploader import Uploader

__all__ = ["make_uploader"]


def make_uploader(
    config: AgentConfig, store: RecordStore, clock: Clock
) -> tuple[Uploader, PortalClient]:
    """The uploader over ``store``, and its client (the caller closes it)."""
    portal = config.portal
    # `qatysu enroll --insecure` is the only way an http:// URL gets into the
    # config; the technician chose plain http there (docs/decisions/0631).
    client = PortalClient(
        portal.url,
        ca_file=portal.ca_file,
        insecure=portal.url.startswith("http://"),
        timeout_s=portal.timeout_s,
    )
    policy = UploadPolicy.from_config(portal)
    uploader = Uploader(
        store,
        client,
        policy,
        portal.public_key,
        portal.device_id,
        clock,
        device_key_b64=store.public_key,
    )
    return uploader, client
