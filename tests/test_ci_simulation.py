"""Consecutive runs of scrape-pack.yml, simulated with the commands its steps run.

Every job is a fresh directory; every command is the real CLI in a subprocess, as the YAML calls
it. What GitHub provides is stood in for by real local parts:

    actions/cache             a directory of entries by exact key (restore by key, save on a miss)
    upload/download-artifact  a directory per artifact name, copied into the downloading job
    GitHub Releases           fx_fakegithub's API on 127.0.0.1 (fetch-release and release)
    the docs                  fx_docserver's mirror on 127.0.0.1 through DEADZONE_URL_REWRITE
    GITHUB_OUTPUT             a file per step, parsed as GitHub does for one-line values

The listing of actions/cache is handed to `plan` as --cached-keys (`--github` against a fake
caches API is covered in test_plan.py: both read GITHUB_API_URL, and one fake serves releases).
The model cache (DEADZONE_CACHE) is shared between the simulated jobs: on GitHub each job builds
it again; sharing only saves time, the artifacts are the same bytes.

Run 1 scrapes every slot; run 2 plans zero; after one entry is edited, run 3 plans exactly that
slot and its db differs from run 1's only there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO

DODO = REPO / "dodo.py"
TAG = "v2026.1.1"

# Three small slots of the docs mirror (two versions of hugot, and chi), entries as in the registry.
REGISTRY = """\
libraries:
  - lib_id: /knights-analytics/hugot
    description: Go library for running HuggingFace transformer models on the ONNX Runtime, with embedding, classification, and token generation pipelines.
    kind: github-md
    versions:
      "0.6": { ref: v0.6.5 }
      "0.7": { ref: v0.7.2 }
    urls:
      - https://raw.githubusercontent.com/knights-analytics/hugot/{ref}/README.md
      - https://raw.githubusercontent.com/knights-analytics/hugot/{ref}/contrib.md
  - lib_id: /go-chi/chi
    description: Lightweight idiomatic HTTP router for Go, composable via middleware and built directly on net/http with no external runtime dependencies.
    kind: github-md
    ref: v5.2.5
    urls:
      - https://raw.githubusercontent.com/go-chi/chi/{ref}/README.md
