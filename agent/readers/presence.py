"""One read per presentation of a card, for every driver; pure logic, the caller passes the time.

A card resting on a reader is seen again and again: an MFRC522 finds it at
every poll, an RDM6300 or a shop reader repeats its id while it stays in the
field. :class:`PresenceTracker` turns either stream into one read per
presentation, so a badge wobbling at the edge of the field, or tapped twice
in a hurry, becomes one ``badge`` record. It is fed one of two ways:

* :meth:`PresenceTracker.observe`, by a reader that polls and so knows when
  no card answered: a UID counts again only after it was missing from
  ``absent_polls`` consecutive conclusive polls *and* ``repeat_window_s`` has
  passed since it was last seen;
* :meth:`PresenceTracker.new_presentation`, by a reader that only ever
  reports cards (it repeats them while they stay): a UID counts again once
  it has not been seen for more than ``repeat_window_s``. Build such a
  tracker with :meth:`PresenceTracker.for_repeats`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PresenceTracker"]


@dataclass
class _Seen:
    last_seen: float
    absent_polls: int = 0


class PresenceTracker:
    def __init__(self, absent_polls: int, repeat_window_s: float) -> None:
        if absent_polls < 1:
            raise ValueError(f"absent_polls must be at least 1, not {absent_polls}")
        if repeat_window_s < 0:
            raise ValueError(f"repeat_window_s must not be negative, not {repeat_window_s}")
        self.absent_polls = absent_polls
        self.repeat_window_s = repeat_window_s
        self._seen: dict[str, _Seen] = {}

    @classmethod
    def for_repeats(cls, away_s: float = 0.5) -> PresenceTracker:
        """For a reader that repeats a card's id: it is gone once unseen for over ``away_s``."""
        return cls(absent_polls=1, repeat_window_s=away_s)

    def observe(self, uid: str | None, now: float) -> bool:
        """Feed one conclusive poll (``uid`` or no card); True for a new presentation.

        A poll that could not tell (a card answered but could not be resolved,
        or the chip failed) must not be fed: it is no evidence of absence.
        """
        for key, seen in list(self._seen.items()):
            if key == uid:
                continue
            seen.absent_polls += 1
            if self._gone(seen, now):
                del self._seen[key]
        if uid is None:
            return False
        previous = self._seen.get(uid)
        new = previous is None or self._gone(previous, now)
        self._seen[uid] = _Seen(last_seen=now)
        return new

    def new_presentation(self, uid: str, now: float) -> bool:
        """Feed one read of a reader that never says "no card"; True for a new presentation."""
        # Forget cards long gone so a day of taps does not grow the table.
        for key in [k for k, s in self._seen.items() if now - s.last_seen > self.repeat_window_s]:
            del self._seen[key]
        new = uid not in self._seen
        self._seen[uid] = _Seen(last_seen=now)
        return new

    def _gone(self, seen: _Seen, now: float) -> bool:
        return (
            seen.absent_polls >= self.absent_polls and now - seen.last_seen >= self.repeat_window_s
        )

    def __len__(self) -> int:
        return len(self._seen)
