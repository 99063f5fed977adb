"""One read per presentation of a card, decided from poll outcomes alone.

A reader that polls a card resting on it sees the same UID at every poll;
:class:`PresenceTracker` turns that stream into one read per presentation. A
UID counts again only after it was missing from ``absent_polls`` consecutive
conclusive polls *and* ``repeat_window_s`` has passed since it was last seen,
so a badge wobbling at the edge of the field, or tapped twice in a hurry,
becomes one ``badge`` record. Pure logic: the caller passes the time.
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

    def _gone(self, seen: _Seen, now: float) -> bool:
        return (
            seen.absent_polls >= self.absent_polls and now - seen.last_seen >= self.repeat_window_s
        )

    def __len__(self) -> int:
        return len(self._seen)
