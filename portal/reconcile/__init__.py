"""Reconciliation: presence records against parents' confirmations (docs/reconciliation.md).

Sans-I/O core: :mod:`.imports` (CSV parsing), :mod:`.lessons` (schedule to
lessons in the portal's zone), :mod:`.trusted_time`, :mod:`.index` (a center's
sorted timelines), :mod:`.rules` (the reasons and statuses, one table),
:mod:`.engine` (the loop), :mod:`.totals` and :mod:`.report` (the renderers). I/O
shells: :mod:`.schema` and :mod:`.store` (database). The synthetic city is
:mod:`portal.synthetic`; the HTML pages are :mod:`portal.web`.
"""
