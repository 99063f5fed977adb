"""HTTP routers: device-facing (``devices``), operator (``admin``), auditor reports
(``reports``, ``audit``) and the server-rendered pages (``pages``)."""
