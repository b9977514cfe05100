"""`release_db` / `fetch_release` against a fake GitHub that speaks the real wire format.

Every gate uploads nothing; a re-run uploads nothing; a changed db is swapped in without two
assets sharing a name or a .sha256 sitting beside a db it does not describe; a run killed
between upload and swap is repaired by the next one; GitHub's 5xx/429/403 limits are waited
out; the token never shows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from deadzone_build import __version__
from deadzone_build.db import schema as dbschema
from deadzone_build.cli import main
from deadzone_build.errors import DatabaseError, DeadzoneError, RegistryError, ReleaseError
from deadzone_build.publish.release import check_tag, fetch_release, release_db
from fx_fakegithub import FAKE_REPO, FAKE_TOKEN, FakeGitHub
from fx_release import ReleaseFiles

REPO_ROOT = Path(__file__).resolve().parent.parent
TAG = "v0.1.0"
NAMES = ["deadzone.db", "deadzone.db.sha256", "manifest.json"]


def publish(fake: FakeGitHub, files: ReleaseFiles, sleeps: list[float] | None = None, **kwargs: Any):
    kwargs.setdefault("tag", TAG)
    return release_db(repo=FAKE_REPO, db=files.db, registry=files.registry, api_url=fake.api_url,
                      token=kwargs.pop("token", FAKE_TOKEN), sleep=(sleeps if sleeps is not None else []).append,
                      **kwargs)


def assert_released(fake: FakeGitHub, files: ReleaseFiles, tag: str = TAG) -> None:
    """The release holds exactly the local files, and its .sha256 describes its db."""
    released = fake.released(tag)
    assert sorted(released) == NAMES
    assert released["deadzone.db"] == files.db.read_bytes()
    digest = hashlib.sha256(released["deadzone.db"]).hexdigest()
    assert released["deadzone.db.sha256"] == f"{digest}  deadzone.db\n".encode()
    assert released["manifest.json"] == files.manifest.read_bytes()
    for asset in fake.assets.values():
        assert asset["digest"] == "sha256:" + hashlib.sha256(asset["_data"]).hexdigest()


def assert_never_mismatched(fake: FakeGitHub) -> None:
    """After every change on the fake: no two assets with one name, no .sha256 beside a db it does not describe."""
    for snapshot in fake.snapshots:
        names = [name for name, _ in snapshot]
        assert len(names) == len(set(names)), names
        view = dict(snapshot)
        if "deadzone.db" in view and "deadzone.db.sha256" in view:
            digest = hashlib.sha256(view["deadzone.db"]).hexdigest()
            assert view["deadzone.db.sha256"].decode().split()[0] == digest


# ── publishing ───────────────────────────────────────────────────────────────


def test_fresh_tag_gets_a_published_release_with_three_matching_assets(fake_github, release_files):
    outcome = publish(fake_github, release_files)

    assert_released(fake_github, release_files)
    assert outcome.created and outcome.published and outcome.draft is False
    assert sorted(outcome.uploaded) == NAMES and sorted(outcome.replaced) == NAMES
    assert not fake_github.release_for(TAG)["draft"]
    assert fake_github.uploads == 3
    assert_never_mismatched(fake_github)


def test_same_release_again_uploads_nothing(fake_github, release_files):
    publish(fake_github, release_files)
    writes_before = len(fake_github.writes())
    lines: list[str] = []

    outcome = publish(fake_github, release_files, log=lines.append)

    assert len(fake_github.writes()) == writes_before  # only GETs: nothing uploaded, renamed or deleted
    assert not outcome.changed and outcome.uploaded == [] and sorted(outcome.unchanged) == NAMES
    assert any("nothing uploaded" in line for line in lines)
    assert_released(fake_github, release_files)


def test_changed_db_replaces_the_assets_without_two_of_one_name(fake_github, release_files):
    publish(fake_github, release_files)
    release_files.build(content="second build")

    outcome = publish(fake_github, release_files)

    assert sorted(outcome.replaced) == NAMES and outcome.unchanged == []
    assert_released(fake_github, release_files)
    assert_never_mismatched(fake_github)
    assert len(fake_github.releases) == 1


def test_only_the_changed_file_is_uploaded(fake_github, release_files):
    publish(fake_github, release_files)
    manifest = json.loads(release_files.manifest.read_text())
    release_files.manifest.write_text(json.dumps({**manifest, "edited": True}))  # still describes the db

    outcome = publish(fake_github, release_files)

    assert outcome.uploaded == ["manifest.json"]
    assert sorted(outcome.unchanged) == ["deadzone.db", "deadzone.db.sha256"]
    assert_released(fake_github, release_files)


def test_without_asset_digests_the_released_checksum_decides(release_files):
    """Older servers send no `digest`: the .sha256 asset is downloaded and compared instead."""
    fake = FakeGitHub(digests=False).start()
    try:
        publish(fake, release_files)
        uploads = fake.uploads
        outcome = publish(fake, release_files)
        assert fake.uploads == uploads and not outcome.changed
        assert fake.count("GET", r"/releases/assets/\d+$") >= 1  # read the released .sha256

        release_files.build(content="second build")
        outcome = publish(fake, release_files)
        assert sorted(outcome.replaced) == NAMES
        assert_released(fake, release_files)
        assert_never_mismatched(fake)
    finally:
        fake.stop()


def test_draft_stays_draft_is_found_again_and_is_published_later(fake_github, release_files):
    outcome = publish(fake_github, release_files, draft=True)
    assert outcome.draft is True and not outcome.published

    again = publish(fake_github, release_files, draft=True)  # tags/{tag} hides drafts: found by listing
    assert not again.changed and len(fake_github.releases) == 1

    final = publish(fake_github, release_files)
    assert final.published and final.uploaded == [] and not fake_github.release_for(TAG)["draft"]
    assert fake_github.uploads == 3


def test_missing_slots_publish_with_allow_missing(fake_github, release_files):
    release_files.build(libraries=1, meta={dbschema.META_SLOTS_MISSING: json.dumps(["acme_gadgets_2.0"])})

    publish(fake_github, release_files, allow_missing=True)

    assert_released(fake_github, release_files)


def test_dry_run_checks_and_reports_without_network_or_credentials(fake_github, release_files):
    outcome = release_db(tag=TAG, repo=None, db=release_files.db, registry=release_files.registry, dry_run=True)

    assert outcome.dry_run and [a["name"] for a in outcome.assets] == NAMES
    assert outcome.assets[0]["sha256"] == hashlib.sha256(release_files.db.read_bytes()).hexdigest()
    assert fake_github.requests == []


# ── interrupted runs ─────────────────────────────────────────────────────────


def _release_subprocess(fake: FakeGitHub, files: ReleaseFiles) -> subprocess.Popen:
    env = {**os.environ, "GITHUB_TOKEN": FAKE_TOKEN, "GITHUB_REPOSITORY": FAKE_REPO, "GITHUB_API_URL": fake.api_url}
    return subprocess.Popen(
        [sys.executable, "-m", "deadzone_build", "release", "--tag", TAG, "--db", str(files.db),
         "--registry", str(files.registry)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("killed_at", ["DELETE", "PATCH"], ids=["before-delete-old", "before-rename-new"])
def test_run_killed_between_upload_and_swap_is_repaired_by_the_next(fake_github, release_files, killed_at):
    publish(fake_github, release_files)
    release_files.build(content="second build")
    hold = fake_github.hold(killed_at, r"/releases/assets/\d+$")
    proc = _release_subprocess(fake_github, release_files)
    try:
        assert hold.reached.wait(120), proc.stderr.read().decode() if proc.poll() is not None else "no swap"
    finally:
        proc.kill()
        proc.wait()
        hold.released.set()
    names = fake_github.asset_names(TAG)
    assert sum(".tmp-" in n for n in names) == 3  # all three uploaded, none swapped in yet
    assert_never_mismatched(fake_github)
    uploads = fake_github.uploads

    outcome = publish(fake_github, release_files)

    assert fake_github.uploads == uploads  # the staged copies carry the right digest: reused
    assert sorted(outcome.replaced) == NAMES
    assert_released(fake_github, release_files)
    assert_never_mismatched(fake_github)


def test_run_failing_mid_swap_is_repaired_and_leftovers_cleaned(fake_github, release_files):
    publish(fake_github, release_files)
    release_files.build(content="second build")
    fake_github.fail("PATCH", r"/releases/assets/\d+$", 502, times=100)
    sleeps: list[float] = []
    with pytest.raises(ReleaseError, match=r"kept failing PATCH .* after 6 attempts"):
        publish(fake_github, release_files, sleeps)
    assert len(sleeps) == 5
    fake_github.clear_faults()
    fake_github.add_asset(TAG, "deadzone.db.tmp-0000000000000000", b"junk from another crashed run")

    outcome = publish(fake_github, release_files)

    assert "deadzone.db.tmp-0000000000000000" in outcome.cleaned
    assert_released(fake_github, release_files)
    assert_never_mismatched(fake_github)


def test_an_upload_that_landed_but_lost_its_answer_is_retried_cleanly(fake_github, release_files):
    fake_github.fail("POST", "^/uploads/", 500, apply=True)  # stored, then answered 500

    publish(fake_github, release_files)

    assert_released(fake_github, release_files)
    assert_never_mismatched(fake_github)


# ── GitHub failures ──────────────────────────────────────────────────────────


def test_5xx_then_success_backs_off_and_succeeds(fake_github, release_files):
    fake_github.fail("POST", "^/uploads/", 500, times=2)
    fake_github.fail("GET", r"/releases/\d+/assets$", 503)
    sleeps: list[float] = []

    publish(fake_github, release_files, sleeps)

    assert sleeps == [1.0, 1.0, 2.0]
    assert_released(fake_github, release_files)


def test_429_waits_as_retry_after_says(fake_github, release_files):
    fake_github.fail("POST", r"/releases$", 429, headers={"Retry-After": "7"}, message="API rate limit exceeded")
    sleeps: list[float] = []

    publish(fake_github, release_files, sleeps)

    assert sleeps == [7.0]
    assert len(fake_github.releases) == 1
    assert_released(fake_github, release_files)


def test_secondary_rate_limit_403_waits_a_minute(fake_github, release_files):
    fake_github.fail("PATCH", r"/releases/assets/\d+$", 403,
                     message="You have exceeded a secondary rate limit. Please wait a few minutes.")
    sleeps: list[float] = []

    publish(fake_github, release_files, sleeps)

    assert sleeps == [60.0]
    assert_released(fake_github, release_files)


def test_401_is_a_clear_error_and_nothing_is_uploaded(fake_github, release_files):
    with pytest.raises(ReleaseError, match=r"rejected the credentials .*401 Bad credentials.*GITHUB_TOKEN"):
        publish(fake_github, release_files, token="ghp_wrongtoken")
    assert fake_github.uploads == 0 and fake_github.releases == {}


def test_403_without_rate_limit_is_a_permission_error_not_retried(fake_github, release_files):
    fake_github.fail("POST", r"/releases$", 403, message="Resource not accessible by integration")
    sleeps: list[float] = []

    with pytest.raises(ReleaseError, match=r"lacks permission on acme/deadzone.*contents: write"):
        publish(fake_github, release_files, sleeps)
    assert sleeps == [] and fake_github.uploads == 0


def test_unknown_repository_is_a_clear_404(fake_github, release_files):
    with pytest.raises(ReleaseError, match=r"found nothing at .*acme/missing.*check the repository"):
        release_db(tag=TAG, repo="acme/missing", db=release_files.db, registry=release_files.registry,
                   api_url=fake_github.api_url, token=FAKE_TOKEN, sleep=[].append)


def test_cli_401_exits_non_zero_and_the_token_never_shows(fake_github, release_files, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "ghp_WRONGsecret9876543210zyxwvutsrqponm"
    monkeypatch.setenv("GITHUB_REPOSITORY", FAKE_REPO)
    monkeypatch.setenv("GITHUB_API_URL", fake_github.api_url)
    argv = ["release", "--tag", TAG, "--db", str(release_files.db), "--registry", str(release_files.registry)]

    monkeypatch.setenv("GH_TOKEN", wrong)
    assert main(argv) == 1
    failed = capsys.readouterr()
    assert "rejected the credentials" in failed.err

    monkeypatch.setenv("GITHUB_TOKEN", FAKE_TOKEN)  # GITHUB_TOKEN wins over GH_TOKEN
    assert main(argv) == 0
    release_files.build(content="second build")
    assert main(argv + ["--json"]) == 0
    done = capsys.readouterr()

    assert json.loads(done.out[done.out.index("{"):])["tag"] == TAG
    for text in (failed.out, failed.err, done.out, done.err, caplog.text):
        assert wrong not in text and FAKE_TOKEN not in text


def test_token_absent_from_every_error_message(fake_github, release_files):
    errors: list[str] = []
    fake_github.fail("POST", r"/releases$", 500, times=6, message=f"echo {FAKE_TOKEN}")
    for token in (FAKE_TOKEN, "ghp_other"):
        with pytest.raises(ReleaseError) as caught:
            publish(fake_github, release_files, token=token)
        errors.append(str(caught.value))
    assert FAKE_TOKEN not in "".join(errors) and "ghp_other" not in "".join(errors)
    assert "***" in errors[0]  # GitHub's echo of the token was redacted


# ── gates: each fails clearly and uploads nothing ───────────────────────────


def _rewrite_meta(files: ReleaseFiles, key: str, value: str | None) -> None:
    files.build(meta={key: value})


def _corrupt_db(files: ReleaseFiles) -> None:
    data = bytearray(files.db.read_bytes())
    page = 4096
    data[2 * page + 100: 3 * page - 100] = b"\xa5" * (page - 200)  # scribble over a b-tree page
    files.db.write_bytes(bytes(data))
    files.sha256.write_text(f"{hashlib.sha256(bytes(data)).hexdigest()}  deadzone.db\n")


def _wal_db(files: ReleaseFiles) -> None:
    conn = sqlite3.connect(files.db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def _no_libraries(files: ReleaseFiles) -> None:
    files.build(libraries=0)


def _registry_changed(files: ReleaseFiles) -> None:
    files.registry.write_text(files.registry.read_text().replace("Widgets for tests.", "Widgets, edited."))


GATES: dict[str, tuple[Callable[[ReleaseFiles], Any], dict[str, Any], str]] = {
    "bad-tag": (lambda f: None, {"tag": "v1..0"}, r"not a valid git tag name"),
    "expect-version": (lambda f: None, {"tag": "v9.9.9", "expect_version": __version__},
                       r"does not match the expected version"),
    "no-db": (lambda f: f.db.unlink(), {}, r"deadzone.db does not exist"),
    "not-sqlite": (lambda f: f.db.write_bytes(b"<html>not a db</html>" * 10), {}, r"not an SQLite database"),
    "wal-mode": (_wal_db, {}, r"WAL journal mode"),
    "corrupt": (_corrupt_db, {}, r"integrity check|unreadable"),
    "no-library": (_no_libraries, {}, r"holds no library"),
    "no-libraries-table": (lambda f: _drop_libraries(f), {}, r"no libraries table"),
    "no-checksum": (lambda f: f.sha256.unlink(), {}, r"deadzone.db.sha256 is missing"),
    "checksum-mismatch": (lambda f: f.sha256.write_text("0" * 64 + "  deadzone.db\n"), {},
                          r"changed after it was built"),
    "checksum-garbled": (lambda f: f.sha256.write_text("not a checksum\n"), {}, r"not a sha256sum line"),
    "schema": (lambda f: _rewrite_meta(f, dbschema.META_SCHEMA_VERSION, "0"), {}, r"schema version is '0'"),
    "pin": (lambda f: _rewrite_meta(f, dbschema.META_PIN_ID, "f" * 64), {}, r"embedder pin f{64}, this deadzone-build"),
    "lib-filter": (lambda f: _rewrite_meta(f, dbschema.META_LIB_FILTER, "/acme/widgets"), {},
                   r"built from --lib /acme/widgets only.*whole registry"),
    "no-lib-filter": (lambda f: _rewrite_meta(f, dbschema.META_LIB_FILTER, None), {}, r"records no lib_filter"),
    "registry-changed": (_registry_changed, {}, r"built from another registry"),
    "missing-slots": (lambda f: _rewrite_meta(f, dbschema.META_SLOTS_MISSING, '["acme_gadgets_2.0"]'), {},
                      r"lacks 1 of 2 slots \(acme_gadgets_2.0\).*--allow-missing"),
    "no-manifest": (lambda f: f.manifest.unlink(), {}, r"manifest.json is missing"),
    "bad-manifest": (lambda f: f.manifest.write_text("{oops"), {}, r"manifest.json is not valid JSON"),
    "no-token": (lambda f: None, {"token": None}, r"no GitHub token"),
    "bad-repo": (lambda f: None, {"repo": "not a repo"}, r"not of the form OWNER/NAME"),
}


def _drop_libraries(files: ReleaseFiles) -> None:
    conn = sqlite3.connect(files.db)
    conn.execute("DROP TABLE libraries")
    conn.commit()
    conn.close()
    files.sha256.write_text(f"{hashlib.sha256(files.db.read_bytes()).hexdigest()}  deadzone.db\n")


@pytest.mark.parametrize("gate", GATES, ids=list(GATES))
def test_every_gate_fails_clearly_and_uploads_nothing(gate, fake_github, release_files):
    breaker, overrides, message = GATES[gate]
    breaker(release_files)
    kwargs = {"tag": TAG, "repo": FAKE_REPO, "token": FAKE_TOKEN, **overrides}

    with pytest.raises(DeadzoneError, match=message) as caught:
        release_db(db=release_files.db, registry=release_files.registry, api_url=fake_github.api_url,
                   sleep=[].append, **kwargs)

    assert isinstance(caught.value, (DatabaseError, ReleaseError, RegistryError))
    assert fake_github.requests == []  # not one request, let alone an upload


def test_expect_version_accepts_the_tag_with_or_without_v(release_files):
    for tag in (f"v{__version__}", __version__):
        release_db(tag=tag, repo=None, db=release_files.db, registry=release_files.registry, dry_run=True,
                   expect_version=__version__)


def test_cli_expect_version_bare_flag_means_the_package_version(release_files, capsys):
    argv = ["release", "--dry-run", "--db", str(release_files.db), "--registry", str(release_files.registry),
            "--expect-version"]
    assert main(["release", "--tag", "v0.0.0-other", *argv[1:]]) == 1
    assert "does not match the expected version" in capsys.readouterr().err
    assert main(["release", "--tag", f"v{__version__}", *argv[1:]]) == 0
    assert "would publish" in capsys.readouterr().out


VALID_TAGS = ["v1.0.0", "1.0", "release/2025-06-18", "v1.0-rc1", "v1+build.5", "été"]
INVALID_TAGS = ["", "v1..0", "v 1", "v1~1", "v1^", "v1:x", "v1?", "v1*", "v1[", "v1\\x", "v1.",
                "v1/", "/v1", "a//b", "v@{1}", ".v1", "a/.b", "v1.lock", "a.lock/b", "v1\x07"]


@pytest.mark.parametrize("tag", VALID_TAGS + INVALID_TAGS)
def test_tag_check_agrees_with_git(tag):
    git = subprocess.run(["git", "check-ref-format", f"refs/tags/{tag}"], capture_output=True)
    ours = True
    try:
        check_tag(tag)
    except ReleaseError:
        ours = False
    assert ours == (git.returncode == 0) == (tag in VALID_TAGS)


@pytest.mark.parametrize("tag", ["-v1", "@"])
def test_tags_git_tag_would_misread_are_refused(tag):
    """git check-ref-format accepts these, but `git tag -v1` is an option and `@` means HEAD."""
    with pytest.raises(ReleaseError, match="not a valid git tag name"):
        check_tag(tag)


# ── fetch-release ────────────────────────────────────────────────────────────


def fetch(fake: FakeGitHub, out: Path, **kwargs: Any) -> Path:
    return fetch_release(repo=FAKE_REPO, out=out, api_url=fake.api_url, sleep=[].append, **kwargs)


@pytest.mark.parametrize("redirect", [False, True], ids=["served", "redirected"])
def test_fetch_release_downloads_and_verifies(release_files, tmp_path, redirect):
    fake = FakeGitHub(redirect_downloads=redirect).start()
    try:
        publish(fake, release_files)
        out = tmp_path / "fetched" / "deadzone.db"
        assert fetch(fake, out) == out  # latest, anonymously: a public repository
        assert out.read_bytes() == release_files.db.read_bytes()
        assert fetch(fake, out, tag=TAG, token=FAKE_TOKEN) == out
        assert fake.count("GET", r"^/download/") == (4 if redirect else 0)
    finally:
        fake.stop()


def test_fetch_release_rejects_a_mismatch_and_keeps_the_old_file(fake_github, release_files, tmp_path):
    publish(fake_github, release_files)
    fake_github.corrupt.add("deadzone.db")
    out = tmp_path / "deadzone.db"
    out.write_bytes(b"the previous db")

    with pytest.raises(ReleaseError, match=r"hashes to .* but its deadzone.db.sha256 says .* left untouched"):
        fetch(fake_github, out, tag=TAG)

    assert out.read_bytes() == b"the previous db"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deadzone.db", "out", "registry.yaml"]


def test_fetch_release_rejects_a_release_whose_checksum_disagrees_with_the_digest(fake_github, release_files, tmp_path):
    publish(fake_github, release_files)
    checksum = next(a for a in fake_github.assets.values() if a["name"] == "deadzone.db.sha256")
    checksum["_data"] = f"{'1' * 64}  deadzone.db\n".encode()

    with pytest.raises(ReleaseError, match="is inconsistent"):
        fetch(fake_github, tmp_path / "x.db")
    assert not (tmp_path / "x.db").exists()


def test_fetch_release_names_what_is_missing(fake_github, release_files, tmp_path):
    with pytest.raises(ReleaseError, match="acme/deadzone has no published release"):
        fetch(fake_github, tmp_path / "x.db")
    publish(fake_github, release_files)
    with pytest.raises(ReleaseError, match="has no release v9"):
        fetch(fake_github, tmp_path / "x.db", tag="v9")
    sha = next(a for a in fake_github.assets.values() if a["name"] == "deadzone.db.sha256")
    del fake_github.assets[sha["id"]]
    with pytest.raises(ReleaseError, match="has no deadzone.db.sha256 asset"):
        fetch(fake_github, tmp_path / "x.db")


def test_cli_fetch_release(fake_github, release_files, tmp_path, monkeypatch, capsys):
    publish(fake_github, release_files)
    monkeypatch.setenv("GITHUB_API_URL", fake_github.api_url)
    out = tmp_path / "cli.db"

    assert main(["fetch-release", "--repo", FAKE_REPO, "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(out)
    assert out.read_bytes() == release_files.db.read_bytes()

    fake_github.corrupt.add("deadzone.db")
    assert main(["fetch-release", "--repo", FAKE_REPO, "--out", str(out)]) == 1
    assert "left untouched" in capsys.readouterr().err


def test_a_db_of_another_name_is_released_with_its_own_manifest(fake_github, release_files):
    nightly = ReleaseFiles(release_files.db.with_name("nightly.db"), release_files.registry).build(content="nightly")
    assert nightly.manifest.name == "nightly.db.manifest.json"
    assert release_files.manifest.read_bytes() != nightly.manifest.read_bytes()  # both still beside each other
    publish(fake_github, nightly)
    released = fake_github.released(TAG)
    assert sorted(released) == NAMES  # the asset names do not follow the local name
    assert released["manifest.json"] == nightly.manifest.read_bytes()
    assert released["deadzone.db"] == nightly.db.read_bytes()
