"""The crash-safe local record buffer (TinyDB over append-only segment files).

See docs/buffer.md for the on-disk layout and recovery. The public surface:

- :class:`agent.buffer.buffer.RecordBuffer`: the one writer's buffer (loads TinyDB);
- :class:`agent.buffer.state.LostRange`: records the device lost, to be declared;
- :func:`agent.buffer.status.read_status` and its :class:`~agent.buffer.status.BufferStatus`:
  what a reader may learn from the files while the daemon runs.

The rest is internal: ``lines`` (the checksummed line format) and ``recovery``
(the recovery plan) are pure; ``storage`` (TinyDB's storage over one segment) and
``files`` (the folder's layout and lock) do the I/O. This file imports nothing,
so the pure modules load without TinyDB.
"""
