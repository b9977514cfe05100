"""The artifact format: round trip, corruption, crash recovery, killed writers, concurrent writers."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deadzone_build.pipeline.artifact import (
    CHUNKS_FILE, LIBRARY_FILE, META_FILE, VECTORS_FILE, ArtifactIsCurrent, artifact_is_current,
    read_artifact, verify_artifact, write_artifact,
)
from deadzone_build.pipeline.scratch import recover, recover_once
from deadzone_build.errors import ArtifactError
from deadzone_build.registry.keys import slot_key
from deadzone_build.embed.pin import pin_id
from fx_artifacts import fake_payload, make_slot, write_fake_artifact

ALL_FILES = (CHUNKS_FILE, VECTORS_FILE, LIBRARY_FILE, META_FILE)


def tree_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def scratch_dirs(artifacts_dir: Path) -> list[str]:
    return sorted(p.name for p in artifacts_dir.iterdir() if p.name.startswith("."))


def test_round_trip(artifacts_dir: Path) -> None:
    slot = make_slot("/acme/widgets", version="1.2")
    payload = fake_payload(slot, n_chunks=7)
    path = write_artifact(artifacts_dir, slot, **payload)
    assert path == artifacts_dir / "acme_widgets_1.2"
    assert sorted(p.name for p in path.iterdir()) == sorted(ALL_FILES)
    art = read_artifact(path, expected_key=slot_key(slot))
    assert art.key == slot_key(slot)
    assert [c["text"] for c in art.chunks] == [c["text"] for c in payload["chunks"]]
    assert [c["ordinal"] for c in art.chunks] == list(range(7))
    np.testing.assert_array_equal(art.vectors, payload["vectors"])
    np.testing.assert_array_equal(art.library_vector, payload["library_vector"])
    meta = verify_artifact(path, expected_key=slot_key(slot), expected_pin_id=pin_id())
    assert meta["slot"]["slug"] == "acme_widgets_1.2"
    assert meta["counts"]["chunks"] == 7 and meta["urls"] == payload["url_reports"]
    assert (path / META_FILE).read_text().endswith("}\n")
    assert scratch_dirs(artifacts_dir) == []


def test_same_inputs_give_same_bytes(tmp_path: Path) -> None:
    slot = make_slot()
    a = write_fake_artifact(tmp_path / "a", slot, n_chunks=4)
    b = write_fake_artifact(tmp_path / "b", slot, n_chunks=4)
    assert tree_bytes(a) == tree_bytes(b)


def test_empty_artifact_round_trips(artifacts_dir: Path) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot, n_chunks=0)
    art = read_artifact(path, expected_key=slot_key(slot))
    assert art.chunks == [] and art.vectors.shape == (0, 384)


@pytest.mark.parametrize("name", ALL_FILES)
def test_one_flipped_byte_is_caught(artifacts_dir: Path, name: str) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot)
    for offset in (0, (path / name).stat().st_size // 2, (path / name).stat().st_size - 2):
        data = bytearray((path / name).read_bytes())
        data[offset] ^= 0x01
        (path / name).write_bytes(bytes(data))
        with pytest.raises(ArtifactError, match=str(path)):
            verify_artifact(path)
        assert not artifact_is_current(path, slot_key(slot))
        data[offset] ^= 0x01
        (path / name).write_bytes(bytes(data))
        assert artifact_is_current(path, slot_key(slot))


def test_edited_report_in_meta_is_caught(artifacts_dir: Path) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot)
    meta = json.loads((path / META_FILE).read_text())
    meta["urls"][0]["bytes"] += 1  # still valid, canonical JSON: only the meta digest notices
    (path / META_FILE).write_text(json.dumps(meta, sort_keys=True, indent=1, ensure_ascii=False) + "\n")
    with pytest.raises(ArtifactError, match="meta_digest"):
        verify_artifact(path)


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / META_FILE).unlink(), "meta.json is missing"),
    (lambda p: (p / META_FILE).write_text("{not json"), "not valid JSON"),
    (lambda p: (p / VECTORS_FILE).unlink(), "vectors.f32 is missing"),
    (lambda p: (p / CHUNKS_FILE).write_bytes((p / CHUNKS_FILE).read_bytes()[:-5]), "digest does not match"),
])
def test_damaged_artifact_is_named(artifacts_dir: Path, damage, message: str) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot)
    damage(path)
    with pytest.raises(ArtifactError, match=message) as info:
        verify_artifact(path)
    assert str(path) in str(info.value) and "scrape" in str(info.value).lower()
    assert not artifact_is_current(path, slot_key(slot))


def test_key_and_pin_mismatch(artifacts_dir: Path) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot)
    edited = replace(slot, description="Changed.")
    with pytest.raises(ArtifactError, match="an input changed"):
        verify_artifact(path, expected_key=slot_key(edited))
    with pytest.raises(ArtifactError, match="pin"):
        verify_artifact(path, expected_pin_id="0" * 64)
    assert not artifact_is_current(path, slot_key(edited))
    assert not artifact_is_current(artifacts_dir / "nothing_here", slot_key(slot))


def test_bad_payload_is_refused_and_old_artifact_kept(artifacts_dir: Path) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot)
    before = tree_bytes(path)
    payload = fake_payload(slot)
    with pytest.raises(ArtifactError, match="shape"):
        write_artifact(artifacts_dir, slot, **{**payload, "vectors": payload["vectors"][:-1]})
    with pytest.raises(ArtifactError, match="not the key"):
        write_artifact(artifacts_dir, slot, **{**payload, "key": slot_key(replace(slot, ref="v2"))})
    bad_chunks = [dict(c) for c in payload["chunks"]]
    bad_chunks[1]["ordinal"] = 5
    with pytest.raises(ArtifactError, match="ordinal"):
        write_artifact(artifacts_dir, slot, **{**payload, "chunks": bad_chunks})
    nan = payload["vectors"].copy()
    nan[0, 0] = np.nan
    with pytest.raises(ArtifactError, match="NaN"):
        write_artifact(artifacts_dir, slot, **{**payload, "vectors": nan})
    assert tree_bytes(path) == before
    assert scratch_dirs(artifacts_dir) == []


def test_rewrite_replaces_old_artifact(artifacts_dir: Path) -> None:
    slot = make_slot()
    write_fake_artifact(artifacts_dir, slot, n_chunks=3)
    edited = replace(slot, description="New words.")
    path = write_fake_artifact(artifacts_dir, edited, n_chunks=5)
    assert artifact_is_current(path, slot_key(edited))
    assert not artifact_is_current(path, slot_key(slot))
    assert scratch_dirs(artifacts_dir) == []


def test_half_written_artifact_is_not_current(artifacts_dir: Path) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot)
    (path / META_FILE).unlink()
    assert not artifact_is_current(path, slot_key(slot))


def test_recover_restores_old_after_crash_between_renames(artifacts_dir: Path) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot)
    before = tree_bytes(path)
    dead = _dead_pid()
    # The state a crash leaves right after the aside-rename: no <slug>, an .old- and a finished .tmp-.
    path.rename(artifacts_dir / f".old-{slot.slug}-{dead}-0123456789ab")
    (artifacts_dir / f".tmp-{slot.slug}-{dead}-ba9876543210").mkdir()
    other = artifacts_dir / f".tmp-{slot.slug}-x-{os.getppid()}-0123456789ab"  # a live writer's: untouched
    other.mkdir()
    assert not artifact_is_current(path, slot_key(slot))  # this process swept at its first write
    recover(artifacts_dir)  # what the next run does first
    assert artifact_is_current(path, slot_key(slot))
    assert tree_bytes(path) == before
    assert scratch_dirs(artifacts_dir) == [other.name]


def test_next_process_recovers_on_its_first_check(artifacts_dir: Path) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot)
    before = tree_bytes(path)
    dead = _dead_pid()
    path.rename(artifacts_dir / f".old-{slot.slug}-{dead}-0123456789ab")
    (artifacts_dir / f".tmp-{slot.slug}-{dead}-ba9876543210").mkdir()
    (artifacts_dir / f".tmp-acme_other-{dead}-ba9876543210").mkdir()  # another slug's leftover: swept too
    code = ("import sys; from pathlib import Path; from deadzone_build.pipeline.artifact import artifact_is_current; "
            "print(artifact_is_current(Path(sys.argv[1]), sys.argv[2]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code, str(path), slot_key(slot)], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "True"
    assert tree_bytes(path) == before and scratch_dirs(artifacts_dir) == []


def test_checks_list_the_directory_once_per_process(artifacts_dir: Path, monkeypatch) -> None:
    slots = [make_slot(f"/acme/lib{i}") for i in range(5)]
    for slot in slots:
        write_fake_artifact(artifacts_dir, slot)
    listed: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p=".": listed.append(str(p)) or real_scandir(p))
    fresh = artifacts_dir.parent / "copy"
    artifacts_dir.rename(fresh)  # a directory this process has not swept yet
    for _ in range(3):
        assert all(artifact_is_current(fresh / s.slug, slot_key(s)) for s in slots)
    recover_once(fresh)
    assert listed == [str(fresh.resolve())]


def test_recover_drops_old_left_after_crash_before_cleanup(artifacts_dir: Path) -> None:
    slot = make_slot()
    old = write_fake_artifact(artifacts_dir, slot, seed=1)
    stale = artifacts_dir / f".old-{slot.slug}-{_dead_pid()}-0123456789ab"
    old.rename(stale)
    path = write_fake_artifact(artifacts_dir, slot, seed=2)  # a leftover never blocks a write
    assert artifact_is_current(path, slot_key(slot))
    recover(artifacts_dir)  # the next run's sweep: <slug> exists, so the dead writer's .old- goes
    assert artifact_is_current(path, slot_key(slot))
    assert scratch_dirs(artifacts_dir) == []


def test_recover_leaves_live_writers_alone(artifacts_dir: Path) -> None:
    live = artifacts_dir / f".tmp-acme_widgets-{os.getppid()}-0123456789ab"
    live.mkdir()
    recover(artifacts_dir)
    assert live.exists()


def test_uptodate_object_for_doit(artifacts_dir: Path) -> None:
    slot = make_slot()
    path = write_fake_artifact(artifacts_dir, slot)
    check = ArtifactIsCurrent(path, slot_key(slot))
    assert check() is True and check(None, {}) is True  # how doit calls it
    assert slot_key(slot) in repr(check) and str(path) in repr(check)
    clone = pickle.loads(pickle.dumps(check))
    assert clone == check and clone() is True
    assert ArtifactIsCurrent(path, "deadzone-x-00")() is False


def test_two_threads_write_different_slugs(artifacts_dir: Path) -> None:
    slots = [make_slot("/acme/one"), make_slot("/acme/one-two")]  # one slug is a prefix of the other
    errors: list[BaseException] = []

    def writer(slot) -> None:
        try:
            for seed in range(6):
                write_fake_artifact(artifacts_dir, slot, n_chunks=20, seed=seed)
                artifact_is_current(artifacts_dir / slots[0].slug, slot_key(slots[0]))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for slot in slots:
        assert artifact_is_current(artifacts_dir / slot.slug, slot_key(slot))
    assert scratch_dirs(artifacts_dir) == []


CHILD = """
import sys
from dataclasses import replace
from pathlib import Path
from fx_artifacts import fake_payload, make_slot
from deadzone_build.pipeline.artifact import write_artifact
slot = make_slot()
slots = [replace(slot, description="first"), replace(slot, description="second")]
payloads = [fake_payload(s, n_chunks=4000, seed=i) for i, s in enumerate(slots)]
print("ready", flush=True)
i = 0
while True:
    write_artifact(Path(sys.argv[1]), slots[i % 2], **payloads[i % 2])
    i += 1
"""


def test_killed_writer_leaves_old_or_new_never_partial(artifacts_dir: Path) -> None:
    slot = make_slot()
    keys = {slot_key(replace(slot, description=d)) for d in ("first", "second")}
    write_fake_artifact(artifacts_dir, replace(slot, description="first"), n_chunks=4000, seed=0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    rng = random.Random(5)
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(artifacts_dir)], env=env,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        threading.Event().wait(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        path = artifacts_dir / slot.slug
        recover(artifacts_dir)  # what the next run does first
        assert any(artifact_is_current(path, k) for k in keys), sorted(os.listdir(artifacts_dir))
        assert scratch_dirs(artifacts_dir) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