"""
SLUGS = ["knights-analytics_hugot_0.6", "knights-analytics_hugot_0.7", "go-chi_chi"]


@dataclass
class Run:
    """What one simulated workflow run left behind."""

    outputs: dict[str, str]
    plan: dict
    jobs: list[dict] = field(default_factory=list)  # matrix entries that got a job
    statuses: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    consolidated: bool = False
    db: Path | None = None
    released: bool = False


class Workflow:
    """scrape-pack.yml, job by job, in `root`."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.cache = root / "actions-cache"  # key → artifacts/<slug> as it was saved
        self.cache.mkdir(parents=True)
        self.runs = 0
        self.scrape_logs: dict[str, str] = {}

    def sh(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=cwd, env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=900)

    def ok(self, cwd: Path, *args: str) -> str:
        done = self.sh(cwd, *args)
        assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def cli(self, cwd: Path, *args: str) -> str:
        return self.ok(cwd, sys.executable, "-m", "deadzone_build", *args)

    def doit(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.sh(cwd, sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(cwd), *args, env=env)

    def job_dir(self, name: str) -> Path:
        path = self.root / f"run{self.runs}" / name
        path.mkdir(parents=True)
        return path

    # ── the jobs ────────────────────────────────────────────────────────────

    def run(self, *, tag: str = "") -> Run:
        self.runs += 1
        run = self.plan_job()
        for index in range(4):  # scrape-0 .. scrape-3, each skipped when its shard is empty
            if run.outputs[f"shard_{index}_size"] != "0":
                for entry in json.loads(run.outputs[f"shard_{index}"])["include"]:
                    run.jobs.append(entry)
                    self.scrape_job(entry)
        self.consolidate_job(run)
        if tag and run.consolidated:  # release: needs consolidate (success), tag set, lib unset
            self.release_job(tag)
            run.released = True
        return run

    def plan_job(self) -> Run:
        job = self.job_dir("plan")
        keys = job / "cached-keys.txt"  # what GET .../actions/caches would list
        keys.write_text("".join(f"{p.name}\n" for p in sorted(self.cache.iterdir())))
        gh_output = job / "github_output"
        self.cli(job, "plan", "--fetch-base", "--base-db", "plan/deadzone.db", "--cached-keys", str(keys),
                 "--shard-jobs", "4", "--out", "plan/plan.json", "--github-output", str(gh_output))
        outputs = dict(line.split("=", 1) for line in gh_output.read_text().splitlines())
        self.upload(job / "plan", "plan")
        return Run(outputs=outputs, plan=json.loads((job / "plan" / "plan.json").read_text()))

    def scrape_job(self, entry: dict) -> None:
        job = self.job_dir(f"slot-{entry['slug']}")
        target = job / "out" / "artifacts" / entry["slug"]
        saved = self.cache / entry["key"]
        cache_hit = "true" if saved.is_dir() else ""
        if cache_hit:
            shutil.copytree(saved, target)
        scrape = self.doit(job, f"scrape:{entry['slug']}", env={"DEADZONE_ARTIFACTS": "out/artifacts"})  # job env
        outcome = "success" if scrape.returncode == 0 else "failure"
        self.scrape_logs[entry["slug"]] = scrape.stdout + scrape.stderr
        if outcome == "success" and not cache_hit:
            shutil.copytree(target, saved)
        self.cli(job, "summary", "--record", entry["slug"], "--outcome", outcome, "--cache-hit", cache_hit,
                 "--status-dir", "out/status")
        self.upload(job / "out", f"slot-{entry['slug']}")

    def consolidate_job(self, run: Run) -> None:
        job = self.job_dir("consolidate")
        self.download("plan", job / "plan")
        if run.outputs["base_db"] == "true":
            self.cli(job, "pull", "--db", "plan/deadzone.db")
        if run.outputs["has_work"] == "true":
            for uploaded in sorted(self.uploads().glob("slot-*")):
                shutil.copytree(uploaded, job, dirs_exist_ok=True)  # pattern: slot-*, merge-multiple
        consolidate = self.doit(job, "--single", "max_missing=0", "consolidate")
        run.consolidated = consolidate.returncode == 0
        run.log = consolidate.stdout + consolidate.stderr  # type: ignore[attr-defined]
        # Summary: `if: !cancelled()`, so also after a failed consolidate
        run.summary = self.cli(job, "summary", "--manifest", "manifest.json", "--plan", "plan/plan.json",
                               "--status-dir", "status")
        status_dir = job / "status"
        run.statuses = {p.stem: json.loads(p.read_text())["status"] for p in status_dir.glob("*.json")}
        if run.consolidated:
            run.db = job / "deadzone.db"
            self.upload_files([run.db, job / "deadzone.db.sha256", job / "manifest.json"], "deadzone-db")

    def release_job(self, tag: str) -> None:
        job = self.job_dir("release")
        self.download("deadzone-db", job)
        release = self.doit(job, "--single", "release", "--tag", tag)
        assert release.returncode == 0, release.stdout + release.stderr

    # ── upload-artifact / download-artifact ─────────────────────────────────

    def uploads(self) -> Path:
        return self.root / f"run{self.runs}" / "uploads"

    def upload(self, path: Path, name: str) -> None:
        shutil.copytree(path, self.uploads() / name)

    def upload_files(self, paths: list[Path], name: str) -> None:
        (self.uploads() / name).mkdir(parents=True)
        for path in paths:
            shutil.copy2(path, self.uploads() / name / path.name)

    def download(self, name: str, into: Path) -> None:
        shutil.copytree(self.uploads() / name, into, dirs_exist_ok=True)


@pytest.fixture
def workflow(tmp_path, docs_server, jobs_cache_dir):
    from fx_fakegithub import FAKE_REPO, FAKE_TOKEN, FakeGitHub

    github = FakeGitHub().start()
    registry = tmp_path / "libraries_sources.yaml"
    registry.write_text(REGISTRY)
    env = {**os.environ, "DEADZONE_REGISTRY": str(registry), "DEADZONE_CACHE": str(jobs_cache_dir),
           "DEADZONE_URL_REWRITE": docs_server.rewrite, "GITHUB_API_URL": github.api_url,
           "GITHUB_TOKEN": FAKE_TOKEN, "GITHUB_REPOSITORY": FAKE_REPO, "PYTHONPATH": str(REPO)}
    flow = Workflow(tmp_path / "ci", env)
    flow.registry, flow.github, flow.docs_server = registry, github, docs_server  # type: ignore[attr-defined]
    yield flow
    github.stop()


@pytest.fixture
def jobs_cache_dir(tmp_path):
    """The DEADZONE_CACHE of every simulated job: empty (the cache-only test needs no model)."""
    return tmp_path / "deadzone-cache"


@pytest.fixture
def model_in_jobs_cache(jobs_cache_dir, embedder_cache):
    """The session's built ONNX model (fx_model), copied in: built once, not once per job."""
    shutil.copytree(Path(embedder_cache) / "embedder", jobs_cache_dir / "embedder")


def library_rows(db: Path) -> dict[str, tuple]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT slug, lib_id, version, key, description, chunk_count, vector, meta_json "
                            "FROM libraries").fetchall()
        chunks = {slug: conn.execute(
            "SELECT url, heading_path, ordinal, text, tokens, vector FROM chunks WHERE library = "
            "(SELECT id FROM libraries WHERE slug = ?) ORDER BY ordinal", (slug,)).fetchall()
            for slug, *_ in rows}
    finally:
        conn.close()
    return {slug: (rest, chunks[slug]) for slug, *rest in rows}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_runs_then_one_edit(workflow, model_in_jobs_cache):
    # Run 1: no release yet, nothing cached: every slot gets a job and is scraped; then released.
    first = workflow.run(tag=TAG)
    assert first.consolidated and first.released, first.log
    assert first.outputs["base_db"] == "false"
    assert (first.outputs["total"], first.outputs["to_scrape"], first.outputs["has_work"]) == ("3", "3", "true")
    assert [e["slug"] for e in first.jobs] == SLUGS
    assert first.statuses == dict.fromkeys(SLUGS, "scraped")
    assert sorted(p.name for p in workflow.cache.iterdir()) == sorted(e["key"] for e in first.jobs)
    assert "**3 slots**: 3 scraped · 0 cached · 0 reused · 0 failed" in first.summary
    released = workflow.github.released(TAG)
    assert released["deadzone.db"] == first.db.read_bytes()

    # Run 2: the release holds every key: no job at all, the db comes back byte for byte.
    second = workflow.run()
    assert (second.outputs["base_db"], second.outputs["has_work"]) == ("true", "false")
    assert second.outputs["reused"] == "3" and second.jobs == []
    assert [second.outputs[f"shard_{i}_size"] for i in range(4)] == ["0"] * 4
    assert "3 reused" in second.summary
    assert sha256(second.db) == sha256(first.db)

    # Edit one entry: run 3 plans exactly that slot, and the db differs only there.
    text = workflow.registry.read_text()
    workflow.registry.write_text(text.replace("Lightweight idiomatic HTTP router", "Small idiomatic HTTP router"))
    third = workflow.run()
    assert (third.outputs["reused"], third.outputs["cached"], third.outputs["to_scrape"]) == ("2", "0", "1")
    assert [e["slug"] for e in third.jobs] == ["go-chi_chi"]
    assert third.statuses == {"go-chi_chi": "scraped"}
    assert "1 scraped · 0 cached · 2 reused · 0 failed" in third.summary
    before, after = library_rows(first.db), library_rows(third.db)
    assert set(before) == set(after) == set(SLUGS)
    assert [slug for slug in SLUGS if before[slug] != after[slug]] == ["go-chi_chi"]
    assert before["go-chi_chi"][1] == after["go-chi_chi"][1]  # same docs, same chunks: only the entry changed

    # Run 4: chi edited again but its docs are gone: the failed job is recorded, consolidate refuses
    # a db with a missing slot, the summary still says what happened, and nothing is released.
    workflow.docs_server.faults.not_found("https://raw.githubusercontent.com/go-chi/chi/v5.2.6/README.md")
    workflow.registry.write_text(workflow.registry.read_text().replace("ref: v5.2.5", "ref: v5.2.6"))
    fourth = workflow.run(tag="v2026.1.2")
    assert [e["slug"] for e in fourth.jobs] == ["go-chi_chi"] and fourth.statuses == {"go-chi_chi": "failed"}
    assert not fourth.consolidated and not fourth.released
    assert "go-chi" in fourth.log and "0 scraped · 0 cached · 2 reused · 1 failed" in fourth.summary
    assert "**failed**: its scrape job failed" in fourth.summary
    assert workflow.github.count("GET", "/releases/tags/v2026.1.2") == 0  # the release job never ran


