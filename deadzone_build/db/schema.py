"""The schema of deadzone.db and the names in its `meta` table, shared by every reader and writer.

    meta(key TEXT PRIMARY KEY, value TEXT)   keys below; values are text (JSON where noted)
    libraries(...)                           one row per slot (lib_id, version)
    chunks(...)                              one row per chunk, vector as little-endian float32
    chunks_fts                               FTS5 over chunk text and heading path

`TABLES_DDL` below defines the tables (consolidate creates them); release reads `meta` through
`read_meta`, search and pull open a db through `open_checked`, which refuses another schema or pin.
Beside a db live `<db>.sha256` and `manifest.json` (`sha256_path`, `manifest_path`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from deadzone_build import settings

SCHEMA_VERSION = "2"  # 2: the embedder pin is stored once (META_PIN), not in every libraries.meta_json

META_SCHEMA_VERSION = "schema_version"
META_PIN = "embedder_pin"  # canonical JSON of the pin (the rows' meta_json leave it out: db/read.py restores it)
META_PIN_ID = "embedder_pin_id"  # blake3 of the pin (pin.pin_id())
META_DIMENSION = "dimension"
META_PIPELINE_VERSION = "pipeline_version"
META_REGISTRY_DIGEST = "registry_digest"  # keys.registry_digest() of the *whole* registry
META_LIB_FILTER = "lib_filter"  # "" when built from the whole registry, else the --lib value
META_SLOTS_TOTAL = "slots_total"  # slots of the (filtered) registry
META_SLOTS_MISSING = "slots_missing"  # JSON list of slugs without a current artifact
META_BUILT_AT = "built_at"  # SOURCE_DATE_EPOCH when set, else ""
META_LOCK_DIGEST = "lock_digest"  # keys.lock_digest() of the slots built: what their sources resolved to


def read_meta(db: sqlite3.Connection | str | Path) -> dict[str, str]:
    """The `meta` table as a dict (empty when the table does not exist)."""
    if isinstance(db, sqlite3.Connection):
        conn, close = db, False
    else:
        conn, close = sqlite3.connect(f"file:{db}?mode=ro", uri=True), True
    try:
        try:
            return dict(conn.execute("SELECT key, value FROM meta"))
        except sqlite3.OperationalError:
            return {}
    finally:
        if close:
            conn.close()


# ── tables (written by consolidate, read by search and pull) ─────────────────
#
# Row order is fixed (libraries by lib_id then version, chunks by library then ordinal, ids
# consecutive from 1) so the same artifacts give the same bytes, and a library's chunks are one
# contiguous id range (search slices its vectors without copying).
#
# chunks_fts is an *external-content* FTS5 table over chunks(text, heading_path): the text is
# stored once (a contentless index would save nothing more and loses snippet()/highlight() for
# clients), and `rebuild` derives the whole index from the content table in one deterministic pass.

PAGE_SIZE = 16384  # chunk rows (~1 KB text + 1.5 KB vector) pack ~6 to a page; 4096 wastes a third of the file
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"

TABLES_DDL = f"""
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE libraries (
    id           INTEGER PRIMARY KEY,
    lib_id       TEXT NOT NULL,
    version      TEXT NOT NULL,
    slug         TEXT NOT NULL UNIQUE,
    key          TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    ref          TEXT NOT NULL,
    description  TEXT NOT NULL,
    chunk_count  INTEGER NOT NULL,
    token_count  INTEGER NOT NULL,
    docs_ok      INTEGER NOT NULL,
    docs_dropped INTEGER NOT NULL,
    first_chunk  INTEGER NOT NULL,  -- chunks.id of ordinal 0; the library's chunks are first_chunk .. first_chunk + chunk_count - 1
    vector       BLOB NOT NULL,     -- 384 little-endian float32: lib_id words + description
    meta_json    TEXT NOT NULL,     -- the artifact's meta, canonical JSON without key_inputs.embedder (= meta.embedder_pin)
    UNIQUE (lib_id, version)
);
CREATE TABLE chunks (
    id           INTEGER PRIMARY KEY,
    library      INTEGER NOT NULL REFERENCES libraries(id),
    lib_id       TEXT NOT NULL,
    version      TEXT NOT NULL,
    url          TEXT NOT NULL,
    heading_path TEXT NOT NULL,     -- JSON list of headings, outermost first
    ordinal      INTEGER NOT NULL,  -- 0.. within the library
    text         TEXT NOT NULL,
    tokens       INTEGER NOT NULL,
    vector       BLOB NOT NULL,     -- 384 little-endian float32, L2-normalised
    UNIQUE (library, ordinal)
);
CREATE INDEX chunks_lib ON chunks (lib_id, version);
CREATE VIRTUAL TABLE chunks_fts USING fts5 (
    text, heading_path, content='chunks', content_rowid='id', tokenize='{FTS_TOKENIZER}'
);
"""


def open_checked(db_path: str | Path) -> sqlite3.Connection:
    """A read-only connection to a deadzone.db written for this schema version and embedder pin."""
    from deadzone_build.errors import DatabaseError
    from deadzone_build.embed.pin import pin_id

    db_path = Path(db_path)
    if not db_path.is_file():
        raise DatabaseError(f"{db_path}: no database there. Run `deadzone-build consolidate` or download "
                            "deadzone.db from a release (or pass --db PATH).")
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, check_same_thread=False)
    try:
        meta = read_meta(conn)
        problem = incompatibility(meta, pin_id())
    except sqlite3.DatabaseError as exc:
        problem = f"it is not a readable SQLite database ({exc})"
    if problem:
        conn.close()
        raise DatabaseError(f"{db_path}: {problem}. Rebuild it with `deadzone-build consolidate`, or "
                            "download the deadzone.db released for this deadzone-build version.")
    return conn


def incompatibility(meta: dict[str, str], current_pin_id: str) -> str:
    """Why a db with this `meta` cannot be read by this build (schema version, pin), or ""."""
    if not meta:
        return "it has no `meta` table (not a deadzone.db)"
    if meta.get(META_SCHEMA_VERSION) != SCHEMA_VERSION:
        return (f"its schema version is {meta.get(META_SCHEMA_VERSION)!r}, this deadzone-build reads "
                f"{SCHEMA_VERSION!r}")
    if meta.get(META_PIN_ID) != current_pin_id:
        return (f"it was embedded with embedder pin {meta.get(META_PIN_ID)}, this deadzone-build uses "
                f"{current_pin_id} (vectors from different models cannot be compared)")
    return ""


# ── files beside the db ──────────────────────────────────────────────────────



def sha256_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".sha256")


def manifest_path(db_path: Path) -> Path:
    """`manifest.json` beside deadzone.db, `<db name>.manifest.json` beside any other (settings.py)."""
    return settings.manifest_path(db_path)
