"""The end-to-end demo: a portal, two real agent daemons, fraud found (``make demo``)."""
