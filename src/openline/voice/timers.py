"""No-input timers: the poke and the silence end, measured from the last speech of either side."""

from __future__ import annotations

from collections.abc import Callable

from openline.voice.clock import Clock

TICK_S = 0.1


class SilenceTimers:
    """Pokes the caller after ``poke_s`` of silence and ends the call after ``end_s``.

    ``busy()`` says whether someone is speaking or a reply is on its way; time spent busy
    does not count as silence."""

    def __init__(self, clock: Clock, *, poke_s: Callable[[], float | None],
                 end_s: Callable[[], float], busy: Callable[[], bool],
                 poke: Callable[[], None], end: Callable[[], None]) -> None:
        self.clock = clock
        self._poke_s, self._end_s, self._busy = poke_s, end_s, busy
        self._poke, self._end = poke, end
        self._last_activity = clock.monotonic()
        self._poked = False

    def mark_activity(self, *, reset_poke: bool = True) -> None:
        """Someone spoke: the silence starts again (and may be poked again)."""
        self._last_activity = self.clock.monotonic()
        if reset_poke:
            self._poked = False

    async def run(self) -> None:
        while True:
            await self.clock.sleep(TICK_S)
            now = self.clock.monotonic()
            if self._busy():
                self._last_activity = max(self._last_activity, now - TICK_S)
                continue
            idle = now - self._last_activity
            if idle >= self._end_s():
                self._end()
                return
            poke = self._poke_s()
            if poke is not None and not self._poked and idle >= poke:
                self._poked = True
                self._poke()
