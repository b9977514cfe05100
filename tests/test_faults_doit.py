"""doit, as users and CI run it, against a hostile doc server: transient drops are scraped again,
scrapes run in registry order, Ctrl-C is one line, and `doit release --repo` is understood."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

REGISTRY = """\
libraries:
  - lib_id: /knights-analytics/hugot
    description: Go library for running HuggingFace transformer models on the ONNX Runtime.
    kind: github-md
    versions:
      "0.7": { ref: v0.7.2 }
      "0.6": { ref: v0.6.5 }
    urls:
      - https://raw.githubusercontent.com/knights-analytics/hugot/{ref}/README.md
      - https://raw.githubusercontent.com/knights-analytics/hugot/{ref}/contrib.md

  - lib_id: /go-chi/chi
    description: Lightweight, idiomatic and composable router for building Go HTTP services.
    kind: github-md
    ref: v5.2.5
    urls:
      - https://raw.githubusercontent.com/go-chi/chi/{ref}/README.md
"""
ORDER = ["scrape:knights-analytics_hugot_0.7", "scrape:knights-analytics_hugot_0.6", "scrape:go-chi_chi"]
FLAKY = "https://raw.githubusercontent.com/knights-analytics/hugot/v0.6.5/contrib.md"


def doit(tmp_path: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(tmp_path), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def ran(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[1] for line in proc.stdout.splitlines() if line.startswith(".  scrape:")]


@pytest.fixture
def env(tmp_path: Path, docs_server, embedder_cache: Path) -> dict[str, str]:
    (tmp_path / "libraries_sources.yaml").write_text(REGISTRY)
    cache = tmp_path / "cache"  # an empty vector cache, the session's model
    (cache / "embedder").mkdir(parents=True)
    for entry in (embedder_cache / "embedder").iterdir():
        (cache / "embedder" / entry.name).symlink_to(entry)
    values = dict(os.environ)
    values["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    values.update(DEADZONE_REGISTRY=str(tmp_path / "libraries_sources.yaml"), DEADZONE_CACHE=str(cache),
                  DEADZONE_ARTIFACTS=str(tmp_path / "artifacts"), DEADZONE_URL_REWRITE=docs_server.rewrite,
                  DEADZONE_DB=str(tmp_path / "deadzone.db"))
    return values


def test_a_transient_drop_is_scraped_again_by_the_next_doit_and_scrapes_run_in_registry_order(tmp_path, env,
                                                                                             docs_server):
    docs_server.faults.status(FLAKY, 503)
    first = doit(tmp_path, env, "scrape")
    assert ran(first) == ORDER  # registry order, every run
    assert "INCOMPLETE: 1 URL failed" in first.stdout and "retry later" in first.stdout
    assert "(fetched as http://127.0.0.1:" in first.stdout  # the drop line names the rewritten URL

    second = doit(tmp_path, env, "scrape")  # the server still fails: the slot is tried again, nothing else
    assert ran(second) == ["scrape:knights-analytics_hugot_0.6"]
    consolidated = doit(tmp_path, env, "--single", "consolidate")
    assert "INCOMPLETE: knights-analytics_hugot_0.6" in consolidated.stdout
    refused = doit(tmp_path, env, "--single", "release", "--tag", "v1.0.0", "--repo", "acme/docs", "--dry-run",
                   check=False)
    assert refused.returncode != 0 and "incomplete slot (knights-analytics_hugot_0.6)" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr and "--repo" not in refused.stderr.split("error:")[0]

    docs_server.faults.clear()
    third = doit(tmp_path, env, "-n", "2", "-P", "thread", "scrape")
    assert ran(third) == ["scrape:knights-analytics_hugot_0.6"] and "INCOMPLETE" not in third.stdout
    assert ran(doit(tmp_path, env, "scrape")) == []  # complete now: current
    released = doit(tmp_path, env, "--single", "consolidate")
    assert "INCOMPLETE" not in released.stdout
    dry = doit(tmp_path, env, "--single", "release", "--tag", "v1.0.0", "--repo", "acme/docs", "--dry-run")
    assert "would publish to acme/docs release v1.0.0" in dry.stdout


def test_two_threads_scraping_into_an_empty_vector_cache_never_trace_back(tmp_path, env):
    proc = doit(tmp_path, env, "-n", "2", "-P", "thread", "scrape")
    assert sorted(ran(proc)) == sorted(ORDER) and "Traceback" not in proc.stdout + proc.stderr
    assert "database is locked" not in proc.stdout + proc.stderr


def test_ctrl_c_in_doit_is_one_line_and_keeps_the_previous_state(tmp_path, env, docs_server):
    docs_server.faults.hang("https://raw.githubusercontent.com/go-chi/chi/v5.2.5/README.md", 5)
    proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(tmp_path),
                             "scrape:go-chi_chi"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while not docs_server.requests:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, -signal.SIGINT), out + err  # dies of SIGINT: the shell says 130
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    assert "doit: interrupted; nothing half-written was kept (the previous state is intact)." in err
    assert not (tmp_path / "artifacts" / "go-chi_chi").exists()
