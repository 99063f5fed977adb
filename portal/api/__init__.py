"""HTTP routers: device-facing (``devices``), operator and auditor (``admin``), pages."""