def seed_cache(workflow: Workflow, slots) -> None:
    """Put synthetic artifacts under the slots' keys, as an earlier run's cache saves would."""
    from fx_artifacts import write_fake_artifact

    from deadzone_build.registry.keys import slot_key

    for slot in slots:
        path = write_fake_artifact(workflow.root / "seed", slot)
        shutil.move(path, workflow.cache / slot_key(slot))


def test_cached_slots_are_restored_not_scraped(workflow):
    """The actions/cache path, without the model: every job restores its artifact and doit has
    nothing to do; the release then makes them reused."""
    from deadzone_build.registry.load import load_registry

    seed_cache(workflow, load_registry(workflow.registry))
    first = workflow.run(tag=TAG)
    assert first.consolidated and first.released, first.log
    assert (first.outputs["cached"], first.outputs["to_scrape"], first.outputs["has_work"]) == ("3", "0", "true")
    assert [e["slug"] for e in first.jobs] == SLUGS
    assert first.statuses == dict.fromkeys(SLUGS, "cached"), workflow.scrape_logs
    assert "**3 slots**: 0 scraped · 3 cached · 0 reused · 0 failed" in first.summary

    second = workflow.run()
    assert second.jobs == [] and second.outputs["reused"] == "3"
    assert sha256(second.db) == sha256(first.db)

    text = workflow.registry.read_text()
    workflow.registry.write_text(text.replace("Lightweight idiomatic HTTP router", "Small idiomatic HTTP router"))
    chi = [s for s in load_registry(workflow.registry) if s.slug == "go-chi_chi"]
    seed_cache(workflow, chi)
    third = workflow.run()
    assert (third.outputs["reused"], third.outputs["cached"], third.outputs["to_scrape"]) == ("2", "1", "0")
    assert [e["slug"] for e in third.jobs] == ["go-chi_chi"] and third.statuses == {"go-chi_chi": "cached"}
    before, after = library_rows(first.db), library_rows(third.db)
    assert [slug for slug in SLUGS if before[slug] != after[slug]] == ["go-chi_chi"]
