"""The personalisation station: turns blank NTAG 424 DNA cards into Qatysu cards at the
city's office (docs/cards.md, "The station"). Never run at a club.

:mod:`.personalise` talks to the card (sans I/O, through a :class:`~.personalise.Channel`),
:mod:`.client` to the portal, :mod:`.flow` runs one card from probe to activation,
:mod:`.channels` names the readers, :mod:`.store` keeps the station's own key and
enrollment (never a card key), :mod:`.hygiene` keeps the process to itself.
"""
