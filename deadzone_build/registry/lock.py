"""`libraries_sources.lock`: what each slot's sources resolved to, so an upstream change shows.

The lock sits beside the registry (`libraries_sources.yaml` → `libraries_sources.lock`) and is
JSON with sorted keys, one URL per line block, so a diff reads as "this URL's bytes changed":

    {"format": 1, "slots": {"spf13_cobra_1.9": {
        "lib_id": "/spf13/cobra", "version": "1.9", "ref": "v1.9.1",
        "commits": {"spf13/cobra@v1.9.1": "<40-hex sha>"},          # GitHub refs → commit, where known
        "urls": {"https://raw.githubusercontent.com/...": {"sha256": "…", "size": 1234,
                 "etag": "\"…\"", "last_modified": "Tue, 01 Dec 2026 …"}}}}}

Only the *content* half of an entry — the commits and each URL's sha256 — is part of the slot's
key (`LockEntry.key_part`): validators (ETag, Last-Modified) and sizes may change without the
bytes changing, and must not rebuild anything. An entry applies to a slot only while its ref and
URL list still match the registry; an entry for an edited slot is ignored (the slot counts as
unlocked and is locked again on first use or by `deadzone-build lock`).

This module is imported when a registry loads, so it stays light (json only, no HTTP).
"""

from __future__ import annotations

import fcntl
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from deadzone_build.atomic import write_atomic
from deadzone_build.embed.pin import canonical_json
from deadzone_build.errors import RegistryError

LOCK_FORMAT = 1
LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class UrlLock:
    """What one URL returned when it was locked. `sha256` is None for a URL that could not be fetched."""

    sha256: str | None
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None

    def record(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "etag": self.etag, "last_modified": self.last_modified}


@dataclass(frozen=True)
class LockEntry:
    lib_id: str
    version: str
    ref: str
    urls: Mapping[str, UrlLock]
    commits: Mapping[str, str | None] = field(default_factory=dict)  # "owner/repo@ref" → sha

    def key_part(self) -> dict[str, Any]:
        """The half of the entry that identifies content: it goes into the slot's key."""
        return {"commits": dict(sorted(self.commits.items())),
                "urls": {url: lock.sha256 for url, lock in sorted(self.urls.items())}}

    def record(self) -> dict[str, Any]:
        return {"lib_id": self.lib_id, "version": self.version, "ref": self.ref,
                "commits": dict(sorted(self.commits.items())),
                "urls": {url: lock.record() for url, lock in sorted(self.urls.items())}}

    def matches(self, slot: Any) -> bool:
        """Still describes `slot` (same ref, same URLs)? An edited entry is relocked, not trusted."""
        return self.ref == slot.ref and set(self.urls) == set(slot.urls)


def lock_path_for(registry: str | Path) -> Path:
    """`libraries_sources.yaml` → `libraries_sources.lock` (same directory)."""
    return Path(registry).with_suffix(LOCK_SUFFIX)


def read_lock(path: str | Path) -> dict[str, LockEntry]:
    """slug → entry; a missing lock file is an empty lock, a malformed one an error naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read the lock file ({exc}). Fix it, or delete it and run "
                            "`deadzone-build lock` to record it again.") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
            raise ValueError(f"expected an object with \"format\": {LOCK_FORMAT}")
        return {slug: _entry(record) for slug, record in data.get("slots", {}).items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RegistryError(f"{path}: not a valid lock file ({exc}). Delete it and run `deadzone-build lock` "
                            "to record it again.") from None


def _entry(record: dict[str, Any]) -> LockEntry:
    urls = {url: UrlLock(sha256=u.get("sha256"), size=u.get("size"), etag=u.get("etag"),
                         last_modified=u.get("last_modified")) for url, u in record["urls"].items()}
    return LockEntry(lib_id=str(record["lib_id"]), version=str(record["version"]), ref=str(record["ref"]),
                     urls=urls, commits=dict(record.get("commits") or {}))


def lock_text(entries: Mapping[str, LockEntry]) -> str:
    """The file's bytes: sorted, indented, newline-terminated (stable diffs)."""
    data = {"format": LOCK_FORMAT, "slots": {slug: entries[slug].record() for slug in sorted(entries)}}
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_lock(path: str | Path, entries: Mapping[str, LockEntry]) -> None:
    write_atomic(Path(path), lock_text(entries))


_process_lock = threading.Lock()


@contextmanager
def locked_update(path: str | Path) -> Iterator[dict[str, LockEntry]]:
    """Read-modify-write the lock file, safe against other threads and processes.

    Yields the current entries (a dict to edit in place); they are written back atomically when
    the block ends without an exception. Cross-process exclusion uses flock on a sibling
    `.<name>.flock` file (the lock file itself is replaced by rename, so it cannot carry the flock).
    """
    path = Path(path)
    guard = path.with_name(f".{path.name}.flock")
    with _process_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(guard, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            entries = read_lock(path)
            before = lock_text(entries)
            yield entries
            after = lock_text(entries)
            if after != before:
                write_atomic(path, after)


def attach_locks(slots: list[Any], entries: Mapping[str, LockEntry]) -> list[Any]:
    """Slots with `lock` set to their entry's key part (canonical JSON) where the entry still matches."""
    if not entries:
        return slots
    attached = []
    for slot in slots:
        entry = entries.get(slot.slug)
        if entry is not None and entry.matches(slot):
            slot = replace(slot, lock=canonical_key_part(entry))
        attached.append(slot)
    return attached


def canonical_key_part(entry: LockEntry) -> str:
    return canonical_json(entry.key_part())


def locked_urls(slot: Any) -> dict[str, str | None]:
    """url → locked sha256 of a slot loaded with its lock ({} when the slot is unlocked)."""
    if not getattr(slot, "lock", ""):
        return {}
    return dict(json.loads(slot.lock)["urls"])
