"""The JSON API: device-facing (``devices``), operator and auditor administration
(``admin``), reconciliation reports and CSV imports (``reports``); the HTML pages are
:mod:`portal.web`."""
