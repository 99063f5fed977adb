"""Badge readers: one module per driver behind :class:`agent.readers.base.Reader`."""
