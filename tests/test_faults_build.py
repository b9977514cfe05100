"""Nothing lost, nothing trusted blindly: transient drops, a damaged vector cache, empty slots, races
and leftovers, on real parts (a local doc server, the real model, real SQLite, real processes)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from deadzone_build.ci.plan import reusable_keys
from deadzone_build.db import consolidate as consolidate_module
from deadzone_build.db.consolidate import consolidate, manifest_path, sha256_path
from deadzone_build.db.read import db_is_current
from deadzone_build.errors import DatabaseError, ScrapeError
from deadzone_build.pipeline.artifact import artifact_is_current, read_artifact, verify_artifact, write_artifact
from deadzone_build.pipeline.explain import explain_slot
from deadzone_build.pipeline.scrape import scrape_slot
from deadzone_build.publish.gates import check_release_inputs
from deadzone_build.registry.keys import registry_digest, slot_key
from deadzone_build.registry.load import parse_registry
from deadzone_build.sources import fetch
from deadzone_build.sources.fetch import FetchSettings, make_client
from fx_artifacts import fake_payload, make_slot, registry_yaml, write_fake_artifact

FAST = FetchSettings(connect_timeout=2.0, read_timeout=5.0, retries=1, backoff_base=0.01, max_retry_after=0.05)
HUGOT = parse_registry("""\
libraries:
  - lib_id: /knights-analytics/hugot
    description: Go library for running HuggingFace transformer models on the ONNX Runtime.
    kind: github-md
    ref: v0.7.2
    urls:
      - https://raw.githubusercontent.com/knights-analytics/hugot/{ref}/README.md
      - https://raw.githubusercontent.com/knights-analytics/hugot/{ref}/contrib.md
""")[0]
README, CONTRIB = HUGOT.urls


@pytest.fixture(autouse=True)
def _fresh_network_health():
    fetch.reset_network_health()


def scrape(server, tmp_path: Path, embedder, cache: Path, **kw):
    client = make_client(FAST, rewrite=[("https://raw.githubusercontent.com/", server.base_url)], token="")
    try:
        return scrape_slot(HUGOT, artifacts_dir=tmp_path / "artifacts", cache_dir=cache, client=client,
                           fetch_settings=FAST, embedder=embedder, **kw)
    finally:
        client.close()


@pytest.fixture
def cache(tmp_path: Path, embedder_cache: Path) -> Path:
    """A private cache dir (own vector cache) sharing the session's built model."""
    own = tmp_path / "cache"
    (own / "embedder").mkdir(parents=True)
    for entry in (embedder_cache / "embedder").iterdir():
        (own / "embedder" / entry.name).symlink_to(entry)
    return own


# ── defect 1: a transient failure never becomes a permanent artifact ────────


def test_a_transient_drop_gives_an_incomplete_artifact_that_the_next_run_rebuilds(docs_server, tmp_path,
                                                                                 embedder, cache):
    docs_server.faults.status(CONTRIB, 503)
    first = scrape(docs_server, tmp_path, embedder, cache)
    meta = verify_artifact(first.path, expected_key=slot_key(HUGOT))
    assert first.incomplete == [CONTRIB] and "INCOMPLETE" in first.line()
    assert meta["incomplete"] is True and [r.get("retryable") for r in meta["urls"]] == [None, True]
    assert not artifact_is_current(first.path, slot_key(HUGOT))  # usable, but never current
    assert "marked incomplete" in " ".join(explain_slot(HUGOT, tmp_path / "artifacts").reasons)

    docs_server.faults.clear()
    second = scrape(docs_server, tmp_path, embedder, cache)  # not forced: the next run scrapes it again
    assert second.status == "scraped" and second.incomplete == [] and second.docs_dropped == 0
    assert artifact_is_current(second.path, slot_key(HUGOT)) and "incomplete" not in read_artifact(second.path).meta


def test_a_permanent_drop_keeps_todays_behaviour(docs_server, tmp_path, embedder, cache):
    docs_server.faults.not_found(CONTRIB)
    outcome = scrape(docs_server, tmp_path, embedder, cache)
    assert outcome.docs_dropped == 1 and outcome.incomplete == []
    assert artifact_is_current(outcome.path, slot_key(HUGOT))
    assert scrape(docs_server, tmp_path, embedder, cache).status == "up-to-date"


