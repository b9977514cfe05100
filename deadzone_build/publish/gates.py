"""Local gates of a release: every check on deadzone.db, its .sha256 and manifest.json before
anything touches the network. Each failure names the file and what to do.

    check_tag(tag), check_version(tag, version)
    check_release_inputs(db, registry, allow_missing=, allow_incomplete=) -> [LocalAsset]

The three files must describe one build: the manifest names the db, its sha256 and size, the
registry digest, the pin and the slot keys the db itself records. A consolidate killed between
its writes, or a manifest copied from another build, is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from deadzone_build.atomic import sha256_file
from deadzone_build.db import schema as dbschema
from deadzone_build.db.read import compatibility_problem
from deadzone_build.errors import DatabaseError, ReleaseError
from deadzone_build.registry.keys import registry_digest
from deadzone_build.registry.load import load_registry
from deadzone_build.settings import manifest_path

ASSET_DB = "deadzone.db"
ASSET_SHA256 = "deadzone.db.sha256"
ASSET_MANIFEST = "manifest.json"
TEMP_MARK = ".tmp-"
MANIFEST_FORMAT = 1  # db/consolidate.py writes it

_SHA256_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](\S.*)")
_TAG_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_CHUNK = 1 << 20


# ── local files ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class LocalAsset:
    """One file to publish: its asset name, bytes (a path to stream, or the bytes) and sha256."""

    name: str
    source: Path | bytes
    sha256: str
    size: int
    content_type: str

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


def parse_sha256(text: bytes | str, source: str) -> str:
    """The hex digest of a `sha256sum` line (`<hex>  deadzone.db`)."""
    line = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).strip()
    match = _SHA256_LINE.fullmatch(line)
    if not match:
        raise ReleaseError(f"{source} is not a sha256sum line ('<64 hex digits>  deadzone.db'); "
                           f"rebuild it with `doit consolidate`.")
    return match.group(1).lower()


def sha256_line(hex_digest: str) -> bytes:
    """The canonical checksum file: what `sha256sum -c` checks next to a downloaded deadzone.db."""
    return f"{hex_digest}  {ASSET_DB}\n".encode()


def temp_name(asset: LocalAsset) -> str:
    """Where `asset` waits before its swap; the digest prefix lets a re-run recognise it."""
    return f"{asset.name}{TEMP_MARK}{asset.sha256[:16]}"


# ── gates ────────────────────────────────────────────────────────────────────


def check_tag(tag: str) -> None:
    """`tag` must be a name `git tag` accepts (git check-ref-format rules for refs/tags/<tag>)."""
    reason = _tag_problem(tag)
    if reason:
        raise ReleaseError(f"tag {tag!r} is not a valid git tag name ({reason}); use e.g. --tag v1.2.0.")


def _tag_problem(tag: str) -> str | None:
    if not tag:
        return "it is empty"
    if bad := _TAG_FORBIDDEN.search(tag):
        return f"it contains {bad.group()!r}"
    for needle in ("..", "@{", "//"):
        if needle in tag:
            return f"it contains {needle!r}"
    if tag == "@" or tag.startswith(("-", "/")) or tag.endswith(("/", ".")):
        return "it starts with '-' or '/', ends with '/' or '.', or is '@'"
    for part in tag.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return f"its part {part!r} starts with '.' or ends with '.lock'"
    return None


def check_version(tag: str, version: str) -> None:
    """--expect-version: the tag must name `version`, with or without a leading `v`."""
    if tag not in (version, f"v{version}"):
        raise ReleaseError(f"tag {tag} does not match the expected version {version} (--expect-version); "
                           f"tag the release v{version}, or bump the version before releasing.")


def check_release_inputs(db: Path, registry: Path, *, allow_missing: bool = False,
                         allow_incomplete: bool = False) -> list[LocalAsset]:
    """Every gate on the files to publish; the three assets, in swap order, when all pass."""
    _check_sqlite_file(db)
    meta = _check_db_contents(db)
    digest = sha256_file(db)
    _check_checksum_file(db, digest)
    _check_meta(db, meta, registry, allow_missing)
    manifest = _check_manifest(db, digest, meta, _db_keys(db), allow_incomplete)
    checksum = sha256_line(digest)
    return [
        LocalAsset(ASSET_DB, db, digest, db.stat().st_size, "application/vnd.sqlite3"),
        LocalAsset(ASSET_SHA256, checksum, hashlib.sha256(checksum).hexdigest(), len(checksum), "text/plain"),
        LocalAsset(ASSET_MANIFEST, manifest, sha256_file(manifest), manifest.stat().st_size, "application/json"),
    ]


_REBUILD = "rebuild it with `doit consolidate` (or pass --db PATH)"


def _check_sqlite_file(db: Path) -> None:
    if not db.is_file():
        raise DatabaseError(f"{db} does not exist; {_REBUILD}.")
    with db.open("rb") as fh:
        header = fh.read(100)
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise DatabaseError(f"{db} is not an SQLite database; {_REBUILD}.")
    if 2 in header[18:20]:  # file format versions 2 = WAL: the bytes may live in a -wal file
        raise DatabaseError(f"{db} is in WAL journal mode, so its content may sit in a -wal file that "
                            f"would not be published; {_REBUILD}, which writes journal_mode=DELETE.")


def _check_db_contents(db: Path) -> dict[str, str]:
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DatabaseError(f"{db} cannot be opened ({exc}); {_REBUILD}.") from None
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise DatabaseError(f"{db} fails SQLite's integrity check ({'; '.join(problems[:3])}); {_REBUILD}.")
        try:
            libraries = conn.execute("SELECT count(*) FROM libraries").fetchone()[0]
        except sqlite3.OperationalError:
            raise DatabaseError(f"{db} has no libraries table; {_REBUILD}.") from None
        if libraries < 1:
            raise DatabaseError(f"{db} holds no library, so there is nothing to publish; scrape the "
                                f"registry (`doit`) and {_REBUILD.split(' (')[0]}.")
        return dbschema.read_meta(conn)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{db} is unreadable ({exc}); {_REBUILD}.") from None
    finally:
        conn.close()


def _check_checksum_file(db: Path, digest: str) -> None:
    path = db.with_name(db.name + ".sha256")
    if not path.is_file():
        raise DatabaseError(f"{path} is missing, so clients could not verify the download; {_REBUILD}.")
    recorded = parse_sha256(path.read_bytes(), str(path))
    if recorded != digest:
        raise DatabaseError(f"{db} hashes to {digest} but {path} says {recorded}: the db changed after it "
                            f"was built; {_REBUILD}.")


def _check_meta(db: Path, meta: Mapping[str, str], registry: Path, allow_missing: bool) -> None:
    problem = compatibility_problem(dict(meta))  # the same schema/pin rule every reader applies
    if problem:
        raise DatabaseError(f"{db}: {problem}; re-run `doit` so every library is embedded with the current "
                            f"model, then {_REBUILD}.")
    lib_filter = meta.get(dbschema.META_LIB_FILTER)
    if lib_filter != "":
        what = "records no lib_filter" if lib_filter is None else f"was built from --lib {lib_filter} only"
        raise DatabaseError(f"{db} {what}; a release must hold the whole registry: run `doit consolidate` "
                            f"without --lib.")
    expected = registry_digest(load_registry(registry))
    if meta.get(dbschema.META_REGISTRY_DIGEST) != expected:
        raise DatabaseError(f"{db} was built from another registry than {registry} (registry digest "
                            f"{meta.get(dbschema.META_REGISTRY_DIGEST)!r}, expected {expected!r}); re-run "
                            f"`doit`, or pass --registry the file it was built from.")
    missing = _missing_slots(db, meta)
    if missing and not allow_missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DatabaseError(f"{db} lacks {len(missing)} of {meta.get(dbschema.META_SLOTS_TOTAL, '?')} slots "
                            f"({shown}); scrape them (`doit`) and rebuild, or pass --allow-missing.")


def _missing_slots(db: Path, meta: Mapping[str, str]) -> list[str]:
    raw = meta.get(dbschema.META_SLOTS_MISSING)
    try:
        missing = json.loads(raw) if raw is not None else None
    except ValueError:
        missing = None
    if not isinstance(missing, list):
        raise DatabaseError(f"{db} records no readable slots_missing list ({raw!r}); {_REBUILD}.")
    return [str(slug) for slug in missing]


def _db_keys(db: Path) -> list[str]:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return sorted(row[0] for row in conn.execute("SELECT key FROM libraries"))
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{db} is unreadable ({exc}); {_REBUILD}.") from None
    finally:
        conn.close()


def _check_manifest(db: Path, digest: str, meta: Mapping[str, str], db_keys: list[str],
                    allow_incomplete: bool) -> Path:
    """manifest.json must describe this very db (see the module docstring); returns its path."""
    path = manifest_path(db)  # published as ASSET_MANIFEST whatever the local name
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DatabaseError(f"{path} is missing; {_REBUILD}.") from None
    except ValueError as exc:
        raise DatabaseError(f"{path} is not valid JSON ({exc}); {_REBUILD}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(
            manifest.get("slots"), list) or not all(isinstance(e, dict) for e in manifest["slots"]):
        raise DatabaseError(f"{path} is not a deadzone manifest (format {MANIFEST_FORMAT} with a slots list); "
                            f"{_REBUILD}.")
    expected: dict[str, Any] = {
        "db": db.name, "sha256": digest, "bytes": db.stat().st_size,
        "registry_digest": meta.get(dbschema.META_REGISTRY_DIGEST), "embedder_pin_id": meta.get(dbschema.META_PIN_ID),
        "schema_version": meta.get(dbschema.META_SCHEMA_VERSION), "lib_filter": meta.get(dbschema.META_LIB_FILTER),
    }
    wrong = [f"{name} {manifest.get(name)!r} (the db: {value!r})" for name, value in expected.items()
             if manifest.get(name) != value]
    manifest_keys = sorted(str(e.get("key")) for e in manifest["slots"] if e.get("status") == "ok")
    if not wrong and manifest_keys != db_keys:
        wrong.append(f"{len(manifest_keys)} slot keys that are not the db's {len(db_keys)}")
    if wrong:
        raise DatabaseError(f"{path} does not describe {db}: it records {'; '.join(wrong[:4])}. The files come "
                            f"from different builds (a consolidate was interrupted, or a file was copied); "
                            f"{_REBUILD}.")
    incomplete = [str(e.get("slug")) for e in manifest["slots"] if e.get("incomplete")]
    if incomplete and not allow_incomplete:
        shown = ", ".join(incomplete[:5]) + (", ..." if len(incomplete) > 5 else "")
        raise DatabaseError(f"{db} holds {len(incomplete)} incomplete slot{'s' * (len(incomplete) != 1)} ({shown}): "
                            "a URL failed for a reason that may pass (5xx, timeout, network). Run `doit` again to "
                            "scrape them, or pass --allow-incomplete to publish them as they are.")
    return path
