"""Whether the network looks unreachable: process-wide memory of the last slots' connections, so an
offline `doit --continue` fails in seconds instead of waiting out every retry of every slot."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from deadzone_build.sources.fetch import FetchResult

# Slots in a row whose every URL failed to connect before the network is taken as unreachable.
UNREACHABLE_AFTER_SLOTS = 2
OFFLINE_HINT = ("the network looks unreachable (every URL failed to connect); to build offline see README "
                "\"Running offline\" (DEADZONE_URL_REWRITE)")


class _NetworkHealth:
    """Process-wide memory of whether the last slots could connect at all (fail fast offline)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dead_slots = 0
        self._told = False

    def offline(self) -> bool:
        with self._lock:
            return self._dead_slots >= UNREACHABLE_AFTER_SLOTS

    def record(self, results: Sequence[FetchResult]) -> None:
        with self._lock:
            if results and all(result.unreachable for result in results):
                self._dead_slots += 1
            elif any(result.ok or not result.unreachable for result in results):
                self._dead_slots = 0

    def first_notice(self) -> bool:
        """True once per process: the offline hint is said once, later failures say less."""
        with self._lock:
            told, self._told = self._told, True
            return not told

    def reset(self) -> None:
        with self._lock:
            self._dead_slots, self._told = 0, False


_health = _NetworkHealth()


def network_looks_unreachable() -> bool:
    """True after UNREACHABLE_AFTER_SLOTS slots in a row failed to connect on every URL."""
    return _health.offline()


def offline_hint(results: Sequence[FetchResult]) -> str | None:
    """The one-line hint for a slot whose every URL failed to connect: in full the first time, short after."""
    if not results or not all(result.unreachable for result in results):
        return None
    return OFFLINE_HINT if _health.first_notice() else "the network looks unreachable"


def reset_network_health() -> None:
    """Forget earlier connection failures (a new run in the same process, and tests)."""
    _health.reset()
