"""The CI plan: sources, counts, shards of at most 256, and the step outputs the workflow wires."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from deadzone_build.db import schema as dbschema
from deadzone_build.cli import main
from deadzone_build.errors import PlanError
from deadzone_build.registry.keys import slot_key
from deadzone_build.embed.pin import pin_id
from deadzone_build.ci.plan import (cached_keys_from_file, cached_keys_from_github, github_outputs, keys_in_db,
                                 make_plan, reusable_keys)
from deadzone_build.registry.load import Slot, load_registry

from conftest import MIRROR

REGISTRY = MIRROR / "registry.yaml"


def synthetic_slots(n: int) -> list[Slot]:
    return [Slot(lib_id=f"/org/lib{i:03d}", version="1.0", kind="github-md", ref="v1.0",
                 urls=(f"https://raw.githubusercontent.com/org/lib{i:03d}/v1.0/README.md",),
                 description=f"library {i}", slug=f"org_lib{i:03d}_1.0") for i in range(n)]


def write_db(path: Path, keys: list[str], *, pin: str | None = None) -> Path:
    """A db with what plan reads: `libraries` (lib_id, version, slug, key) and `meta` (schema, pin)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [(dbschema.META_SCHEMA_VERSION, dbschema.SCHEMA_VERSION),
                                                        (dbschema.META_PIN_ID, pin or pin_id())])
    conn.execute("CREATE TABLE libraries (lib_id TEXT, version TEXT, slug TEXT, key TEXT)")
    conn.executemany("INSERT INTO libraries VALUES ('/x', '', ?, ?)", [(f"s{i}", k) for i, k in enumerate(keys)])
    conn.commit()
    conn.close()
    return path


def read_outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


# ── make_plan ────────────────────────────────────────────────────────────────


def test_300_slots_make_shards_of_at_most_256_in_registry_order():
    slots = synthetic_slots(300)
    plan = make_plan(slots, base_db_keys=set(), cached_keys=set())
    assert [len(s) for s in plan.shards] == [256, 44]
    assert [e["slug"] for shard in plan.shards for e in shard] == [s.slug for s in slots]
    assert plan.counts == {"total": 300, "reused": 0, "cached": 0, "to_scrape": 300}
    entry = plan.shards[1][0]
    assert entry == {"slug": "org_lib256_1.0", "key": slot_key(slots[256]), "lib_id": "/org/lib256", "version": "1.0"}


def test_release_keys_need_no_job_and_cached_keys_do():
    slots = synthetic_slots(300)
    released = {slot_key(s) for s in slots[:200]}
    cached = {slot_key(s) for s in slots[150:260]}  # overlap with the release: the release wins
    plan = make_plan(slots, base_db_keys=released, cached_keys=cached | {"deadzone-gone-0"})
    assert plan.counts == {"total": 300, "reused": 200, "cached": 60, "to_scrape": 40}
    assert [len(s) for s in plan.shards] == [100]
    sources = {row["slug"]: row["source"] for row in plan.slots}
    assert sources[slots[0].slug] == "release" and sources[slots[210].slug] == "cache"
    assert sources[slots[299].slug] == "scrape"
    assert [e["slug"] for e in plan.shards[0]] == [s.slug for s in slots[200:]]


def test_everything_released_plans_no_job():
    slots = synthetic_slots(5)
    plan = make_plan(slots, base_db_keys={slot_key(s) for s in slots}, cached_keys=set())
    assert plan.shards == [] and not plan.has_work
    outputs = github_outputs(plan, 4)
    assert outputs["has_work"] == "false" and outputs["reused"] == "5"
    assert [outputs[f"shard_{i}_size"] for i in range(4)] == ["0"] * 4
    assert json.loads(outputs["shard_0"]) == {"include": []}


@pytest.mark.parametrize("size", [0, 257])
def test_a_shard_size_beyond_the_matrix_limit_is_refused(size):
    with pytest.raises(PlanError, match="1..256"):
        make_plan(synthetic_slots(3), base_db_keys=set(), cached_keys=set(), shard_size=size)


