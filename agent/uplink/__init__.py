"""Getting records to the portal: client, codec, policy, uploader, and the offline path.

:mod:`~agent.uplink.client` (:class:`PortalClient`, httpx) is the only I/O;
:mod:`~agent.uplink.codec` makes request bodies and reads answers and
:mod:`~agent.uplink.policy` decides batches, backoff and what each answer means,
both pure; :mod:`~agent.uplink.uploader` runs rounds against an
:class:`~agent.records.interfaces.UploadStore`; :mod:`~agent.uplink.offline` writes
bundles and applies receipt files. See docs/uplink.md. This file imports nothing,
so the pure modules load without httpx.
"""
