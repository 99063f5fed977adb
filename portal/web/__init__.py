"""The server-rendered HTML pages (no JavaScript): login and the device overview
(:mod:`.pages`), the auditor's reconciliation pages (:mod:`.auditor`), their interface
text (:mod:`.i18n`) and the Jinja templates (``templates/``)."""
