"""Reading a deadzone.db back: the keys it holds, a library's artifact, its verified rows, currency.

`consolidate` only writes; everything that reads a db it wrote goes through here (or `search`):

    library_keys(db_path)              -> set of slot keys             (plan: which slots need no job)
    compatibility_problem(meta)        -> "" or why this build cannot use the db (schema, pin)
    stored_pin(conn)                   -> the embedder pin, stored once in `meta`
    library_blobs(conn, key)           -> the four files of that library's artifact   (pull)
    db_is_current / DbIsCurrent        -> doit's up-to-date check of the consolidate task

A library row keeps its artifact's meta.json as canonical JSON without `key_inputs.embedder` (the
pin is the same for every row, so it is stored once, as `meta.embedder_pin`); the readers put it
back, so the meta, and every digest in it, is the artifact's.
"""

from __future__ import annotations

import inspect
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable

import blake3
import orjson

from deadzone_build.atomic import sha256_file
from deadzone_build.db import schema as S
from deadzone_build.embed.pin import canonical_json, pin_id
from deadzone_build.errors import DatabaseError
from deadzone_build.pipeline.artifact import (
    CHUNKS_FILE, LIBRARY_FILE, META_FILE, VECTORS_FILE, artifact_is_current, chunks_bytes, meta_text,
)
from deadzone_build.registry.keys import slot_key
from deadzone_build.registry.load import Slot

def library_keys(db_path: str | Path) -> set[str]:
    """The slot keys a deadzone.db holds (any schema); DatabaseError when the file is missing or not a db."""
    path = Path(db_path)
    if not path.is_file():
        raise DatabaseError(f"{path}: no database there.")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return {row[0] for row in conn.execute("SELECT key FROM libraries")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: not a readable deadzone.db ({exc}).") from None


def incomplete_keys(db_path: str | Path) -> set[str]:
    """Keys of the slots whose artifact was incomplete (a URL failed transiently) when consolidated."""
    conn = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute(
            "SELECT key FROM libraries WHERE json_extract(meta_json, '$.incomplete') = 1")}
    except sqlite3.DatabaseError:  # an older or foreign db records nothing incomplete
        return set()
    finally:
        conn.close()


def compatibility_problem(meta: dict[str, str]) -> str:
    """Why this deadzone-build cannot use a db with this `meta` table (schema, pin), or ""."""
    return S.incompatibility(meta, pin_id())


def stored_pin(conn: sqlite3.Connection) -> Any:
    """The embedder pin the db's rows were embedded with, checked against the pin id beside it."""
    meta = S.read_meta(conn)
    text = meta.get(S.META_PIN)
    if text is None or blake3.blake3(text.encode()).hexdigest() != meta.get(S.META_PIN_ID):
        raise DatabaseError(f"the db's meta.{S.META_PIN} is missing or does not hash to its "
                            f"{S.META_PIN_ID}. Rebuild it with `deadzone-build consolidate`.")
    return json.loads(text)


def _without_pin(meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "key_inputs": {k: v for k, v in meta["key_inputs"].items() if k != "embedder"}}


def row_meta_json(meta: dict[str, Any]) -> str:
    """What a library row stores for an artifact's meta: canonical JSON without the (shared) pin."""
    return canonical_json(_without_pin(meta))


def artifact_meta(meta_json: str, pin: Any) -> dict[str, Any]:
    """The artifact's meta from a row's `meta_json` and the db's pin (the inverse of row_meta_json)."""
    meta = orjson.loads(meta_json)
    meta["key_inputs"] = {**meta["key_inputs"], "embedder": pin}
    return meta


def library_blobs(conn: sqlite3.Connection, key: str, pin: Any = None) -> dict[str, bytes] | None:
    """The four files of the artifact the db's rows for `key` came from (unverified); None when absent."""
    row = conn.execute("SELECT id, meta_json, vector FROM libraries WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    lib, meta_json, library_vector = row
    meta = artifact_meta(meta_json, stored_pin(conn) if pin is None else pin)
    chunks, vectors = [], []
    for url, heading_path, ordinal, text, tokens, vector in conn.execute(
            "SELECT url, heading_path, ordinal, text, tokens, vector FROM chunks WHERE library = ? "
            "ORDER BY ordinal", (lib,)):
        chunks.append({"url": url, "heading_path": json.loads(heading_path), "ordinal": ordinal,
                       "text": text, "tokens": tokens})
        vectors.append(vector)
    return {META_FILE: meta_text(meta).encode(), CHUNKS_FILE: chunks_bytes(chunks),
            VECTORS_FILE: b"".join(vectors), LIBRARY_FILE: library_vector}



# ── the consolidate task's up-to-date check ──────────────────────────────────


def db_is_current(db_path: Path, slots: list[Slot], artifacts_dir: Path | None = None,
                  max_missing: int | None = None) -> bool:
    """True when `db_path` was consolidated from exactly these slot keys with this pin and is intact.

    Decided from the files (manifest.json, the db's sha256), never from doit's dep file. With
    `artifacts_dir`, a slot the db lacks whose artifact has since appeared also makes it stale.
    With `max_missing`, a db that lacks more slots than that is stale too, so a build that
    tolerated missing slots never passes for one that does not (consolidating again fails, and says why).
    """
    db_path = Path(db_path)
    try:
        manifest = json.loads(S.manifest_path(db_path).read_text(encoding="utf-8"))
        entries = manifest["slots"]
        if (manifest.get("embedder_pin_id") != pin_id() or manifest.get("schema_version") != S.SCHEMA_VERSION
                or manifest.get("db") != db_path.name):
            return False
        if sorted(e["key"] for e in entries) != sorted(slot_key(s) for s in slots):
            return False
        if S.sha256_path(db_path).read_text() != f"{manifest['sha256']}  {db_path.name}\n":
            return False
        if sha256_file(db_path) != manifest["sha256"]:
            return False
        if max_missing is not None and sum(1 for e in entries if e["status"] != "ok") > max_missing:
            return False
        if any(e.get("incomplete") for e in entries):  # its slot is being scraped again
            return False
        if artifacts_dir is not None:
            for e in entries:
                if e["status"] != "ok" and artifact_is_current(Path(artifacts_dir) / e["slug"], e["key"]):
                    return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


class DbIsCurrent:
    """doit `uptodate` check for the consolidate task (picklable; `doit info` prints the repr)."""

    __signature__ = inspect.Signature()  # see ArtifactIsCurrent

    def __init__(self, db_path: Path, slots: Iterable[Slot], artifacts_dir: Path | None = None,
                 max_missing: int | None = None) -> None:
        self.db_path = Path(db_path)
        self.slots = list(slots)
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self.max_missing = max_missing

    def __call__(self, *_: Any) -> bool:  # no `task`/`values` parameter: doit then skips fetching values
        return db_is_current(self.db_path, self.slots, self.artifacts_dir, self.max_missing)

    def __repr__(self) -> str:
        limit = "" if self.max_missing is None else f", at most {self.max_missing} of them missing"
        return (f"DbIsCurrent({str(self.db_path)!r}, {len(self.slots)} slots): up to date when "
                f"{S.manifest_path(self.db_path)} records exactly these slot keys{limit} and the current "
                "embedder pin, and the db matches its sha256")
