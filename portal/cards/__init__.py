"""Cards that prove their reads (NTAG 424 DNA with SUN): registry, keys, station API shell.

The operator issues station grants and imports cards personalised elsewhere
(:mod:`.registry`, :mod:`.imports`); each card's keys come from the card master key
(:mod:`.keys`) and leave the portal only sealed to a personalisation station. The
reconciliation's card checks are pure and live in :mod:`portal.reconcile.cards`;
:func:`.registry.card_book` hands them the keys. docs/cards.md tells the city.
"""
