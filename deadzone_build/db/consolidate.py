"""Artifacts → one deterministic `deadzone.db` (+ `deadzone.db.sha256`, `manifest.json`). Writes only;
reading a db back (pull, plan, release, the up-to-date check) is `db/read.py`.

Only the given registry slots go in, each from a verified artifact whose key is the slot's key.
Same inputs, same bytes: rows in a fixed order with consecutive ids, no timestamps unless
SOURCE_DATE_EPOCH, FTS index built in one `rebuild` pass, VACUUM, rollback journal. The db is
written to a temp file, checked with `PRAGMA integrity_check` and renamed; the `.sha256` then
`manifest.json` (the record `read.db_is_current` trusts) follow, each atomic, all under an
exclusive flock on the db's directory, so two consolidates never mix their files. Temp files
`.<db>.tmp-<pid>-<token>` of killed consolidates are removed at the next start.

There is no incremental mode (`--base OLD.db` was removed, issue 19): the one-pass FTS rebuild,
the integrity check and the sha256 depend on every row and are ~75% of a consolidate
(`bench/consolidate.py` prints the share), so reusing an older db's rows, even copied inside
SQLite without re-serialising, measured no faster than reading every artifact again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from deadzone_build.db import schema as S
from deadzone_build.db.read import row_meta_json
from deadzone_build.db.schema import manifest_path, sha256_path
from deadzone_build.pipeline.artifact import DIMENSION, META_FILE, Artifact, read_artifact
from deadzone_build.atomic import fsync_dir, sha256_file, write_atomic
from deadzone_build.errors import ArtifactError, ConsolidateError
from deadzone_build.registry.keys import PIPELINE_VERSION, lock_digest, slot_key
from deadzone_build.embed.pin import canonical_json, pin_dict, pin_id
from deadzone_build.registry.load import Slot
from deadzone_build.stale import remove_stale

MANIFEST_FORMAT = 1
_VECTOR_BYTES = DIMENSION * 4
BUILD_CACHE_KB = 256 * 1024  # page cache while building: the FTS rebuild touches pages all over the file
FTS_BUILD_HASH_BYTES = 256 * 1024 * 1024  # FTS5 flushes a segment whenever its term hash outgrows this


@dataclass(frozen=True)
class MissingSlot:
    slug: str
    label: str
    status: str  # "missing" (no artifact), "stale" (another key) or "corrupt" (refused)
    reason: str


@dataclass
class ConsolidateResult:
    db_path: Path
    sha256: str
    libraries: int
    chunks: int
    missing: list[MissingSlot] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # slugs whose artifact is marked incomplete

    @property
    def sha256_path(self) -> Path:
        return sha256_path(self.db_path)

    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.db_path)

    def line(self) -> str:
        """One line for humans: what was written and what is missing."""
        gone = f" ({', '.join(m.label for m in self.missing)})" if self.missing else ""
        return (f"consolidate: {self.db_path}: {self.libraries} libraries, {self.chunks} chunks, "
                f"{len(self.missing)} missing{gone}; sha256 {self.sha256}"
                + (f"; INCOMPLETE: {', '.join(self.incomplete)} (a URL failed transiently; scrape again "
                   "before a release)" if self.incomplete else ""))


def _quiet(_: str) -> None:
    pass


def consolidate(*, slots: list[Slot], artifacts_dir: Path, db_path: Path, registry_digest: str,
                lib_filter: str = "", max_missing: int = 0,
                log: Callable[[str], None] = _quiet, built_at: str | None = None) -> ConsolidateResult:
    """Build `db_path` from the artifacts of `slots`; raise ConsolidateError (and write nothing) when
    no library is available or more than `max_missing` slots lack a current artifact."""
    db_path, artifacts_dir = Path(db_path), Path(artifacts_dir)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    # db, .sha256 and manifest.json are one unit: a second consolidate of the same db waits here,
    # so the three files always come from the same run.
    with _exclusive(db_path, log):
        for path in remove_stale(db_path.parent, _temp_pattern(db_path)):
            log(f"consolidate: removed {path}, left by a killed consolidate")
        return _consolidate(slots=slots, artifacts_dir=artifacts_dir, db_path=db_path,
                            registry_digest=registry_digest, lib_filter=lib_filter, max_missing=max_missing,
                            log=log, built_at=built_at)


def _temp_pattern(db_path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(f".{db_path.name}.tmp-") + r"(?P<pid>[0-9]+)-[0-9a-f]{12}")


@contextlib.contextmanager
def _exclusive(db_path: Path, log: Callable[[str], None]) -> Iterator[None]:
    """An exclusive flock on the db's directory for the whole consolidate: no lock file is left
    behind, and the OS releases it when the process dies (kill -9 included)."""
    handle = os.open(db_path.parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"consolidate: waiting for another consolidate in {db_path.parent} to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing the last descriptor releases the lock


def _consolidate(*, slots: list[Slot], artifacts_dir: Path, db_path: Path, registry_digest: str,
                 lib_filter: str, max_missing: int, log: Callable[[str], None],
                 built_at: str | None) -> ConsolidateResult:
    built_at = os.environ.get("SOURCE_DATE_EPOCH", "") if built_at is None else built_at
    ordered = sorted(slots, key=lambda s: (s.lib_id, s.version))
    tmp = db_path.with_name(f".{db_path.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}")
    try:
        writer = _DbWriter(tmp)
        try:
            records, missing = _fill(writer, ordered, artifacts_dir, log)
            _check_enough(records, missing, max_missing, len(slots))
            writer.finish(_meta_rows(registry_digest, lib_filter, len(slots), missing, built_at, lock_digest(slots)))
        finally:
            writer.close()
        digest = sha256_file(tmp, fsync=True)
        os.replace(tmp, db_path)
        fsync_dir(db_path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    write_atomic(sha256_path(db_path), f"{digest}  {db_path.name}\n".encode())
    manifest = _manifest(db_path, digest, slots, records, missing, registry_digest, lib_filter, built_at)
    write_atomic(manifest_path(db_path), (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())
    chunks = sum(r["counts"].get("chunks", 0) for r in records.values())
    return ConsolidateResult(db_path=db_path, sha256=digest, libraries=len(records), chunks=chunks,
                             missing=missing, incomplete=[slug for slug, r in records.items() if r["incomplete"]])


def _fill(writer: _DbWriter, ordered: list[Slot], artifacts_dir: Path,
          log: Callable[[str], None]) -> tuple[dict[str, dict[str, Any]], list[MissingSlot]]:
    """Insert every available slot; return manifest records by slug and the missing slots."""
    records: dict[str, dict[str, Any]] = {}
    missing: list[MissingSlot] = []
    for slot in ordered:
        art = _load_artifact(artifacts_dir / slot.slug, slot, slot_key(slot), missing)
        if art is None:
            continue
        writer.add_library(art)
        records[slot.slug] = {"counts": art.meta["counts"], "dropped": _dropped(art.meta),
                              "incomplete": bool(art.meta.get("incomplete"))}
        log(f"consolidate: {slot.label}: {len(art.chunks)} chunks")
    return records, missing


def _load_artifact(path: Path, slot: Slot, key: str, missing: list[MissingSlot]) -> Artifact | None:
    try:
        return read_artifact(path, expected_key=key)
    except ArtifactError as exc:
        if not (path / META_FILE).is_file():
            status, reason = "missing", f"no artifact at {path}"
        elif _recorded_key(path) not in (None, key):
            status, reason = "stale", str(exc)
        else:
            status, reason = "corrupt", f"refused: {exc}"
        missing.append(MissingSlot(slug=slot.slug, label=slot.label, status=status, reason=reason))
        return None


def _recorded_key(path: Path) -> str | None:
    try:
        return json.loads((path / META_FILE).read_bytes())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_enough(records: dict[str, Any], missing: list[MissingSlot], max_missing: int, total: int) -> None:
    listing = "\n".join(f"  {m.label} [{m.status}]: {m.reason}" for m in missing)
    if len(missing) > max_missing:
        raise ConsolidateError(
            f"{len(missing)} of {total} slots have no current artifact (at most {max_missing} allowed):\n"
            f"{listing}\nScrape them (`doit scrape:<slug>` or `deadzone-build scrape --lib ID`), "
            "or pass --max-missing N to build without them.")
    if not records:
        raise ConsolidateError(
            f"no library has a current artifact ({total} slots), so there is nothing to put in the db"
            + (f":\n{listing}\n" if listing else ". ")
            + "Run `doit scrape` (or `deadzone-build pull`) first; an empty deadzone.db is never written.")


def _dropped(meta: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"url": r.get("url", ""), "http_status": r.get("http_status"), "reason": r.get("reason", "")}
            for r in meta.get("urls", []) if isinstance(r, dict) and r.get("status", "ok") != "ok"]


def _meta_rows(registry_digest: str, lib_filter: str, total: int, missing: list[MissingSlot],
               built_at: str, lock_digest: str) -> dict[str, str]:
    return {
        S.META_SCHEMA_VERSION: S.SCHEMA_VERSION,
        S.META_PIN: canonical_json(pin_dict()),
        S.META_PIN_ID: pin_id(),
        S.META_DIMENSION: str(DIMENSION),
        S.META_PIPELINE_VERSION: PIPELINE_VERSION,
        S.META_REGISTRY_DIGEST: registry_digest,
        S.META_LIB_FILTER: lib_filter,
        S.META_SLOTS_TOTAL: str(total),
        S.META_SLOTS_MISSING: canonical_json(sorted(m.slug for m in missing)),
        S.META_BUILT_AT: built_at,
        S.META_LOCK_DIGEST: lock_digest,
    }


def _manifest(db_path: Path, digest: str, slots: list[Slot], records: dict[str, dict[str, Any]],
              missing: list[MissingSlot], registry_digest: str, lib_filter: str, built_at: str) -> dict[str, Any]:
    why = {m.slug: m for m in missing}
    entries = []
    for slot in slots:  # registry order: the manifest describes the registry
        record = records.get(slot.slug)
        gone = why.get(slot.slug)
        entries.append({
            "lib_id": slot.lib_id, "version": slot.version, "slug": slot.slug, "key": slot_key(slot),
            "status": "ok" if record else gone.status if gone else "missing",
            "reason": gone.reason if gone else "",
            "counts": record["counts"] if record else {},
            "dropped": record["dropped"] if record else [],
            "incomplete": bool(record and record["incomplete"]),  # a URL failed transiently: scrape again
            "lock": json.loads(slot.lock) if slot.lock else None,
        })
    return {
        "format": MANIFEST_FORMAT, "db": db_path.name, "sha256": digest, "bytes": db_path.stat().st_size,
        "schema_version": S.SCHEMA_VERSION, "embedder_pin_id": pin_id(), "pipeline_version": PIPELINE_VERSION,
        "registry_digest": registry_digest, "lib_filter": lib_filter, "built_at": built_at,
        "lock_digest": lock_digest(slots),
        "libraries": len(records), "chunks": sum(r["counts"].get("chunks", 0) for r in records.values()),
        "incomplete": [e["slug"] for e in entries if e["incomplete"]],
        "slots": entries,
    }


# ── writing the db ───────────────────────────────────────────────────────────


class _DbWriter:
    """One consolidate's temp db: fixed page size, no journal while building (the file is scratch)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute(f"PRAGMA page_size = {S.PAGE_SIZE}")
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute(f"PRAGMA cache_size = -{BUILD_CACHE_KB}")
        self.conn.executescript(S.TABLES_DDL)
        self.conn.execute("BEGIN")
        self.next_library = 1
        self.next_chunk = 1
        self.pin_id = pin_id()

    def add_library(self, art: Artifact) -> None:
        meta, slot, counts = art.meta, art.meta["slot"], art.meta["counts"]
        if meta.get("pin_id") != self.pin_id:  # the row leaves the pin out: it must be the db's
            raise ConsolidateError(f"{art.path}: embedded with pin {meta.get('pin_id')}, not {self.pin_id}. "
                                   "Scrape it again with the current embedder.")
        lib, first = self.next_library, self.next_chunk
        self.conn.execute(
            "INSERT INTO libraries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (lib, slot["lib_id"], slot["version"], slot["slug"], meta["key"], slot["kind"], slot["ref"],
             slot["description"], len(art.chunks), int(counts.get("tokens", 0)), int(counts.get("docs_ok", 0)),
             int(counts.get("docs_dropped", 0)), first, art.library_vector.astype("<f4").tobytes(),
             row_meta_json(meta)),
        )
        vectors = memoryview(art.vectors.astype("<f4", copy=False).tobytes())
        self.conn.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?)",
            ((first + i, lib, slot["lib_id"], slot["version"], c["url"], canonical_json(c["heading_path"]), i,
              c["text"], c["tokens"], vectors[i * _VECTOR_BYTES:(i + 1) * _VECTOR_BYTES])
             for i, c in enumerate(art.chunks)),
        )
        self.next_library += 1
        self.next_chunk += len(art.chunks)

    def finish(self, meta: dict[str, str]) -> None:
        conn = self.conn
        conn.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        conn.execute("COMMIT")
        # One rebuild from the content table: the index depends only on the content, not on how it
        # arrived. A hash table big enough for the whole index makes it one segment (fast queries, no
        # merges, no free pages); past that, optimize merges the segments and VACUUM drops the freed pages.
        conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('hashsize', ?)", (FTS_BUILD_HASH_BYTES,))
        conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
        if conn.execute("SELECT count(DISTINCT segid) FROM chunks_fts_idx").fetchone()[0] > 1:
            conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
        conn.execute("DELETE FROM chunks_fts_config WHERE k = 'hashsize'")  # a build setting, not the db's
        conn.execute(f"PRAGMA user_version = {int(S.SCHEMA_VERSION)}")
        if conn.execute("PRAGMA freelist_count").fetchone()[0]:
            conn.execute("VACUUM")
        conn.execute("PRAGMA journal_mode = DELETE")  # what readers get; never WAL
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise ConsolidateError(f"{self.path}: integrity_check failed ({'; '.join(problems[:5])}). "
                                   "Nothing was replaced; report this with the consolidate log.")

    def close(self) -> None:
        self.conn.close()
