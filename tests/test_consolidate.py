"""consolidate: artifacts → one deterministic deadzone.db, its .sha256 and manifest.json."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from deadzone_build.db import schema as S
from deadzone_build.pipeline.artifact import VECTORS_FILE, read_artifact
from deadzone_build.cli import main
from deadzone_build.db.consolidate import consolidate, manifest_path, sha256_path
from deadzone_build.db.read import DbIsCurrent, artifact_meta, db_is_current, row_meta_json
from deadzone_build.errors import ConsolidateError
from deadzone_build.registry.keys import registry_digest, slot_key
from deadzone_build.embed.pin import pin_id
from fx_artifacts import make_slot, registry_yaml, write_fake_artifact


def build(slots, artifacts_dir: Path, db_path: Path, **kw):
    return consolidate(slots=slots, artifacts_dir=artifacts_dir, db_path=db_path,
                       registry_digest=registry_digest(slots), **kw)


def files_beside(db_path: Path) -> list[str]:
    return sorted(p.name for p in db_path.parent.iterdir())


def test_builds_the_documented_schema(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    db = tmp_path / "out" / "deadzone.db"
    result = build(fake_slots, fake_artifacts, db)
    assert (result.libraries, result.chunks, result.missing) == (3, 5 + 6 + 7, [])
    assert files_beside(db) == ["deadzone.db", "deadzone.db.sha256", "manifest.json"]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert conn.execute("PRAGMA page_size").fetchone() == (S.PAGE_SIZE,)
    meta = S.read_meta(conn)
    assert meta[S.META_SCHEMA_VERSION] == S.SCHEMA_VERSION and meta[S.META_PIN_ID] == pin_id()
    assert meta[S.META_DIMENSION] == "384" and meta[S.META_SLOTS_TOTAL] == "3"
    assert meta[S.META_REGISTRY_DIGEST] == registry_digest(fake_slots)
    assert meta[S.META_SLOTS_MISSING] == "[]" and meta[S.META_BUILT_AT] == "" and meta[S.META_LIB_FILTER] == ""
    libs = conn.execute("SELECT id, lib_id, version, first_chunk, chunk_count FROM libraries ORDER BY id").fetchall()
    assert libs == [(1, "/acme/gadgets", "2.1", 1, 6), (2, "/acme/widgets", "", 7, 5), (3, "/zeta/tools", "", 12, 7)]
    # Every artifact field survives: the meta (its pin stored once, in `meta`), chunks with their vectors.
    art = read_artifact(fake_artifacts / "acme_widgets")
    row = conn.execute("SELECT meta_json, vector FROM libraries WHERE slug = 'acme_widgets'").fetchone()
    assert row[0] == row_meta_json(art.meta) and "embedder" not in json.loads(row[0])["key_inputs"]
    assert artifact_meta(row[0], json.loads(meta[S.META_PIN])) == art.meta
    assert row[1] == art.library_vector.tobytes()
    chunks = conn.execute("SELECT url, heading_path, ordinal, text, tokens, vector FROM chunks "
                          "WHERE lib_id = '/acme/widgets' ORDER BY ordinal").fetchall()
    assert [json.loads(c[1]) for c in chunks] == [c["heading_path"] for c in art.chunks]
    assert [c[3] for c in chunks] == [c["text"] for c in art.chunks]
    assert b"".join(c[5] for c in chunks) == (fake_artifacts / "acme_widgets" / VECTORS_FILE).read_bytes()
    hits = conn.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH 'widgets' ORDER BY rank").fetchall()
    assert {r[0] for r in hits} == set(range(7, 12))
    conn.close()
    assert sha256_path(db).read_text() == f"{hashlib.sha256(db.read_bytes()).hexdigest()}  deadzone.db\n"


def test_same_artifacts_same_bytes(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    a = build(fake_slots, fake_artifacts, tmp_path / "a" / "deadzone.db")
    # Row order is fixed (lib_id, version), not the order slots are given in.
    b = consolidate(slots=list(reversed(fake_slots)), artifacts_dir=fake_artifacts, db_path=tmp_path / "b" / "deadzone.db",
                    registry_digest=registry_digest(fake_slots))
    assert a.sha256 == b.sha256
    assert (tmp_path / "a" / "deadzone.db").read_bytes() == (tmp_path / "b" / "deadzone.db").read_bytes()
    again = build(fake_slots, fake_artifacts, tmp_path / "a" / "deadzone.db")
    assert again.sha256 == a.sha256
    assert files_beside(tmp_path / "a" / "deadzone.db") == ["deadzone.db", "deadzone.db.sha256", "manifest.json"]


def test_source_date_epoch_is_recorded(fake_artifacts: Path, fake_slots, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    db = tmp_path / "deadzone.db"
    build(fake_slots, fake_artifacts, db)
    assert S.read_meta(db)[S.META_BUILT_AT] == "1700000000"
    assert json.loads(manifest_path(db).read_text())["built_at"] == "1700000000"


def test_manifest_lists_every_slot(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    ghost = make_slot("/ghost/lib")
    slots = [*fake_slots, ghost]
    db = tmp_path / "deadzone.db"
    result = build(slots, fake_artifacts, db, max_missing=1)
    assert [m.slug for m in result.missing] == ["ghost_lib"]
    manifest = json.loads(manifest_path(db).read_text())
    assert manifest["sha256"] == result.sha256 and manifest["libraries"] == 3
    assert [e["slug"] for e in manifest["slots"]] == [s.slug for s in slots]
    by_slug = {e["slug"]: e for e in manifest["slots"]}
    assert by_slug["acme_widgets"]["status"] == "ok" and by_slug["acme_widgets"]["counts"]["chunks"] == 5
    assert by_slug["acme_widgets"]["key"] == slot_key(fake_slots[0])
    assert by_slug["ghost_lib"]["status"] == "missing" and "no artifact" in by_slug["ghost_lib"]["reason"]
    assert S.read_meta(db)[S.META_SLOTS_MISSING] == '["ghost_lib"]'


def test_removed_library_disappears(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    db = tmp_path / "deadzone.db"
    build(fake_slots, fake_artifacts, db)
    build(fake_slots[:2], fake_artifacts, db)  # /zeta/tools left the registry; its artifact is still on disk
    libs = [r[0] for r in sqlite3.connect(db).execute("SELECT lib_id FROM libraries")]
    assert libs == ["/acme/gadgets", "/acme/widgets"]
    assert sqlite3.connect(db).execute("SELECT count(*) FROM chunks WHERE lib_id = '/zeta/tools'").fetchone() == (0,)


def test_zero_libraries_is_an_error_and_writes_nothing(fake_slots, tmp_path: Path) -> None:
    db = tmp_path / "out" / "deadzone.db"
    with pytest.raises(ConsolidateError, match="no library has a current artifact") as info:
        build(fake_slots, tmp_path / "empty", db, max_missing=10)
    assert "never written" in str(info.value)
    assert not db.parent.exists() or files_beside(db) == []


def test_too_many_missing_names_them_and_keeps_the_old_db(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    db = tmp_path / "out" / "deadzone.db"
    build(fake_slots, fake_artifacts, db)
    before = {name: (db.parent / name).read_bytes() for name in files_beside(db)}
    slots = [*fake_slots, make_slot("/ghost/one"), make_slot("/ghost/two", version="1")]
    with pytest.raises(ConsolidateError) as info:
        build(slots, fake_artifacts, db, max_missing=1)
    message = str(info.value)
    assert "2 of 5 slots" in message and "/ghost/one" in message and "/ghost/two@1" in message
    assert "--max-missing" in message
    assert {name: (db.parent / name).read_bytes() for name in files_beside(db)} == before


def test_corrupt_artifact_is_refused_and_named(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    vectors = fake_artifacts / "zeta_tools" / VECTORS_FILE
    data = bytearray(vectors.read_bytes())
    data[100] ^= 0xFF
    vectors.write_bytes(bytes(data))
    db = tmp_path / "deadzone.db"
    with pytest.raises(ConsolidateError, match=r"/zeta/tools \[corrupt\].*vectors.f32"):
        build(fake_slots, fake_artifacts, db)
    assert not db.exists()
    result = build(fake_slots, fake_artifacts, db, max_missing=1)
    assert [(m.slug, m.status) for m in result.missing] == [("zeta_tools", "corrupt")]
    assert sqlite3.connect(db).execute("SELECT count(*) FROM libraries").fetchone() == (2,)


def test_stale_artifact_is_not_used(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    edited = [replace(fake_slots[0], description="A new description."), *fake_slots[1:]]
    result = build(edited, fake_artifacts, tmp_path / "deadzone.db", max_missing=1)
    assert [(m.slug, m.status) for m in result.missing] == [("acme_widgets", "stale")]


def test_db_is_current(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    db = tmp_path / "deadzone.db"
    assert not db_is_current(db, fake_slots)
    build(fake_slots, fake_artifacts, db)
    assert db_is_current(db, fake_slots) and db_is_current(db, list(reversed(fake_slots)), fake_artifacts)
    assert not db_is_current(db, fake_slots[:2])
    assert not db_is_current(db, [replace(fake_slots[0], ref="v9"), *fake_slots[1:]])
    check = pickle.loads(pickle.dumps(DbIsCurrent(db, fake_slots, fake_artifacts)))
    assert check() is True and "manifest.json" in repr(check)
    data = bytearray(db.read_bytes())
    data[-10] ^= 1
    db.write_bytes(bytes(data))
    assert not db_is_current(db, fake_slots)


def test_db_is_stale_when_a_missing_artifact_appears(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    db = tmp_path / "deadzone.db"
    late = make_slot("/late/lib")
    build([*fake_slots, late], fake_artifacts, db, max_missing=1)
    assert db_is_current(db, [*fake_slots, late], fake_artifacts)
    # a db that tolerated one missing slot is current for max_missing=1, never for a complete build
    assert db_is_current(db, [*fake_slots, late], fake_artifacts, max_missing=1)
    assert not db_is_current(db, [*fake_slots, late], fake_artifacts, max_missing=0)
    assert not DbIsCurrent(db, [*fake_slots, late], fake_artifacts, max_missing=0)()
    write_fake_artifact(fake_artifacts, late)
    assert db_is_current(db, [*fake_slots, late])  # without artifacts_dir only keys and pin are compared
    assert not db_is_current(db, [*fake_slots, late], fake_artifacts)


def test_cli_consolidate(fake_artifacts: Path, fake_slots, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    registry = tmp_path / "libraries_sources.yaml"
    registry.write_text(registry_yaml(fake_slots))
    db = tmp_path / "cli" / "deadzone.db"
    args = ["consolidate", "--registry", str(registry), "--artifacts", str(fake_artifacts), "--db", str(db)]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["libraries"] == 3 and out["sha256"] == hashlib.sha256(db.read_bytes()).hexdigest()
    assert main([*args, "--lib", "/zeta/tools"]) == 0
    assert S.read_meta(db)[S.META_LIB_FILTER] == "/zeta/tools"
    assert S.read_meta(db)[S.META_REGISTRY_DIGEST] == registry_digest(fake_slots)
    shutil.rmtree(fake_artifacts / "zeta_tools")
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "consolidate: error:" in err and "/zeta/tools [missing]" in err


def test_vectors_round_trip_exactly(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    db = tmp_path / "deadzone.db"
    build(fake_slots, fake_artifacts, db)
    blob = sqlite3.connect(db).execute("SELECT vector FROM chunks WHERE id = 1").fetchone()[0]
    first = read_artifact(fake_artifacts / "acme_gadgets_2.1").vectors[0]
    np.testing.assert_array_equal(np.frombuffer(blob, dtype="<f4"), first)


def _doit_consolidate(tmp_path: Path, artifacts: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEADZONE_REGISTRY=str(tmp_path / "libraries_sources.yaml"),
               DEADZONE_ARTIFACTS=str(artifacts), DEADZONE_DB=str(tmp_path / "deadzone.db"),
               DEADZONE_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(tmp_path),
                           "--single", *args, "consolidate"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_doit_consolidate_never_passes_a_tolerant_db_off_as_complete(fake_artifacts: Path, fake_slots,
                                                                     tmp_path: Path) -> None:
    late = make_slot("/late/lib")
    (tmp_path / "libraries_sources.yaml").write_text(registry_yaml([*fake_slots, late]))
    tolerant = _doit_consolidate(tmp_path, fake_artifacts, "max_missing=1")
    assert tolerant.returncode == 0, tolerant.stdout + tolerant.stderr
    assert _doit_consolidate(tmp_path, fake_artifacts, "max_missing=1").stdout.startswith("-- consolidate")
    db_bytes = (tmp_path / "deadzone.db").read_bytes()
    strict = _doit_consolidate(tmp_path, fake_artifacts)  # max_missing defaults to 0
    assert strict.returncode != 0 and "/late/lib [missing]" in strict.stdout + strict.stderr
    assert (tmp_path / "deadzone.db").read_bytes() == db_bytes  # the refused build lost nothing


@pytest.mark.parametrize("value", ["many", "-1", ""])
def test_doit_max_missing_must_be_a_count(fake_slots, fake_artifacts: Path, tmp_path: Path, value: str) -> None:
    (tmp_path / "libraries_sources.yaml").write_text(registry_yaml(fake_slots))
    proc = _doit_consolidate(tmp_path, fake_artifacts, f"max_missing={value}")
    assert proc.returncode != 0 and "is not a count of slots" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "deadzone.db").exists()


def test_two_dbs_in_one_folder_keep_their_own_manifests(fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    full, part = tmp_path / "out" / "deadzone.db", tmp_path / "out" / "partial.db"
    build(fake_slots, fake_artifacts, full)
    build(fake_slots[:2], fake_artifacts, part)
    assert files_beside(full) == ["deadzone.db", "deadzone.db.sha256", "manifest.json",
                                  "partial.db", "partial.db.manifest.json", "partial.db.sha256"]
    assert manifest_path(part) == tmp_path / "out" / "partial.db.manifest.json"
    assert json.loads(manifest_path(full).read_text())["db"] == "deadzone.db"
    assert json.loads(manifest_path(part).read_text())["db"] == "partial.db"
    assert db_is_current(full, fake_slots) and db_is_current(part, fake_slots[:2])  # neither clobbered the other
