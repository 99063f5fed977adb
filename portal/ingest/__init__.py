"""Verified ingest: the one path by which records enter the store (HTTP and bundles).

A batch is checked in two phases. The content phase (encoding, device, hash,
signature; the order of :meth:`agent.protocol.ChainVerifier.check_content`)
needs no database and runs before any lock, with the Ed25519 checks spread over
a thread pool (``cryptography`` releases the GIL). The sequence phase runs
inside one write transaction against the device's stored head, which it locks:
duplicates are skipped, a held seq with another hash is a ``fork``, and the
longest valid prefix is stored together with the new head and a signed receipt.

One module per job, :mod:`portal.ingest.batch` putting them together:

- :mod:`~portal.ingest.body`: request bodies (size limits, gzip, lenient JSON)
- :mod:`~portal.ingest.content`: the content phase
- :mod:`~portal.ingest.signatures`: the threaded Ed25519 checks
- :mod:`~portal.ingest.sequence`: the sequence phase (no SQL: the held hashes are given)
- :mod:`~portal.ingest.storage`: rows of ``records``, the one INSERT/COPY
- :mod:`~portal.ingest.heads`: the device row and its stored head
- :mod:`~portal.ingest.receipts`: receipts signed and kept
- :mod:`~portal.ingest.gaps`: declared holes
- :mod:`~portal.ingest.evidence`: refused records kept, integrity events
- :mod:`~portal.ingest.abuse`: the abuse log
- :mod:`~portal.ingest.addresses`: the network addresses of signed uploads (clone check)
- :mod:`~portal.ingest.outcome`: what an upload is answered
- :mod:`~portal.ingest.bundles`: bundles from a USB stick, through the same ingest
- :mod:`~portal.ingest.reverify`: stored chains re-verified (``qatysu-portal verify``)
"""
