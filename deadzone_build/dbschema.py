"""The schema of deadzone.db and the names in its `meta` table, shared by every reader and writer.

    meta(key TEXT PRIMARY KEY, value TEXT)   keys below; values are text (JSON where noted)
    libraries(...)                           one row per slot (lib_id, version)
    chunks(...)                              one row per chunk, vector as little-endian float32
    chunks_fts                               FTS5 over chunk text and heading path

The consolidate module owns the table definitions; release and search read `meta` through
`read_meta`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = "1"

META_SCHEMA_VERSION = "schema_version"
META_PIN = "embedder_pin"  # canonical JSON of the pin
META_PIN_ID = "embedder_pin_id"  # blake3 of the pin (pin.pin_id())
META_DIMENSION = "dimension"
META_PIPELINE_VERSION = "pipeline_version"
META_REGISTRY_DIGEST = "registry_digest"  # keys.registry_digest() of the *whole* registry
META_LIB_FILTER = "lib_filter"  # "" when built from the whole registry, else the --lib value
META_SLOTS_TOTAL = "slots_total"  # slots of the (filtered) registry
META_SLOTS_MISSING = "slots_missing"  # JSON list of slugs without a current artifact
META_BUILT_AT = "built_at"  # SOURCE_DATE_EPOCH when set, else ""


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
