"""The per-slot artifact: `artifacts/<slug>/`, written atomically and verified before it is trusted.

    <slug>/chunks.jsonl   one canonical-JSON line per chunk: url, heading_path, ordinal, text, tokens
    <slug>/vectors.f32    n x 384 little-endian float32, row i <-> line i
    <slug>/library.f32    384 little-endian float32: the library vector (lib_id words + description)
    <slug>/meta.json      written last: key, key inputs, slot, pin id, counts, per-URL report and the
                          blake3 of every other file

A directory is an artifact only when its meta parses, names the expected key and every digest and
row count checks out; anything else is rebuilt. Writes go to `.tmp-<slug>-<pid>-<token>` beside the
target and are swapped in by renames (old one set aside as `.old-<slug>-<pid>-<token>` first), so a
crash at any moment leaves the old artifact or the new one; `scratch.recover` finishes or undoes a swap
interrupted by a crash. One writer per slug at a time (doit runs a task once); different slugs may be
written concurrently.

Cost per up-to-date check is O(1) in the number of slots: the scratch-dir sweep (`recover`) lists
the artifacts directory once per process, not once per check, and meta.json is parsed and verified
once (one JSON parse, one canonical serialisation for its digest).
"""

from __future__ import annotations

import errno
import inspect
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import orjson

from deadzone_build.atomic import fsync_dir, write_synced
from deadzone_build.errors import ArtifactError
from deadzone_build.registry.keys import PIPELINE_VERSION, key_from_inputs
from deadzone_build.embed.pin import DIMENSION, canonical_json, pin_id_of
from deadzone_build.pipeline.scratch import recover_once, release, scratch_dir
from deadzone_build.registry.load import Slot

FORMAT = 1
CHUNKS_FILE = "chunks.jsonl"
VECTORS_FILE = "vectors.f32"
LIBRARY_FILE = "library.f32"
META_FILE = "meta.json"
DATA_FILES = (CHUNKS_FILE, VECTORS_FILE, LIBRARY_FILE)
CHUNK_FIELDS = ("url", "heading_path", "ordinal", "text", "tokens")
META_FIELDS = ("format", "key", "key_inputs", "slot", "pin_id", "pipeline_version", "counts", "urls", "files",
               "meta_digest")
_META_FIELD_SET = frozenset(META_FIELDS)
_F32 = np.dtype("<f4")

# `.tmp-<slug>-<pid>-<token>`: the fixed-shape tail lets a slug containing `-` be parsed back exactly.


@dataclass(frozen=True)
class Artifact:
    path: Path
    meta: dict[str, Any]
    chunks: list[dict[str, Any]]
    vectors: np.ndarray  # [n, 384] float32
    library_vector: np.ndarray  # [384] float32

    @property
    def key(self) -> str:
        return self.meta["key"]


# ── serialisation ────────────────────────────────────────────────────────────


