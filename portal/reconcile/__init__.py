"""Reconciliation: presence records against parents' confirmations (docs/reconciliation.md).

Sans-I/O core: :mod:`.imports` (CSV parsing), :mod:`.lessons` (schedule to
lessons in the portal's zone), :mod:`.trusted_time`, :mod:`.engine` (the rules),
:mod:`.totals`, :mod:`.report` (renderers) and :mod:`.generator` (a synthetic
city with labels). I/O shells: :mod:`.schema` and :mod:`.store` (database).
"""