def test_an_incomplete_slot_is_in_the_manifest_keeps_the_db_stale_and_blocks_the_release(tmp_path):
    slots = [make_slot("/acme/widgets"), make_slot("/acme/gadgets")]
    artifacts, db = tmp_path / "artifacts", tmp_path / "out" / "deadzone.db"
    write_fake_artifact(artifacts, slots[0])
    payload = fake_payload(slots[1])
    payload["url_reports"][0].update(status="dropped", retryable=True, reason="HTTP 503, 2 attempts; retry later.")
    write_artifact(artifacts, slots[1], **payload, incomplete=True)
    registry = tmp_path / "registry.yaml"
    registry.write_text(registry_yaml(slots))

    result = consolidate(slots=slots, artifacts_dir=artifacts, db_path=db, registry_digest=registry_digest(slots))
    manifest = json.loads(manifest_path(db).read_text())
    assert result.incomplete == manifest["incomplete"] == [slots[1].slug] and "INCOMPLETE" in result.line()
    assert [e["incomplete"] for e in manifest["slots"]] == [False, True]
    assert not db_is_current(db, slots, artifacts)  # consolidate runs again once the slot is rescraped
    assert reusable_keys(db) == {slot_key(slots[0])}  # a CI plan scrapes it again rather than reusing it
    with pytest.raises(DatabaseError, match=r"1 incomplete slot \(acme_gadgets\).*--allow-incomplete"):
        check_release_inputs(db, registry)
    assert len(check_release_inputs(db, registry, allow_incomplete=True)) == 3


# ── defect 4: a slot whose documents give no chunk fails ────────────────────


def test_a_slot_with_zero_chunks_fails_and_writes_nothing(docs_server, tmp_path, embedder, cache):
    for url in HUGOT.urls:
        docs_server.faults.body(url, "<!-- generated: nothing here -->\n")
    with pytest.raises(ScrapeError, match="0 chunks"):
        scrape(docs_server, tmp_path, embedder, cache)
    assert not (tmp_path / "artifacts" / HUGOT.slug).exists()


# ── defect 3: the vector cache is verified ──────────────────────────────────


def cache_file(cache: Path) -> Path:
    [path] = (cache / "vectors").glob("*.sqlite")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every row in the main file, where we damage it
    conn.close()
    return path


def test_a_flipped_byte_in_the_vector_cache_is_caught_and_re_embedded(docs_server, tmp_path, embedder, cache):
    first = scrape(docs_server, tmp_path, embedder, cache)
    good = read_artifact(first.path).vectors.copy()
    path = cache_file(cache)
    data = bytearray(path.read_bytes())
    at = data.find(good[3].astype("<f4").tobytes()[:64])  # a row may span pages: its start is contiguous
    assert at > 0
    data[at + 40] ^= 0x10  # one bit of one float of one cached vector
    path.write_bytes(bytes(data))

    again = scrape(docs_server, tmp_path, embedder, cache, force=True)
    assert np.array_equal(read_artifact(again.path).vectors, good)  # the damaged vector never reached it
    assert again.embedded == 1 and any("1 cached vector failed its check" in note for note in again.notes)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_an_unreadable_vector_cache_is_rebuilt_with_one_line(docs_server, tmp_path, embedder, cache, damage):
    first = scrape(docs_server, tmp_path, embedder, cache)
    path = cache_file(cache)
    data = path.read_bytes()
    path.write_bytes({"garbage": os.urandom(len(data)), "truncated": data[: len(data) // 3], "empty": b""}[damage])
    again = scrape(docs_server, tmp_path, embedder, cache, force=True)
    assert np.array_equal(read_artifact(again.path).vectors, read_artifact(first.path).vectors)
    if damage != "empty":  # an empty file is a valid empty database: only misses
        assert [n for n in again.notes if "unreadable" in n and "started an empty one" in n]
    assert again.embedded == first.chunks


# ── defect 8: two writers of one slug ───────────────────────────────────────


def test_the_loser_of_two_writers_of_one_slug_does_not_crash(tmp_path, monkeypatch):
    slot = make_slot("/acme/widgets")
    artifacts = tmp_path / "artifacts"
    real_rename = os.rename
    raced = []

    def rename(src, dst):  # the other process's whole write lands just before our final rename
        if Path(dst) == artifacts / slot.slug and Path(src).name.startswith(".tmp-") and not raced:
            raced.append(dst)
            write_fake_artifact(artifacts, slot)
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    assert write_fake_artifact(artifacts, slot) == artifacts / slot.slug
    assert raced and artifact_is_current(artifacts / slot.slug, slot_key(slot))
    assert sorted(p.name for p in artifacts.iterdir()) == [slot.slug]  # no scratch left


# ── defect 9: db, .sha256 and manifest.json describe one build ──────────────


def two_builds(tmp_path: Path):
    slots = [make_slot("/acme/widgets"), make_slot("/acme/gadgets")]
    registry = tmp_path / "registry.yaml"
    registry.write_text(registry_yaml(slots))
    artifacts = tmp_path / "artifacts"
    for slot in slots:
        write_fake_artifact(artifacts, slot)
    one, two = tmp_path / "one" / "deadzone.db", tmp_path / "two" / "deadzone.db"
    digest = registry_digest(slots)
    consolidate(slots=slots, artifacts_dir=artifacts, db_path=one, registry_digest=digest)
    write_fake_artifact(artifacts, slots[1], n_chunks=9, seed=7)  # another build: other bytes, same keys
    consolidate(slots=slots, artifacts_dir=artifacts, db_path=two, registry_digest=digest)
    return registry, one, two


@pytest.mark.parametrize("case", ["hello", "other-build", "killed-after-sha", "not-a-list"])
def test_release_refuses_a_manifest_that_does_not_describe_the_db(tmp_path, case):
    registry, one, two = two_builds(tmp_path)
    check_release_inputs(one, registry)  # a whole build passes
    manifest = manifest_path(one)
    if case == "hello":
        manifest.write_text('{"hello": 1}')
    elif case == "other-build":
        shutil.copy(manifest_path(two), manifest)
    elif case == "killed-after-sha":  # db and .sha256 of build two, the manifest still of build one
        shutil.copy(two, one)
        shutil.copy(sha256_path(two), sha256_path(one))
    else:
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "slots": {"a": 1}}))
    with pytest.raises(DatabaseError, match="does not describe|is not a deadzone manifest"):
        check_release_inputs(one, registry)