def meta_text(meta: dict[str, Any]) -> str:
    """The exact text of meta.json for `meta` (stored verbatim in deadzone.db)."""
    return json.dumps(meta, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def meta_digest(meta: dict[str, Any]) -> str:
    """blake3 of the meta without its own digest: a flipped byte in meta.json is caught too."""
    return _digest(canonical_json({k: v for k, v in meta.items() if k != "meta_digest"}).encode())


def chunks_bytes(chunks: list[dict[str, Any]]) -> bytes:
    """chunks.jsonl for `chunks`: only CHUNK_FIELDS, canonical JSON, one line each."""
    return "".join(canonical_json({f: c[f] for f in CHUNK_FIELDS}) + "\n" for c in chunks).encode()


def vectors_bytes(vectors: np.ndarray) -> bytes:
    return np.ascontiguousarray(vectors, dtype=_F32).tobytes()


def slot_record(slot: Slot) -> dict[str, Any]:
    return {"lib_id": slot.lib_id, "version": slot.version, "slug": slot.slug, "kind": slot.kind,
            "ref": slot.ref, "description": slot.description, "urls": list(slot.urls)}


def _digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


# ── writing ──────────────────────────────────────────────────────────────────


def write_artifact(artifacts_dir: Path, slot: Slot, *, key: str, key_inputs: dict[str, Any], pin_id: str,
                   chunks: list[dict[str, Any]], vectors: np.ndarray, library_vector: np.ndarray,
                   url_reports: list[dict[str, Any]], counts: dict[str, Any], incomplete: bool = False) -> Path:
    """Write `artifacts_dir/<slug>/` atomically and return its path; the old artifact survives any crash.

    `incomplete`: some URL failed for a cause that may pass; meta.json then holds `"incomplete": true`
    and the artifact is usable but never current (absent otherwise, so complete artifacts keep their bytes)."""
    chunks, vectors, library_vector = _checked_payload(slot, chunks, vectors, library_vector)
    _check_key(slot, key, key_inputs, pin_id)
    counts = _checked_counts(slot, counts, chunks)
    blobs = {CHUNKS_FILE: chunks_bytes(chunks), VECTORS_FILE: vectors_bytes(vectors),
             LIBRARY_FILE: vectors_bytes(library_vector)}
    meta = {"format": FORMAT, "key": key, "key_inputs": key_inputs, "slot": slot_record(slot),
            "pin_id": pin_id, "pipeline_version": PIPELINE_VERSION, "counts": counts,
            "urls": url_reports, "files": {name: _digest(data) for name, data in blobs.items()}}
    if incomplete:
        meta["incomplete"] = True
    meta["meta_digest"] = meta_digest(meta)
    blobs[META_FILE] = meta_text(meta).encode()
    return write_artifact_files(Path(artifacts_dir), slot.slug, blobs, key=key, pin_id=pin_id)


def write_artifact_files(artifacts_dir: Path, slug: str, blobs: dict[str, bytes], *, key: str,
                         pin_id: str | None = None) -> Path:
    """Write the four files of an artifact (meta last), verify them, then swap them into place."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    recover_once(artifacts_dir)
    tmp = scratch_dir(artifacts_dir, "tmp", slug)
    try:
        tmp.mkdir()
        for name in (*DATA_FILES, META_FILE):  # meta last: without it the directory is not an artifact
            write_synced(tmp / name, blobs[name])
        fsync_dir(tmp)
        verify_artifact(tmp, expected_key=key, expected_pin_id=pin_id)
        try:
            _swap_in(artifacts_dir, slug, tmp)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # Another process wrote the same slug between our two renames (two scrapes of one
            # slot at once). Its artifact is as good as ours when it verifies with our key.
            try:
                verify_artifact(artifacts_dir / slug, expected_key=key, expected_pin_id=pin_id)
            except ArtifactError:
                raise ArtifactError(f"{artifacts_dir / slug}: another process replaced it while this one was "
                                    "writing it, with an artifact of another key. Run one scrape per slot at a "
                                    "time, then scrape it again.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        release(tmp)
    return artifacts_dir / slug


def _checked_payload(slot: Slot, chunks: list[dict[str, Any]], vectors: np.ndarray,
                     library_vector: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    where = f"artifact for {slot.label}"
    vectors = np.asarray(vectors, dtype=_F32)
    if len(chunks) == 0 and vectors.size == 0:
        vectors = vectors.reshape(0, DIMENSION)
    if vectors.ndim != 2 or vectors.shape != (len(chunks), DIMENSION):
        raise ArtifactError(f"{where}: vectors have shape {vectors.shape} but {len(chunks)} chunks need "
                            f"({len(chunks)}, {DIMENSION}). Embed every chunk exactly once.")
    library_vector = np.asarray(library_vector, dtype=_F32).reshape(-1)
    if library_vector.shape != (DIMENSION,):
        raise ArtifactError(f"{where}: the library vector has {library_vector.size} values, not {DIMENSION}. "
                            "Embed the library text as one string.")
    if not (np.isfinite(vectors).all() and np.isfinite(library_vector).all()):
        raise ArtifactError(f"{where}: a vector holds NaN or infinity. Check the embedder output.")
    checked = []
    for i, chunk in enumerate(chunks):
        missing = [f for f in CHUNK_FIELDS if f not in chunk and f != "ordinal"]
        if missing:
            raise ArtifactError(f"{where}: chunk {i} lacks {', '.join(missing)}. Every chunk needs "
                                f"{', '.join(CHUNK_FIELDS)}.")
        if chunk.get("ordinal", i) != i:
            raise ArtifactError(f"{where}: chunk {i} has ordinal {chunk['ordinal']}; ordinals must run "
                                f"0..{len(chunks) - 1} in order. Number chunks across the whole slot.")
        checked.append({**chunk, "ordinal": i, "heading_path": list(chunk["heading_path"])})
    return checked, vectors, library_vector


def _check_key(slot: Slot, key: str, key_inputs: dict[str, Any], pin_id: str) -> None:
    if key != key_from_inputs(slot.slug, key_inputs):
        raise ArtifactError(f"artifact for {slot.label}: key {key} is not the key of the given key inputs. "
                            "Pass keys.slot_key(slot) and keys.key_inputs(slot) for the same pin.")
    if pin_id != pin_id_of(key_inputs.get("embedder")):
        raise ArtifactError(f"artifact for {slot.label}: pin id {pin_id} is not the id of the pin in the "
                            "key inputs. Pass pin.pin_id() for the pin the key was computed with.")


def _checked_counts(slot: Slot, counts: dict[str, Any], chunks: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {"chunks": len(chunks), "tokens": sum(int(c["tokens"]) for c in chunks), **counts}
    if counts["chunks"] != len(chunks):
        raise ArtifactError(f"artifact for {slot.label}: counts say {counts['chunks']} chunks but "
                            f"{len(chunks)} were given. Let write_artifact fill `chunks` in.")
    return counts


def _swap_in(artifacts_dir: Path, slug: str, tmp: Path) -> None:
    target = artifacts_dir / slug
    old = None
    if target.exists() or target.is_symlink():
        old = scratch_dir(artifacts_dir, "old", slug)
        os.rename(target, old)  # from here until the next rename, recover() restores `old`
    try:
        os.rename(tmp, target)
        fsync_dir(artifacts_dir)
    except BaseException:
        if old is not None and not target.exists():
            os.rename(old, target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            release(old)


# ── verification ─────────────────────────────────────────────────────────────


def verify_artifact(path: Path, expected_key: str | None = None, expected_pin_id: str | None = None) -> dict[str, Any]:
    """The meta of the artifact at `path` after checking key, pin, every digest and row count."""
    path = path if isinstance(path, Path) else Path(path)  # Path(Path) is not free, once per slot per run
    return verify_blobs(path, _read_files(path), expected_key, expected_pin_id)


def read_artifact(path: Path, expected_key: str | None = None) -> Artifact:
    """The verified artifact at `path`, parsed."""
    path = Path(path)
    return parse_blobs(path, _read_files(path), expected_key)


def parse_blobs(where: Path, blobs: dict[str, bytes], expected_key: str | None = None,
                expected_pin_id: str | None = None) -> Artifact:
    """An Artifact from the bytes of its four files (read from disk or rebuilt from a db), verified first."""
    meta = verify_blobs(where, blobs, expected_key, expected_pin_id)
    chunks = [orjson.loads(line) for line in blobs[CHUNKS_FILE].splitlines()]  # digest-checked: valid JSON
    vectors = np.frombuffer(blobs[VECTORS_FILE], dtype=_F32).reshape(len(chunks), DIMENSION)
    library_vector = np.frombuffer(blobs[LIBRARY_FILE], dtype=_F32)
    return Artifact(path=Path(where), meta=meta, chunks=chunks, vectors=vectors, library_vector=library_vector)


def verify_blobs(where: Path, blobs: dict[str, bytes], expected_key: str | None = None,
                 expected_pin_id: str | None = None) -> dict[str, Any]:
    """The meta in `blobs` after checking key, pin, digests and row counts; `where` names them in errors."""
    meta = _parse_meta(where, blobs.get(META_FILE))
    if expected_key is not None and meta["key"] != expected_key:
        raise ArtifactError(f"{where}: holds key {meta['key']}, expected {expected_key} (an input changed). "
                            "Scrape the slot again.")
    if expected_pin_id is not None and meta["pin_id"] != expected_pin_id:
        raise ArtifactError(f"{where}: was embedded with pin {meta['pin_id']}, expected {expected_pin_id}. "
                            "Scrape the slot again with the current embedder.")
    for name in DATA_FILES:
        if name not in blobs:
            raise ArtifactError(f"{where}: {name} is missing. Delete {where} and scrape again.")
        if _digest(blobs[name]) != meta["files"].get(name):
            raise ArtifactError(f"{where / name}: blake3 digest does not match meta.json (the file changed "
                                f"or is truncated). Delete {where} and scrape again.")
    _check_rows(where, meta, blobs)
    return meta


def _read_files(path: Path) -> dict[str, bytes]:
    """Whatever of the four files exists (verify_blobs names what is missing)."""
    blobs = {}
    base = os.fspath(path)  # plain strings: this runs once per slot on every no-op build
    for name in (META_FILE, *DATA_FILES):
        try:
            with open(os.path.join(base, name), "rb") as fh:
                blobs[name] = fh.read()
        except FileNotFoundError:
            if name == META_FILE:
                what = "no artifact there" if not path.exists() else "meta.json is missing (a write never finished)"
                raise ArtifactError(f"{path}: {what}. Scrape the slot to build it.") from None
        except (NotADirectoryError, IsADirectoryError, PermissionError) as exc:
            raise ArtifactError(f"{path / name}: cannot be read ({exc}). Delete {path} and scrape again.") from None
    return blobs


def artifact_is_current(path: Path, key: str) -> bool:
    """True when `path` holds a verified, complete artifact whose key is `key`; never raises."""
    path = path if isinstance(path, Path) else Path(path)
    try:
        recover_once(os.path.dirname(os.fspath(path)) or ".")
        meta = verify_artifact(path, expected_key=key)
    except (ArtifactError, OSError, ValueError):
        return False
    return not meta.get("incomplete")  # built while a URL failed transiently: scrape it again


class ArtifactIsCurrent:
    """doit `uptodate` check: the artifact directory itself is the record, not doit's dep file."""

    # doit calls inspect.signature() on every uptodate callable of every task; a ready signature
    # (no parameters: doit then passes neither `task` nor `values`) skips inspect's slow path.
    __signature__ = inspect.Signature()

    def __init__(self, path: Path, key: str) -> None:
        self.path = Path(path)
        self.key = key

    def __call__(self, *_: Any) -> bool:
        # No parameter named `task`/`values`: doit would then look up the task's saved values in
        # its dep file for every slot, which this check never uses.
        return artifact_is_current(self.path, self.key)

    def __repr__(self) -> str:
        return (f"ArtifactIsCurrent({str(self.path)!r}, key={self.key!r}): up to date when that directory "
                "holds a verified artifact with this key (see `deadzone-build explain`)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArtifactIsCurrent) and (self.path, self.key) == (other.path, other.key)

    def __hash__(self) -> int:
        return hash((self.path, self.key))


def _parse_meta(where: Path, data: bytes | None) -> dict[str, Any]:
    meta_path = os.path.join(where, META_FILE)  # for messages only
    if data is None:
        raise ArtifactError(f"{where}: meta.json is missing. Scrape the slot to build it.")
    try:
        meta = orjson.loads(data)  # the same values as json.loads, 2-3x faster
    except orjson.JSONDecodeError:
        meta = None  # json decides, and names the problem
    if meta is None:
        try:
            meta = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{meta_path}: not valid JSON ({exc}). Delete {where} and scrape again.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ArtifactError(f"{meta_path}: artifact format {found!r}, this build reads format {FORMAT}. "
                            f"Delete {where} and scrape again.")
    missing = [] if _META_FIELD_SET <= meta.keys() else [f for f in META_FIELDS if f not in meta]
    if missing or not isinstance(meta["files"], dict) or not isinstance(meta["counts"], dict):
        raise ArtifactError(f"{meta_path}: lacks {', '.join(missing) or 'a valid files/counts mapping'}. "
                            f"Delete {where} and scrape again.")
    # One serialisation (canonical JSON, C-speed) checks every value. The file's whitespace is not
    # compared with meta_text(meta) (pure-Python indent encoder, 3x slower): nothing reads those
    # bytes, consolidate and pull re-render meta.json from the parsed content.
    if not meta_digest_matches(meta):
        raise ArtifactError(f"{meta_path}: its content does not match its meta_digest (the file was edited "
                            f"or damaged). Delete {where} and scrape again.")
    return meta


def meta_digest_matches(meta: dict[str, Any]) -> bool:
    """meta_digest(meta) == meta["meta_digest"], usually without the stdlib encoder.

    orjson's sorted compact output is canonical_json's bytes for the values a meta holds (str, int,
    list, dict, None, bool); when its bytes hash to the recorded digest they *are* those bytes, so
    only a mismatch (a damaged meta, or a value the two encoders write differently) pays for
    canonical_json to decide."""
    body = {k: v for k, v in meta.items() if k != "meta_digest"}
    try:
        if _digest(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)) == meta["meta_digest"]:
            return True
    except (orjson.JSONEncodeError, TypeError):
        pass
    return meta_digest(meta) == meta["meta_digest"]


def _check_rows(path: Path, meta: dict[str, Any], blobs: dict[str, bytes]) -> None:
    n = meta["counts"].get("chunks")
    lines = blobs[CHUNKS_FILE].count(b"\n")
    rows, rest = divmod(len(blobs[VECTORS_FILE]), DIMENSION * _F32.itemsize)
    if not isinstance(n, int) or lines != n or rows != n or rest:
        raise ArtifactError(f"{path}: row counts disagree (meta says {n} chunks, {CHUNKS_FILE} has {lines} "
                            f"lines, {VECTORS_FILE} holds {len(blobs[VECTORS_FILE])} bytes). "
                            f"Delete {path} and scrape again.")
    if len(blobs[LIBRARY_FILE]) != DIMENSION * _F32.itemsize:
        raise ArtifactError(f"{path / LIBRARY_FILE}: {len(blobs[LIBRARY_FILE])} bytes, expected "
                            f"{DIMENSION * _F32.itemsize}. Delete {path} and scrape again.")
