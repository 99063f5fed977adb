"""Reconciliation: presence records against parents' confirmations (docs/reconciliation.md).

Sans-I/O core: :mod:`.imports` (CSV parsing), :mod:`.lessons` (schedule to
lessons in the portal's zone), :mod:`.trusted_time`, :mod:`.engine` (the rules),
:mod:`.totals` and :mod:`.report` (renderers). I/O shells: :mod:`.schema` and
:mod:`.store` (database). The synthetic city is :mod:`portal.synthetic`.
"""
