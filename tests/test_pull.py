"""pull: the db as a cache — artifacts → db → pull → the same bytes, file by file."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from deadzone_build.db import schema as S
from deadzone_build.pipeline.artifact import CHUNKS_FILE, artifact_is_current
from deadzone_build.cli import main
from deadzone_build.db.consolidate import consolidate
from deadzone_build.errors import DatabaseError
from deadzone_build.registry.keys import registry_digest, slot_key
from deadzone_build.db.pull import pull
from fx_artifacts import make_slot, registry_yaml


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def db(fake_artifacts: Path, fake_slots, tmp_path: Path) -> Path:
    path = tmp_path / "release" / "deadzone.db"
    consolidate(slots=fake_slots, artifacts_dir=fake_artifacts, db_path=path,
                registry_digest=registry_digest(fake_slots))
    return path


def test_round_trip_is_byte_identical(db: Path, fake_artifacts: Path, fake_slots, tmp_path: Path) -> None:
    out = tmp_path / "pulled"
    result = pull(db, slots=fake_slots, artifacts_dir=out)
    assert sorted(result.written) == sorted(s.slug for s in fake_slots)
    assert result.current == [] and result.absent == [] and result.failed == {}
    assert tree(out) == tree(fake_artifacts)
    assert len(tree(out)) == 4 * len(fake_slots)
    # ...and consolidating the pulled artifacts gives the same db.
    again = consolidate(slots=fake_slots, artifacts_dir=out, db_path=tmp_path / "again" / "deadzone.db",
                        registry_digest=registry_digest(fake_slots))
    assert (tmp_path / "again" / "deadzone.db").read_bytes() == db.read_bytes()
    assert again.sha256 == db.with_name("deadzone.db.sha256").read_text().split()[0]


def test_current_artifacts_are_left_alone_and_damaged_ones_rebuilt(db: Path, fake_artifacts: Path, fake_slots) -> None:
    chunks = fake_artifacts / "zeta_tools" / CHUNKS_FILE
    chunks.write_bytes(chunks.read_bytes().replace(b"section", b"sektion", 1))
    untouched = (fake_artifacts / "acme_widgets" / CHUNKS_FILE).stat().st_mtime_ns
    result = pull(db, slots=fake_slots, artifacts_dir=fake_artifacts)
    assert result.written == ["zeta_tools"]
    assert sorted(result.current) == ["acme_gadgets_2.1", "acme_widgets"]
    assert artifact_is_current(fake_artifacts / "zeta_tools", slot_key(fake_slots[2]))
    assert (fake_artifacts / "acme_widgets" / CHUNKS_FILE).stat().st_mtime_ns == untouched


def test_only_slots_whose_key_the_db_holds(db: Path, fake_slots, tmp_path: Path) -> None:
    edited = replace(fake_slots[0], description="Changed since the release.")
    new = make_slot("/new/lib")
    result = pull(db, slots=[edited, fake_slots[1], new], artifacts_dir=tmp_path / "out")
    assert result.written == ["acme_gadgets_2.1"]
    assert sorted(result.absent) == ["acme_widgets", "new_lib"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["acme_gadgets_2.1"]


def test_rows_that_do_not_verify_are_refused(db: Path, fake_slots, tmp_path: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE chunks SET tokens = tokens + 1 WHERE lib_id = '/zeta/tools' AND ordinal = 0")
    conn.commit()
    conn.close()
    out = tmp_path / "out"
    result = pull(db, slots=fake_slots, artifacts_dir=out)
    assert list(result.failed) == ["zeta_tools"] and "do not verify" in result.failed["zeta_tools"]
    assert sorted(p.name for p in out.iterdir()) == ["acme_gadgets_2.1", "acme_widgets"]


def test_db_with_another_pin_is_refused(db: Path, fake_slots, tmp_path: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = 'x' WHERE key = ?", (S.META_PIN_ID,))
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="embedder pin x"):
        pull(db, slots=fake_slots, artifacts_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pin_is_stored_once_and_a_damaged_one_is_refused(db: Path, fake_slots, tmp_path: Path) -> None:
    conn = sqlite3.connect(db)
    rows = [json.loads(r[0]) for r in conn.execute("SELECT meta_json FROM libraries")]
    assert rows and all("embedder" not in r["key_inputs"] for r in rows)  # the pin lives in `meta` only
    pin = json.loads(S.read_meta(conn)[S.META_PIN])
    conn.execute("UPDATE meta SET value = ? WHERE key = ?",
                 (json.dumps({**pin, "window": 1}, sort_keys=True, separators=(",", ":")), S.META_PIN))
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseError, match="embedder_pin is missing or does not hash"):
        pull(db, slots=fake_slots, artifacts_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_pull(db: Path, fake_artifacts: Path, fake_slots, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    registry = tmp_path / "libraries_sources.yaml"
    registry.write_text(registry_yaml(fake_slots))
    out = tmp_path / "out"
    args = ["pull", "--registry", str(registry), "--db", str(db), "--artifacts", str(out)]
    assert main([*args, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["written"]) == 3
    assert tree(out) == tree(fake_artifacts)
    assert main(args) == 0
    assert "0 written, 3 already current" in capsys.readouterr().out
    conn = sqlite3.connect(db)
    conn.execute("UPDATE chunks SET text = 'x' WHERE lib_id = '/acme/widgets'")
    conn.commit()
    conn.close()
    (out / "acme_widgets" / "meta.json").unlink()
    assert main(args) == 1
    assert "acme_widgets" in capsys.readouterr().err
