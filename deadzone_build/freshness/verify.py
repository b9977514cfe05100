"""The lock while scraping: fetched bytes must be the locked ones; an unlocked slot is locked on first use.

Rule (documented in the README): a fetched document whose sha256 differs from the lock means
upstream moved since locking. The slot fails, naming the URL, and nothing is written: building
from other bytes than the key promises would make the key lie. `deadzone-build lock --lib ID`
records the new content (the key changes, so exactly that slot rebuilds).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from deadzone_build.errors import ScrapeError
from deadzone_build.freshness.refresh import entry_from_fetch
from deadzone_build.registry.load import Slot
from deadzone_build.registry.lock import canonical_key_part, locked_update, locked_urls


def check_against_lock(slot: Slot, reports: Iterable[Mapping[str, Any]]) -> None:
    """Raise ScrapeError when a fetched document is not the locked one."""
    locked = locked_urls(slot)
    if not locked:
        return
    moved = [(r["url"], locked[r["url"]], r.get("sha256")) for r in reports
             if r["status"] == "ok" and r["url"] in locked and locked[r["url"]] != r.get("sha256")]
    if moved:
        listed = "; ".join(f"{url}: locked {_short(old)}, fetched {_short(new)}" for url, old, new in moved[:5])
        more = f" (and {len(moved) - 5} more)" if len(moved) > 5 else ""
        raise ScrapeError(f"{slot.label}: upstream changed since it was locked: {listed}{more}. Nothing was "
                          f"written. Run `deadzone-build lock --lib {slot.lib_id}` to record the new content "
                          "(the slot's key changes, so it rebuilds), then build again.")


def lock_on_first_use(slot: Slot, reports: Iterable[Mapping[str, Any]], lock_path: Path | None) -> Slot:
    """`slot` with a lock entry recorded from this fetch, when it had none and a lock file is in use."""
    if slot.lock or lock_path is None:
        return slot
    entry = entry_from_fetch(slot, reports)
    with locked_update(lock_path) as entries:
        current = entries.get(slot.slug)
        if current is not None and current.matches(slot):
            entry = current  # another process locked it meanwhile: its entry wins (it was first)
        else:
            entries[slot.slug] = entry
    return replace(slot, lock=canonical_key_part(entry))


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "nothing"
