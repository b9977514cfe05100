"""Reading a deadzone.db back: the keys it holds, a library's artifact, its verified rows, currency.

`consolidate` only writes; everything that reads a db it wrote goes through here (or `search`):

    library_keys(db_path)              -> set of slot keys             (plan: which slots need no job)
    compatibility_problem(meta)        -> "" or why this build cannot use the db (schema, pin)
    stored_pin(conn)                   -> the embedder pin, stored once in `meta`
    library_blobs(conn, key)           -> the four files of that library's artifact   (pull)
    library_from_db(conn, key, where)  -> the verified Artifact
    verified_rows(conn, key, where)    -> LibraryRows: rows checked against their meta (consolidate --base)
    db_is_current / DbIsCurrent        -> doit's up-to-date check of the consolidate task

A library row keeps its artifact's meta.json as canonical JSON without `key_inputs.embedder` (the
pin is the same for every row, so it is stored once, as `meta.embedder_pin`); the readers put it
back, so the meta, and every digest in it, is the artifact's.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # the C string encoder json.dumps uses
from pathlib import Path
from typing import Any, Iterable

import blake3
import orjson

from deadzone_build.db import schema as S
from deadzone_build.embed.pin import canonical_json, pin_id
from deadzone_build.errors import ArtifactError, DatabaseError
from deadzone_build.pipeline.artifact import (
    CHUNKS_FILE, DIMENSION, LIBRARY_FILE, META_FILE, VECTORS_FILE, Artifact, artifact_is_current, chunks_bytes,
    meta_digest_matches, meta_text, parse_blobs,
)
from deadzone_build.registry.keys import slot_key
from deadzone_build.registry.load import Slot

_VECTOR_BYTES = DIMENSION * 4


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


def _is_row_meta_json(meta: dict[str, Any], stored: str) -> bool:
    """stored == row_meta_json(meta); orjson's bytes first (equal bytes settle it), canonical_json otherwise."""
    try:
        if orjson.dumps(_without_pin(meta), option=orjson.OPT_SORT_KEYS) == stored.encode():
            return True
    except (orjson.JSONEncodeError, TypeError):
        pass
    return row_meta_json(meta) == stored


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


def library_from_db(conn: sqlite3.Connection, key: str, where: Path, pin: Any = None) -> Artifact | None:
    """The artifact the db's rows for `key` came from, verified against its stored meta; None when absent."""
    blobs = library_blobs(conn, key, pin)
    if blobs is None:
        return None
    return parse_blobs(where, blobs, expected_key=key, expected_pin_id=pin_id())


# ── verified rows, copied as they are (consolidate --base) ───────────────────


@dataclass(frozen=True)
class LibraryRows:
    """A library's rows in a db, checked against the digests of its meta: safe to copy verbatim."""

    library_id: int  # libraries.id in that db
    first_chunk: int
    meta: dict[str, Any]  # the artifact's meta (pin restored)


_LIBRARY_COLUMNS = ("id", "lib_id", "version", "slug", "key", "kind", "ref", "description", "chunk_count",
                    "token_count", "docs_ok", "docs_dropped", "first_chunk", "vector", "meta_json")


def verified_rows(conn: sqlite3.Connection, key: str, where: Path, pin: Any) -> LibraryRows | None:
    """The rows of `key` when every byte a consolidate would write from its artifact checks out.

    Checks the row's columns against its meta, and chunks.jsonl, vectors.f32 and library.f32 as
    rebuilt from the rows against the blake3 digests in that meta, without building an Artifact:
    each chunks.jsonl line is assembled from the stored columns with json's own C string encoder
    (the same bytes as canonical_json of the chunk dict). None when the db holds no such key;
    ArtifactError naming `where` when the rows do not verify.
    """
    row = conn.execute(f"SELECT {', '.join(_LIBRARY_COLUMNS)} FROM libraries WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    lib = dict(zip(_LIBRARY_COLUMNS, row))
    meta = artifact_meta(lib["meta_json"], pin)
    bad = _row_problem(lib, meta)
    if bad:
        raise ArtifactError(f"{where}: the library row of {key} {bad}. Rebuild that db, or consolidate without --base.")
    lines, vectors = [], []
    for ordinal, (lib_id, version, url, heading_path, n, text, tokens, vector) in enumerate(conn.execute(
            "SELECT lib_id, version, url, heading_path, ordinal, text, tokens, vector FROM chunks "
            "WHERE library = ? ORDER BY ordinal", (lib["id"],))):
        if not (type(n) is int and n == ordinal and type(tokens) is int and type(url) is str
                and type(text) is str and type(heading_path) is str and (lib_id, version) == (lib["lib_id"], lib["version"])
                and type(vector) is bytes and len(vector) == _VECTOR_BYTES):
            raise ArtifactError(f"{where}: chunk {ordinal} of {key} has a malformed row. Rebuild that db, "
                                "or consolidate without --base.")
        lines.append(f'{{"heading_path":{heading_path},"ordinal":{n},"text":{encode_basestring(text)},'
                     f'"tokens":{tokens},"url":{encode_basestring(url)}}}\n')
        vectors.append(vector)
    files = meta["files"]
    for name, data in ((CHUNKS_FILE, "".join(lines).encode()), (VECTORS_FILE, b"".join(vectors)),
                       (LIBRARY_FILE, lib["vector"])):
        if blake3.blake3(data).hexdigest() != files.get(name):
            raise ArtifactError(f"{where}: the rows of {key} do not match the {name} digest in their meta. "
                                "Rebuild that db, or consolidate without --base.")
    if len(lines) != lib["chunk_count"]:
        raise ArtifactError(f"{where}: {key} lists {lib['chunk_count']} chunks but has {len(lines)} rows.")
    return LibraryRows(library_id=lib["id"], first_chunk=lib["first_chunk"], meta=meta)


def _row_problem(lib: dict[str, Any], meta: dict[str, Any]) -> str:
    """What in a library row disagrees with its meta (what consolidate writes from it), or ""."""
    slot, counts = meta.get("slot", {}), meta.get("counts", {})
    if not meta_digest_matches(meta):
        return "holds a meta whose meta_digest does not match"
    if not _is_row_meta_json(meta, lib["meta_json"]):
        return "stores its meta in a form this build does not write"
    expected = (slot.get("lib_id"), slot.get("version"), slot.get("slug"), meta.get("key"), slot.get("kind"),
                slot.get("ref"), slot.get("description"), counts.get("chunks"), int(counts.get("tokens", 0)),
                int(counts.get("docs_ok", 0)), int(counts.get("docs_dropped", 0)))
    found = tuple(lib[c] for c in _LIBRARY_COLUMNS[1:12])
    return "" if found == expected else "disagrees with its meta"


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
        if S.sha256_file(db_path) != manifest["sha256"]:
            return False
        if max_missing is not None and sum(1 for e in entries if e["status"] != "ok") > max_missing:
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