def test_two_consolidates_of_one_db_never_mix_their_files(tmp_path, monkeypatch):
    slots = [make_slot("/acme/widgets"), make_slot("/acme/gadgets")]
    first, second = tmp_path / "a1", tmp_path / "a2"
    for i, where in enumerate((first, second)):
        for slot in slots:
            write_fake_artifact(where, slot, n_chunks=4 + i, seed=i)
    db = tmp_path / "out" / "deadzone.db"
    second_done = threading.Event()
    real_write = consolidate_module.write_atomic

    def write_atomic(path, data):  # the first consolidate pauses between its db and its .sha256
        if threading.current_thread().name == "first" and path.name.endswith(".sha256"):
            second_done.wait(timeout=60)
        return real_write(path, data)

    monkeypatch.setattr(consolidate_module, "write_atomic", write_atomic)

    def run(artifacts: Path, log) -> None:
        consolidate(slots=slots, artifacts_dir=artifacts, db_path=db, registry_digest=registry_digest(slots), log=log)

    one = threading.Thread(target=run, args=(first, lambda line: None), name="first")
    one.start()
    while not db.exists():  # the first has renamed its db into place and is paused
        one.join(0.01)
    # the second either waits for the lock (and says so) or, without one, finishes at once
    two = threading.Thread(target=run, name="second", args=(
        second, lambda line: second_done.set() if "waiting for another consolidate" in line else None))
    two.start()
    two.join(timeout=5)
    second_done.set()
    one.join()
    two.join()
    manifest = json.loads(manifest_path(db).read_text())
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    assert sha256_path(db).read_text() == f"{digest}  deadzone.db\n" and manifest["sha256"] == digest


# ── defect 10: leftovers of killed processes are removed, live ones kept ────


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


KILLED_CONSOLIDATE = """
import sys, time
from pathlib import Path
from deadzone_build.db.consolidate import consolidate
from deadzone_build.registry.keys import registry_digest
sys.path.insert(0, sys.argv[3])
from fx_artifacts import make_slot
slots = [make_slot("/acme/widgets")]
def log(line):
    print("READY", flush=True)
    time.sleep(600)
consolidate(slots=slots, artifacts_dir=Path(sys.argv[1]), db_path=Path(sys.argv[2]),
            registry_digest=registry_digest(slots), log=log)
"""


def test_a_killed_consolidates_temp_db_is_removed_by_the_next_one(tmp_path):
    slots = [make_slot("/acme/widgets")]
    artifacts, db = tmp_path / "artifacts", tmp_path / "out" / "deadzone.db"
    write_fake_artifact(artifacts, slots[0])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CONSOLIDATE, str(artifacts), str(db), str(REPO / "tests")],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "READY"
    proc.kill()  # kill -9 in the middle of writing the temp db
    proc.wait()
    [left] = [p for p in db.parent.iterdir() if p.name.startswith(".deadzone.db.tmp-")]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        live = db.parent / f".deadzone.db.tmp-{sleeper.pid}-0123456789ab"
        live.write_bytes(b"another live consolidate is writing this")
        logged: list[str] = []
        consolidate(slots=slots, artifacts_dir=artifacts, db_path=db, registry_digest=registry_digest(slots),
                    log=logged.append)
        assert not left.exists() and live.exists()
        assert any(str(left) in line and "killed consolidate" in line for line in logged)
    finally:
        sleeper.kill()
        sleeper.wait()
    ignored = subprocess.run(["git", "check-ignore", "-q", f".deadzone.db.tmp-{dead_pid()}-0123456789ab"], cwd=REPO)
    assert ignored.returncode == 0


def test_a_killed_model_builds_staging_dir_is_removed_by_the_next_build(tmp_path):
    from deadzone_build.embed import embedder as embedder_module

    target = embedder_module.model_path(tmp_path).parent
    target.parent.mkdir(parents=True)
    stale = target.parent / f".{target.name}.tmp-{dead_pid()}-k1ll3d"
    live = target.parent / f".{target.name}.tmp-{os.getppid()}-bu1ld1ng"
    for path in (stale, live):
        path.mkdir()
        (path / "model.onnx").write_bytes(b"\0" * 4096)
    embedder_module._install(tmp_path, b"not a model, but installed like one")
    assert not stale.exists() and live.exists()
    assert (target / "model.onnx").read_bytes() == b"not a model, but installed like one"
