"""Release inputs for the release tests: `write_release_files` builds a small real deadzone.db
(+ .sha256, manifest.json) that passes every release gate; the `release_files` fixture wraps it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deadzone_build.db import schema as dbschema
from deadzone_build.embed.pin import pin_id
from deadzone_build.registry.keys import registry_digest
from deadzone_build.registry.load import load_registry
from deadzone_build.settings import manifest_path

__all__ = ["release_files"]  # conftest imports the fixture; tests import the rest


# ── release inputs: a small real deadzone.db that passes every gate ─────────

TEST_REGISTRY = """\
libraries:
  - lib_id: /acme/widgets
    description: Widgets for tests.
    kind: github-md
    ref: v1.0.0
    urls:
      - https://raw.githubusercontent.com/acme/widgets/{ref}/README.md
  - lib_id: /acme/gadgets
    description: Gadgets for tests.
    kind: github-md
    versions:
      "2.0": { ref: v2.0.0 }
    urls:
      - https://raw.githubusercontent.com/acme/gadgets/{ref}/docs/index.md
"""


def write_release_files(db: Path, registry: Path, *, content: str = "first build",
                        meta: dict[str, str] | None = None, libraries: int | None = None) -> None:
    """deadzone.db (+ .sha256, manifest.json) as consolidate writes them, built from `registry`."""
    slots = load_registry(registry)
    values = {
        dbschema.META_SCHEMA_VERSION: dbschema.SCHEMA_VERSION,
        dbschema.META_PIN_ID: pin_id(),
        dbschema.META_REGISTRY_DIGEST: registry_digest(slots),
        dbschema.META_LIB_FILTER: "",
        dbschema.META_SLOTS_TOTAL: str(len(slots)),
        dbschema.META_SLOTS_MISSING: "[]",
        **(meta or {}),
    }
    db.unlink(missing_ok=True)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("CREATE TABLE libraries (lib_id TEXT, version TEXT, slug TEXT, description TEXT)")
    conn.execute("CREATE TABLE chunks (lib_id TEXT, version TEXT, ordinal INTEGER, text TEXT)")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [(k, v) for k, v in values.items() if v is not None])
    rows = slots if libraries is None else slots[:libraries]
    conn.executemany("INSERT INTO libraries VALUES (?, ?, ?, ?)",
                     [(s.lib_id, s.version, s.slug, s.description) for s in rows])
    conn.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?)",
                     [(s.lib_id, s.version, i, f"{content} {s.slug} chunk {i}") for s in rows for i in range(50)])
    conn.commit()
    conn.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    db.with_name(db.name + ".sha256").write_text(f"{digest}  deadzone.db\n")
    manifest = [{"slug": s.slug, "status": "ok" if s in rows else "missing"} for s in slots]
    manifest_path(db).write_text(json.dumps({"content": content, "slots": manifest}, indent=1))


@dataclass
class ReleaseFiles:
    db: Path
    registry: Path

    @property
    def sha256(self) -> Path:
        return self.db.with_name(self.db.name + ".sha256")

    @property
    def manifest(self) -> Path:
        return manifest_path(self.db)

    def build(self, **kwargs: Any) -> "ReleaseFiles":
        write_release_files(self.db, self.registry, **kwargs)
        return self


@pytest.fixture
def release_files(tmp_path: Path) -> ReleaseFiles:
    """tmp/out/deadzone.db (+ .sha256, manifest.json) built from tmp/registry.yaml; passes every gate."""
    registry = tmp_path / "registry.yaml"
    registry.write_text(TEST_REGISTRY)
    (tmp_path / "out").mkdir()
    return ReleaseFiles(tmp_path / "out" / "deadzone.db", registry).build()
