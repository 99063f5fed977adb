"""The personalisation station: turns blank NTAG 424 DNA cards into Qatysu cards at the
city's office (docs/cards-station.md). Never run at a club."""
