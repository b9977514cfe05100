"""The released db as a cache: rebuild, byte for byte, the artifacts whose keys a deadzone.db holds.

Each library row keeps its artifact's meta (the embedder pin stored once per db) and the chunks and
vectors it listed, so `read.library_blobs` recreates the four files exactly and checked against the digests in that meta before they
are written (atomically, like a scrape). `doit` then finds those slots up to date and skips them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from deadzone_build.pipeline.artifact import artifact_is_current, write_artifact_files
from deadzone_build.db.read import library_blobs, stored_pin
from deadzone_build.db.schema import open_checked
from deadzone_build.errors import ArtifactError
from deadzone_build.registry.keys import slot_key
from deadzone_build.embed.pin import pin_id
from deadzone_build.registry.load import Slot


@dataclass
class PullResult:
    written: list[str] = field(default_factory=list)  # slugs rebuilt from the db
    current: list[str] = field(default_factory=list)  # already held a current artifact: untouched
    absent: list[str] = field(default_factory=list)  # the db holds no row with the slot's key
    failed: dict[str, str] = field(default_factory=dict)  # slug -> why its rows were refused


def _quiet(_: str) -> None:
    pass


def pull(db_path: Path, *, slots: list[Slot], artifacts_dir: Path,
         log: Callable[[str], None] = _quiet) -> PullResult:
    """Write `artifacts_dir/<slug>/` for every slot whose key `db_path` holds and that is not current."""
    db_path, artifacts_dir = Path(db_path), Path(artifacts_dir)
    result = PullResult()
    conn = open_checked(db_path)
    try:
        pin = stored_pin(conn)
        for slot in slots:
            _pull_slot(conn, db_path, slot, artifacts_dir, pin, result, log)
    finally:
        conn.close()
    return result


def _pull_slot(conn: sqlite3.Connection, db_path: Path, slot: Slot, artifacts_dir: Path, pin: Any,
               result: PullResult, log: Callable[[str], None]) -> None:
    key = slot_key(slot)
    if conn.execute("SELECT 1 FROM libraries WHERE key = ?", (key,)).fetchone() is None:
        result.absent.append(slot.slug)
        return
    if artifact_is_current(artifacts_dir / slot.slug, key):
        result.current.append(slot.slug)
        return
    blobs = library_blobs(conn, key, pin)
    assert blobs is not None  # the row was there a moment ago on this read-only connection
    try:
        write_artifact_files(artifacts_dir, slot.slug, blobs, key=key, pin_id=pin_id())
    except ArtifactError as exc:
        result.failed[slot.slug] = f"{slot.label}: the db's rows do not verify ({exc})"
        log(f"pull: {slot.label}: refused, rows do not verify")
        return
    result.written.append(slot.slug)
    log(f"pull: {slot.label}: artifact rebuilt from {db_path.name}")
