"""The device's records: the chain that makes them and the one store that shares them.

:mod:`chain` builds and signs the next record over any buffer (pure: no I/O
library at import); :mod:`store` is :class:`~agent.records.store.RecordStore`, the
one thread-safe owner of a process's chain and buffer; :mod:`interfaces` names
what the uploader and bundle export need from it. See docs/daemon.md.
"""