def test_outputs_name_every_shard_and_refuse_more_shards_than_jobs():
    plan = make_plan(synthetic_slots(300), base_db_keys=set(), cached_keys=set(), shard_size=100)
    outputs = github_outputs(plan, 4)
    assert [outputs[f"shard_{i}_size"] for i in range(4)] == ["100", "100", "100", "0"]
    assert len(json.loads(outputs["shard_2"])["include"]) == 100
    assert "\n" not in "".join(outputs.values())  # one `name=value` line each in $GITHUB_OUTPUT
    with pytest.raises(PlanError, match="300 slots need a job but the workflow runs 2 shard jobs"):
        github_outputs(plan, 2)


# ── where keys come from ─────────────────────────────────────────────────────


def test_keys_in_db_reads_the_libraries_table(tmp_path):
    db = write_db(tmp_path / "deadzone.db", ["deadzone-a-1", "deadzone-b-2"])
    assert keys_in_db(db) == {"deadzone-a-1", "deadzone-b-2"}


def test_keys_in_db_refuses_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(PlanError, match="base db not found.*fetch-release"):
        keys_in_db(tmp_path / "nope.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(PlanError, match="not a readable deadzone.db"):
        keys_in_db(junk)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(PlanError, match="not a readable deadzone.db"):
        keys_in_db(empty)


def test_a_db_built_with_another_embedder_pin_offers_nothing_to_reuse(tmp_path, capsys):
    slots = load_registry(REGISTRY)
    db = write_db(tmp_path / "old.db", [slot_key(s) for s in slots], pin="0" * 64)
    logged: list[str] = []
    assert keys_in_db(db) and reusable_keys(db, log=logged.append) == set()
    assert "embedder pin 0000" in logged[0] and "nothing in it is reused" in logged[0]
    gh_output = tmp_path / "github_output"
    assert main(["plan", "--registry", str(REGISTRY), "--base-db", str(db), "--github-output", str(gh_output)]) == 0
    outputs = read_outputs(gh_output)
    assert (outputs["base_db"], outputs["to_scrape"]) == ("false", "20")  # consolidate will not `pull` it


def test_cached_keys_file_formats(tmp_path):
    lines = tmp_path / "keys.txt"
    lines.write_text("# from gh cache list\ndeadzone-a-1\n\n  deadzone-b-2  \n")
    assert cached_keys_from_file(lines) == {"deadzone-a-1", "deadzone-b-2"}
    listed = tmp_path / "keys.json"
    listed.write_text('["deadzone-a-1"]')
    assert cached_keys_from_file(listed) == {"deadzone-a-1"}
    api = tmp_path / "api.json"
    api.write_text(json.dumps({"total_count": 1, "actions_caches": [{"id": 1, "key": "deadzone-c-3"}]}))
    assert cached_keys_from_file(api) == {"deadzone-c-3"}


@pytest.mark.parametrize("text, message", [("[1, 2]", "non-empty key string"), ("{\"a\": 1}", "actions_caches"),
                                           ("[\"x\",", "invalid JSON")])
def test_cached_keys_file_errors(tmp_path, text, message):
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(PlanError, match=message):
        cached_keys_from_file(path)
    with pytest.raises(PlanError, match="cannot read"):
        cached_keys_from_file(tmp_path / "missing.txt")


def test_cached_keys_from_github(fake_github, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", fake_github.api_url)
    fake_github.add_caches(["deadzone-a-1", "deadzone-b-2", "pip-xyz"])
    assert cached_keys_from_github(fake_github.repo) == {"deadzone-a-1", "deadzone-b-2"}


def test_caches_of_other_refs_are_not_counted_when_refs_are_given(fake_github, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_API_URL", fake_github.api_url)
    monkeypatch.setenv("GITHUB_REPOSITORY", fake_github.repo)
    slots = load_registry(REGISTRY)
    fake_github.add_caches([slot_key(slots[0])])  # refs/heads/main: restorable from any branch
    fake_github.add_caches([slot_key(slots[1])], ref="refs/heads/feature")
    fake_github.add_caches([slot_key(slots[2])], ref="refs/pull/7/merge")  # a PR's: not restorable here
    assert cached_keys_from_github(fake_github.repo, refs={"refs/heads/feature", "refs/heads/main"}) == {
        slot_key(slots[0]), slot_key(slots[1])}
    args = ["plan", "--registry", str(REGISTRY), "--github", "--json"]
    assert main([*args, "--cache-ref", "refs/heads/main"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["cached"] == 1
    assert main(args) == 0  # no --cache-ref: every ref counts
    assert json.loads(capsys.readouterr().out)["counts"]["cached"] == 3
    assert main(["plan", "--registry", str(REGISTRY), "--cache-ref", "refs/heads/main"]) == 1
    assert "add --github" in capsys.readouterr().err


# ── the command ──────────────────────────────────────────────────────────────


def test_cli_plan_with_a_release_db_and_github_caches(tmp_path, fake_github, monkeypatch, capsys):
    slots = load_registry(REGISTRY)
    db = write_db(tmp_path / "base.db", [slot_key(s) for s in slots[:15]])
    fake_github.add_caches([slot_key(slots[15]), slot_key(slots[16])])
    monkeypatch.setenv("GITHUB_API_URL", fake_github.api_url)
    monkeypatch.setenv("GITHUB_REPOSITORY", fake_github.repo)
    out, gh_output = tmp_path / "plan" / "plan.json", tmp_path / "github_output"
    gh_output.write_text("earlier=kept\n")
    code = main(["plan", "--registry", str(REGISTRY), "--base-db", str(db), "--github", "--out", str(out),
                 "--github-output", str(gh_output)])
    assert code == 0
    assert "20 slots: 15 reused from the release db, 2 in actions/cache, 3 to scrape" in capsys.readouterr().out
    outputs = read_outputs(gh_output)
    assert outputs["earlier"] == "kept" and outputs["has_work"] == "true"
    assert (outputs["total"], outputs["reused"], outputs["cached"], outputs["to_scrape"]) == ("20", "15", "2", "3")
    assert [e["slug"] for e in json.loads(outputs["shard_0"])["include"]] == [s.slug for s in slots[15:]]
    assert outputs["shard_1_size"] == "0"
    plan = json.loads(out.read_text())
    assert [row["key"] for row in plan["slots"]] == [slot_key(s) for s in slots]


def test_cli_plan_json_for_one_library(capsys):
    assert main(["plan", "--registry", str(REGISTRY), "--lib", "/spf13/cobra", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [row["slug"] for row in plan["slots"]] == ["spf13_cobra_1.9", "spf13_cobra_1.10"]
    assert plan["counts"]["to_scrape"] == 2 and plan["has_work"] is True


def test_cli_plan_that_cannot_fit_writes_no_output(tmp_path, capsys):
    gh_output, out = tmp_path / "github_output", tmp_path / "plan.json"
    code = main(["plan", "--registry", str(REGISTRY), "--shard-size", "5", "--shard-jobs", "3",
                 "--out", str(out), "--github-output", str(gh_output)])
    assert code == 1
    assert "20 slots need a job but the workflow runs 3 shard jobs" in capsys.readouterr().err
    assert not gh_output.exists() and not out.exists()


def test_cli_plan_github_needs_a_repository(capsys):
    assert main(["plan", "--registry", str(REGISTRY), "--github"]) == 1
    assert "--repo OWNER/NAME" in capsys.readouterr().err


# ── the released db as the base (a fake GitHub Releases API) ───────────────


@pytest.fixture
def releases(monkeypatch):
    from fx_fakegithub import FAKE_REPO, FAKE_TOKEN, FakeGitHub

    fake = FakeGitHub().start()
    monkeypatch.setenv("GITHUB_API_URL", fake.api_url)
    monkeypatch.setenv("GITHUB_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("GITHUB_REPOSITORY", FAKE_REPO)
    yield fake
    fake.stop()


def publish(fake, tag: str, db: Path, *, sha256: str | None = None) -> None:
    import hashlib

    from deadzone_build.publish.github import GitHubClient

    GitHubClient(fake.repo, token=fake.token, api_url=fake.api_url).create_release(tag, draft=False)
    data = db.read_bytes()
    fake.add_asset(tag, "deadzone.db", data)
    fake.add_asset(tag, "deadzone.db.sha256", f"{sha256 or hashlib.sha256(data).hexdigest()}  deadzone.db\n".encode())


def test_cli_plan_fetches_the_latest_release_as_its_base(tmp_path, releases, capsys):
    slots = load_registry(REGISTRY)
    publish(releases, "v1", write_db(tmp_path / "released.db", [slot_key(s) for s in slots[2:]]))
    base, gh_output = tmp_path / "plan" / "deadzone.db", tmp_path / "github_output"
    assert main(["plan", "--registry", str(REGISTRY), "--fetch-base", "--base-db", str(base),
                 "--github-output", str(gh_output)]) == 0
    assert base.read_bytes() == (tmp_path / "released.db").read_bytes()
    outputs = read_outputs(gh_output)
    assert (outputs["base_db"], outputs["reused"], outputs["to_scrape"]) == ("true", "18", "2")
    assert "20 slots: 18 reused" in capsys.readouterr().out


def test_cli_plan_without_any_release_plans_every_slot(tmp_path, releases, capsys):
    base, gh_output = tmp_path / "plan" / "deadzone.db", tmp_path / "github_output"
    assert main(["plan", "--registry", str(REGISTRY), "--fetch-base", "--base-db", str(base),
                 "--github-output", str(gh_output)]) == 0
    outputs = read_outputs(gh_output)
    assert (outputs["base_db"], outputs["to_scrape"], outputs["has_work"]) == ("false", "20", "true")
    assert not base.exists()
    assert "has no published release: every slot is planned" in capsys.readouterr().err


def test_cli_plan_refuses_a_release_whose_db_does_not_verify(tmp_path, releases, capsys):
    publish(releases, "v1", write_db(tmp_path / "released.db", ["deadzone-x-1"]), sha256="0" * 64)
    base, gh_output = tmp_path / "plan" / "deadzone.db", tmp_path / "github_output"
    assert main(["plan", "--registry", str(REGISTRY), "--fetch-base", "--base-db", str(base),
                 "--github-output", str(gh_output)]) == 1
    assert "sha256" in capsys.readouterr().err
    assert not base.exists() and not gh_output.exists()  # an outage never turns into a full rebuild


def test_cli_plan_over_a_release_left_without_its_db_plans_every_slot(tmp_path, releases, capsys):
    """A publish killed between deleting the old assets and renaming the new ones leaves no deadzone.db."""
    from deadzone_build.publish.github import GitHubClient

    GitHubClient(releases.repo, token=releases.token, api_url=releases.api_url).create_release("v1", draft=False)
    releases.add_asset("v1", "deadzone.db.tmp-0123", b"staged by an interrupted run")
    base, gh_output = tmp_path / "plan" / "deadzone.db", tmp_path / "github_output"
    assert main(["plan", "--registry", str(REGISTRY), "--fetch-base", "--base-db", str(base),
                 "--github-output", str(gh_output)]) == 0
    outputs = read_outputs(gh_output)
    assert (outputs["base_db"], outputs["to_scrape"]) == ("false", "20")
    assert not base.exists()
    assert "has no deadzone.db asset" in capsys.readouterr().err


def test_fetch_base_needs_a_place_for_the_db(capsys):
    assert main(["plan", "--registry", str(REGISTRY), "--fetch-base"]) == 1
    assert "--fetch-base needs --base-db" in capsys.readouterr().err
