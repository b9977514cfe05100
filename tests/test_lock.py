"""The sources lock: conditional refreshes, keys that follow upstream bytes and commits, scrape
verification, first-use locking, `outdated` — against a local upstream speaking GitHub's wire format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deadzone_build.cli import main
from deadzone_build.errors import RegistryError, ScrapeError
from deadzone_build.freshness.outdated import newest_tag, tag_version
from deadzone_build.pipeline.scrape import scrape_slot
from deadzone_build.registry.keys import slot_key
from deadzone_build.registry.load import load_registry
from deadzone_build.registry.lock import lock_path_for, read_lock

REPO = Path(__file__).resolve().parent.parent

REGISTRY = """\
libraries:
  - lib_id: /acme/widgets
    description: Widgets for every occasion.
    kind: github-md
    versions:
      "1.0": { ref: v1.0.0 }
      "2.0": { ref: v2.0.0 }
    urls:
      - https://raw.githubusercontent.com/acme/widgets/{ref}/README.md
      - https://raw.githubusercontent.com/acme/widgets/{ref}/docs/guide.md
  - lib_id: /acme/gadgets
    description: Gadgets, unpinned.
    kind: github-md
    urls:
      - https://raw.githubusercontent.com/acme/gadgets/main/README.md
"""

SHA_A, SHA_B, SHA_C, SHA_D = "a" * 40, "b" * 40, "c" * 40, "d" * 40


def _doc(title: str, words: str) -> bytes:
    return f"# {title}\n\n{words}\n\n## Usage\n\nCall `widget.make()` to build one.\n".encode()


@pytest.fixture
def project(tmp_path: Path, upstream) -> Path:
    for ref in ("v1.0.0", "v2.0.0"):
        upstream.files[f"acme/widgets/{ref}/README.md"] = _doc(f"Widgets {ref}", "Widgets are small parts.")
        upstream.files[f"acme/widgets/{ref}/docs/guide.md"] = _doc("Guide", f"How to use widgets {ref}.")
    upstream.files["acme/gadgets/main/README.md"] = _doc("Gadgets", "Gadgets are bigger parts.")
    upstream.refs.update({("acme", "widgets", "v1.0.0"): SHA_A, ("acme", "widgets", "v2.0.0"): SHA_B,
                          ("acme", "gadgets", "main"): SHA_C})
    (tmp_path / "libraries_sources.yaml").write_text(REGISTRY)
    return tmp_path


def _lock(project: Path, *extra: str) -> int:
    return main(["lock", "--registry", str(project / "libraries_sources.yaml"), *extra])


def _keys(project: Path) -> dict[str, str]:
    return {s.slug: slot_key(s) for s in load_registry(project / "libraries_sources.yaml")}


def test_lock_records_commits_hashes_and_validators(project: Path, upstream, capsys) -> None:
    unlocked = _keys(project)
    assert _lock(project) == 0
    entries = read_lock(project / "libraries_sources.lock")
    assert sorted(entries) == ["acme_gadgets", "acme_widgets_1.0", "acme_widgets_2.0"]
    widgets = entries["acme_widgets_1.0"]
    assert widgets.commits == {"acme/widgets@v1.0.0": SHA_A}
    readme = widgets.urls["https://raw.githubusercontent.com/acme/widgets/v1.0.0/README.md"]
    body = upstream.files["acme/widgets/v1.0.0/README.md"]
    assert readme.size == len(body) and readme.etag and readme.last_modified
    assert entries["acme_gadgets"].commits == {"acme/gadgets@main": SHA_C}  # a branch: resolved all the same
    locked = _keys(project)
    assert all(locked[s] != unlocked[s] for s in locked)  # the lock is a key input
    text = (project / "libraries_sources.lock").read_text()
    assert text.endswith("\n") and json.loads(text)["format"] == 1
    assert "3 of 3 slots changed" in capsys.readouterr().out


def test_relocking_unchanged_upstream_costs_no_body_and_changes_no_key(project: Path, upstream, capsys) -> None:
    assert _lock(project) == 0
    before, text = _keys(project), (project / "libraries_sources.lock").read_text()
    upstream.reset_counts()
    capsys.readouterr()
    assert _lock(project, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert upstream.bodies_sent == 0 and upstream.not_modified == 5  # five distinct URLs, all 304
    assert report["requests"] == {"304": 5, "commit": 3} and report["changes"] == []
    assert _keys(project) == before and (project / "libraries_sources.lock").read_text() == text
    assert _lock(project, "--check") == 0


def test_one_changed_document_changes_exactly_its_slot(project: Path, upstream, capsys) -> None:
    assert _lock(project) == 0
    before = _keys(project)
    upstream.files["acme/widgets/v2.0.0/docs/guide.md"] += b"\nA new paragraph.\n"
    capsys.readouterr()
    assert _lock(project, "--check") == 1  # stale, and --check writes nothing
    out = capsys.readouterr().out
    assert "acme_widgets_2.0: https://raw.githubusercontent.com/acme/widgets/v2.0.0/docs/guide.md:" in out
    assert _keys(project) == before
    assert _lock(project) == 0
    after = _keys(project)
    assert [s for s in after if after[s] != before[s]] == ["acme_widgets_2.0"]


def test_a_moved_tag_changes_only_its_slot(project: Path, upstream, capsys) -> None:
    assert _lock(project) == 0
    before = _keys(project)
    upstream.refs[("acme", "widgets", "v1.0.0")] = SHA_D  # re-pushed tag: same name, new commit, same files
    assert _lock(project) == 0
    assert f"acme_widgets_1.0: acme/widgets@v1.0.0: {SHA_A[:12]} -> {SHA_D[:12]}" in capsys.readouterr().out
    after = _keys(project)
    assert [s for s in after if after[s] != before[s]] == ["acme_widgets_1.0"]


def test_an_outage_while_locking_keeps_the_locked_values(project: Path, upstream, capsys) -> None:
    assert _lock(project) == 0
    before, text = _keys(project), (project / "libraries_sources.lock").read_text()
    upstream.refs.clear()  # the refs API fails (422)
    del upstream.files["acme/gadgets/main/README.md"]  # and a document is gone (404)
    assert _lock(project, "--missing") == 0  # --missing: locked slots are not asked at all
    assert _lock(project, "--check") == 1  # freshness unknown is not "fresh"
    assert (project / "libraries_sources.lock").read_text() == text
    assert _lock(project) == 0
    out = capsys.readouterr().out
    assert "could not resolve the ref to a commit" in out and "locked commit, if any, is kept" in out
    after = _keys(project)
    assert [s for s in after if after[s] != before[s]] == ["acme_gadgets"]  # the 404 is real news


def test_edited_entry_is_not_trusted_and_missing_locks_only_it(project: Path, upstream) -> None:
    assert _lock(project) == 0
    registry = project / "libraries_sources.yaml"
    registry.write_text(REGISTRY.replace('"2.0": { ref: v2.0.0 }', '"2.0": { ref: v2.0.1 }'))
    upstream.files["acme/widgets/v2.0.1/README.md"] = _doc("Widgets", "2.0.1")
    upstream.files["acme/widgets/v2.0.1/docs/guide.md"] = _doc("Guide", "2.0.1")
    upstream.refs[("acme", "widgets", "v2.0.1")] = SHA_D
    slot = {s.slug: s for s in load_registry(registry)}["acme_widgets_2.0"]
    assert slot.lock == ""  # the old entry names v2.0.0: ignored
    upstream.reset_counts()
    assert _lock(project, "--missing") == 0
    assert upstream.bodies_sent == 2  # only the edited slot's two URLs
    assert read_lock(project / "libraries_sources.lock")["acme_widgets_2.0"].ref == "v2.0.1"


def test_bad_lock_file_is_a_clear_error(project: Path) -> None:
    (project / "libraries_sources.lock").write_text('{"format": 1, "slots": {"x": {"urls": 3}}}')
    with pytest.raises(RegistryError, match=r"libraries_sources.lock: not a valid lock file .*deadzone-build lock"):
        load_registry(project / "libraries_sources.yaml")
    (project / "libraries_sources.lock").write_text("not json")
    with pytest.raises(RegistryError, match="not a valid lock file"):
        load_registry(project / "libraries_sources.yaml")


# ── scraping against the lock ────────────────────────────────────────────────


def test_scrape_locks_on_first_use_and_then_refuses_moved_upstream(project: Path, upstream, embedder) -> None:
    registry = project / "libraries_sources.yaml"
    slot = {s.slug: s for s in load_registry(registry)}["acme_gadgets"]
    assert slot.lock == ""
    lock_path = lock_path_for(registry)
    outcome = scrape_slot(slot, artifacts_dir=project / "artifacts", cache_dir=project / "cache",
                          embedder=embedder, lock_path=lock_path)
    assert outcome.status == "scraped"
    reloaded = {s.slug: s for s in load_registry(registry)}["acme_gadgets"]
    assert reloaded.lock  # recorded from the scrape's own fetch: no second download
    assert upstream.bodies_sent == 1
    again = scrape_slot(reloaded, artifacts_dir=project / "artifacts", cache_dir=project / "cache",
                        embedder=embedder, lock_path=lock_path)
    assert again.status == "up-to-date"  # the key the artifact was written under is the key the lock gives

    upstream.files["acme/gadgets/main/README.md"] = _doc("Gadgets", "Changed upstream.")
    with pytest.raises(ScrapeError, match=r"upstream changed since it was locked: .*gadgets/main/README.md: "
                                          r"locked [0-9a-f]{12}, fetched [0-9a-f]{12}.*deadzone-build lock --lib /acme/gadgets"):
        scrape_slot(reloaded, artifacts_dir=project / "artifacts", cache_dir=project / "cache", embedder=embedder,
                    lock_path=lock_path, force=True)
    assert again.path.exists()  # the previous artifact is untouched


def test_doit_rebuilds_exactly_the_slot_whose_upstream_changed(project: Path, upstream, embedder_cache) -> None:
    env = dict(os.environ, DEADZONE_REGISTRY=str(project / "libraries_sources.yaml"),
               DEADZONE_CACHE=str(embedder_cache), DEADZONE_ARTIFACTS=str(project / "artifacts"),
               DEADZONE_DB=str(project / "deadzone.db"), PYTHONPATH=str(REPO))

    def doit(*args: str) -> set[str]:
        proc = subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(project), *args],
                              cwd=project, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return {line.split()[1] for line in proc.stdout.splitlines() if line.startswith(".  scrape:")}

    assert len(doit()) == 3  # unlocked: every slot is locked on first use, and the db builds from those keys
    assert doit() == set()
    assert _lock(project) == 0  # commits resolved: keys change once, everything rebuilds (vectors are cached)
    assert len(doit()) == 3
    assert doit() == set()
    upstream.files["acme/widgets/v1.0.0/README.md"] = _doc("Widgets", "Rewritten upstream.")
    assert _lock(project) == 0
    assert doit() == {"scrape:acme_widgets_1.0"}
    manifest = json.loads((project / "manifest.json").read_text())
    entry = next(s for s in manifest["slots"] if s["slug"] == "acme_widgets_1.0")
    assert entry["lock"]["commits"] == {"acme/widgets@v1.0.0": SHA_A}


# ── outdated ─────────────────────────────────────────────────────────────────


def test_tag_versions_order_like_semver() -> None:
    assert tag_version("v1.10.0") > tag_version("v1.9.1")
    assert tag_version("v2.0.0-rc.1") < tag_version("v2.0.0") and tag_version("v2.0.0-rc.1").is_prerelease
    assert tag_version("nightly") is None and tag_version("go1.21") is None and tag_version("api/v2.0.0") is None
    assert newest_tag(["v1.9.1", "v1.10.0", "v1.11.0-rc.1", "nightly"]) == "v1.10.0"
    assert newest_tag(["v1.9.1", "v1.10.0", "v1.11.0-rc.1"], include_pre=True) == "v1.11.0-rc.1"


def test_outdated_lists_newer_tags_across_pages(project: Path, upstream, capsys) -> None:
    filler = [(f"v0.{i}.0", f"{i:040x}") for i in range(150)]  # 150 old tags: the newest is on page 2
    upstream.tags["acme/widgets"] = filler + [("v2.1.0", SHA_C), ("v3.0.0-beta.1", SHA_D), ("nightly", SHA_A),
                                              ("v2.0.0", SHA_B), ("tools/v9.0.0", SHA_A)]
    upstream.dates.update({SHA_B: "2026-01-10T00:00:00Z", SHA_C: "2026-03-11T00:00:00Z",
                           SHA_D: "2026-04-01T00:00:00Z"})
    args = ["outdated", "--registry", str(project / "libraries_sources.yaml")]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"lib_id": "/acme/widgets", "repo": "acme/widgets", "pinned": "v2.0.0", "latest": "v2.1.0",
                     "pinned_date": "2026-01-10T00:00:00Z", "latest_date": "2026-03-11T00:00:00Z",
                     "behind_days": 60}]  # gadgets (a branch) is not tag-pinned: not listed
    assert main([*args, "--pre"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["LIB_ID", "PINNED", "LATEST", "LATEST", "DATE", "BEHIND"]
    assert "/acme/widgets  v2.0.0  v3.0.0-beta.1  2026-04-01" in out and "81 days" in out


def test_doit_consolidates_under_the_keys_first_use_locking_gave(project: Path, upstream, embedder,
                                                                 embedder_cache) -> None:
    """A db built from unlocked slots, artifacts gone: this run's scrapes lock the slots, so the db
    is stale under the new keys even though it matched the keys the run started with."""
    from deadzone_build.db.consolidate import consolidate
    from deadzone_build.registry.keys import registry_digest

    registry = project / "libraries_sources.yaml"
    slots = load_registry(registry)
    for slot in slots:  # no lock path: the artifacts and the db carry the unlocked keys
        scrape_slot(slot, artifacts_dir=project / "artifacts", cache_dir=embedder_cache, embedder=embedder)
    consolidate(slots=slots, artifacts_dir=project / "artifacts", db_path=project / "deadzone.db",
                registry_digest=registry_digest(slots))
    for path in (project / "artifacts").iterdir():
        for f in path.iterdir():
            f.unlink()
        path.rmdir()
    env = dict(os.environ, DEADZONE_REGISTRY=str(registry), DEADZONE_CACHE=str(embedder_cache),
               DEADZONE_ARTIFACTS=str(project / "artifacts"), DEADZONE_DB=str(project / "deadzone.db"),
               PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(project)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ".  consolidate" in proc.stdout  # not skipped as "up to date" under the keys of the run's start
    manifest = json.loads((project / "manifest.json").read_text())
    assert sorted(s["key"] for s in manifest["slots"]) == sorted(slot_key(s) for s in load_registry(registry))
