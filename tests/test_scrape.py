"""`scrape_slot` and `doit scrape:<slug>` end to end: real docs from a local server, the real model."""

from __future__ import annotations

import dataclasses

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from deadzone_build.pipeline.artifact import artifact_is_current, read_artifact, verify_artifact
from deadzone_build.pipeline.chunk import Chunk, embedding_text
from deadzone_build.errors import ScrapeError
from deadzone_build.pipeline.explain import explain_slot
from deadzone_build.sources.fetch import FetchSettings, make_client
from deadzone_build.registry.keys import slot_key
from deadzone_build.embed.model_files import count_tokens
from deadzone_build.registry.load import load_registry, parse_registry, select_slots
from deadzone_build.pipeline.scrape import scrape_slot

SHIPPED = load_registry(REPO / "libraries_sources.yaml")
# read timeout: long enough that a stalled but answering server is not a hang on two busy cores,
# short enough that the hang fault (10 s) costs three timeouts, not three hangs
FAST = FetchSettings(connect_timeout=2.0, read_timeout=2.0, retries=2, backoff_base=0.01, max_retry_after=0.05)

SMALL_REGISTRY = """\
libraries:
  - lib_id: /knights-analytics/hugot
    description: Go library for running HuggingFace transformer models on the ONNX Runtime.
    kind: github-md
    versions:
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


def slot(lib_id: str, version: str | None = None):
    return select_slots(SHIPPED, lib_id, version)[0]


def run_scrape(the_slot, server, tmp_path: Path, embedder, embedder_cache: Path, **kw):
    client = make_client(FAST, rewrite=[("https://raw.githubusercontent.com/", server.base_url)], token="")
    try:
        return scrape_slot(the_slot, artifacts_dir=tmp_path / "artifacts", cache_dir=embedder_cache,
                           client=client, fetch_settings=FAST, embedder=embedder, **kw)
    finally:
        client.close()


def test_real_library_artifact_fits_the_window_and_reports_every_url(docs_server, tmp_path, embedder,
                                                                    embedder_cache) -> None:
    the_slot = slot("/direnv/direnv", "2.36")
    outcome = run_scrape(the_slot, docs_server, tmp_path, embedder, embedder_cache)
    assert outcome.status == "scraped" and outcome.docs_ok == 9 and outcome.docs_dropped == 0
    art = read_artifact(outcome.path, expected_key=slot_key(the_slot))
    chunks = [Chunk(c["url"], tuple(c["heading_path"]), c["ordinal"], c["text"], c["tokens"]) for c in art.chunks]
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert max(count_tokens([embedding_text(c) for c in chunks])) <= 256
    assert [c.tokens for c in chunks] == count_tokens([embedding_text(c) for c in chunks])
    assert art.meta["counts"]["truncated"] == outcome.truncated == 0 and "TRUNCATED" not in outcome.line()
    assert np.allclose(np.linalg.norm(art.vectors, axis=1), 1.0, atol=1e-4)
    # the report: every URL, in order, with the bytes and sha256 the server holds
    assert [r["url"] for r in art.meta["urls"]] == list(the_slot.urls)
    for report in art.meta["urls"]:
        assert report["status"] == "ok" and report["sha256"] == docs_server.sha256_of(report["url"])
        assert report["chunks"] == sum(1 for c in chunks if c.url == report["url"])
    # headings carried as paths, code fences intact
    assert any(c.heading_path[:1] == ("direnv -- unclutter your .profile",) or len(c.heading_path) >= 2
               for c in chunks)
    fenced = [c for c in chunks if "```" in c.text]
    assert fenced and all(sum(line.lstrip().startswith("```") for line in c.text.splitlines()) % 2 == 0
                          for c in fenced)
    assert outcome.seconds.keys() >= {"fetch", "chunk", "embed", "write"}


def test_faults_are_retried_or_dropped_and_reported(docs_server, tmp_path, embedder, embedder_cache) -> None:
    the_slot = slot("/direnv/direnv", "2.36")
    flaky, slow, cut, gone = (the_slot.urls[1], the_slot.urls[2], the_slot.urls[3], the_slot.urls[4])
    docs_server.faults.status(flaky, 500, times=2)
    docs_server.faults.hang(slow, seconds=10)
    docs_server.faults.truncate(cut)
    docs_server.faults.not_found(gone)
    outcome = run_scrape(the_slot, docs_server, tmp_path, embedder, embedder_cache)
    reports = {r["url"]: r for r in read_artifact(outcome.path).meta["urls"]}
    assert reports[flaky]["status"] == "ok"
    assert len(docs_server.requests_for(flaky)) == 3
    for url in (slow, cut, gone):
        assert reports[url]["status"] == "dropped" and reports[url]["reason"]
    assert reports[gone]["http_status"] == 404
    assert outcome.docs_dropped == 3 and outcome.docs_ok == 6


RST_REGISTRY = """\
libraries:
  - lib_id: /acme/rstdocs
    description: RST docs, one of which docutils cannot convert.
    kind: github-rst
    ref: v1.0.0
    urls:
      - https://raw.githubusercontent.com/acme/rstdocs/{ref}/docs/index.rst
      - https://raw.githubusercontent.com/acme/rstdocs/{ref}/docs/deep.rst
"""


def test_rst_that_docutils_cannot_convert_is_indexed_as_text_and_its_report_says_so(
        docs_server, tmp_path, embedder, embedder_cache) -> None:
    the_slot = parse_registry(RST_REGISTRY, "rst.yaml")[0]
    index, deep = the_slot.urls
    docs_server.faults.body(index, "Guide\n=====\n\nPlain *text* that converts.\n")
    docs_server.faults.body(deep, "".join("  " * i + f"level {i}\n\n" for i in range(400)))  # docutils recurses
    outcome = run_scrape(the_slot, docs_server, tmp_path, embedder, embedder_cache)
    reports = {r["url"]: r for r in read_artifact(outcome.path).meta["urls"]}
    assert reports[deep]["status"] == "ok" and reports[deep]["chunks"] > 0
    assert reports[deep]["warning"].startswith("docutils could not convert this RST (RecursionError")
    assert "warning" not in reports[index]  # only a fallback adds the field: meta.json is otherwise unchanged
    texts = [c["text"] for c in read_artifact(outcome.path).chunks if c["url"] == deep]
    assert any("level 399" in t for t in texts)


def test_every_url_404_fails_cleanly_and_keeps_the_previous_artifact(docs_server, tmp_path, embedder,
                                                                    embedder_cache) -> None:
    the_slot = slot("/knights-analytics/hugot", "0.7")
    first = run_scrape(the_slot, docs_server, tmp_path, embedder, embedder_cache)
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}
    for url in the_slot.urls:
        docs_server.faults.not_found(url)
    with pytest.raises(ScrapeError, match="2 of 2 URLs could not be fetched") as info:
        run_scrape(the_slot, docs_server, tmp_path, embedder, embedder_cache, force=True)
    assert "untouched" in str(info.value)
    assert {p.name: p.read_bytes() for p in first.path.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == [the_slot.slug]

    fresh = slot("/go-chi/chi")
    docs_server.faults.not_found(fresh.urls[0])
    with pytest.raises(ScrapeError):
        run_scrape(fresh, docs_server, tmp_path, embedder, embedder_cache)
    assert not (tmp_path / "artifacts" / fresh.slug).exists()


def test_one_section_edit_re_embeds_only_that_sections_chunks(docs_server, tmp_path, embedder,
                                                             embedder_cache) -> None:
    # unlocked: the shipped lock would (rightly) refuse the edited upstream bytes (test_lock.py)
    the_slot = dataclasses.replace(slot("/knights-analytics/hugot", "0.6"), lock="")
    first = run_scrape(the_slot, docs_server, tmp_path, embedder, embedder_cache)
    readme = the_slot.urls[0]
    text = docs_server.file_bytes(readme).decode()
    # edit one sentence of one section
    anchor = text.index("\n## ", len(text) // 2)
    edited = text[:anchor] + "\n\nThis sentence was added by an edit.\n" + text[anchor:]
    docs_server.faults.body(readme, edited)
    second = run_scrape(the_slot, docs_server, tmp_path, embedder, embedder_cache, force=True)
    assert second.chunks >= first.chunks
    assert 1 <= second.embedded <= 3, (second.embedded, second.chunks)


def test_explain_names_the_changed_input(docs_server, tmp_path, embedder, embedder_cache) -> None:
    the_slot = slot("/go-chi/chi")
    run_scrape(the_slot, docs_server, tmp_path, embedder, embedder_cache)
    assert explain_slot(the_slot, tmp_path / "artifacts").current
    edited = parse_registry(SMALL_REGISTRY.replace("Lightweight, idiomatic", "Small, idiomatic"))
    changed = [s for s in edited if s.lib_id == "/go-chi/chi"][0]
    result = explain_slot(changed, tmp_path / "artifacts")
    assert not result.current
    assert any(r.startswith("changed slot.description:") for r in result.reasons)


# ── deadzone-build scrape / explain ──────────────────────────────────────────

TWO_VERSIONS = """\
libraries:
  - lib_id: /knights-analytics/hugot
    description: Go library for running HuggingFace transformer models on the ONNX Runtime.
    kind: github-md
    versions:
      "0.1": { ref: v0.0.0-not-mirrored }
      "0.6": { ref: v0.6.5 }
    urls:
      - https://raw.githubusercontent.com/knights-analytics/hugot/{ref}/README.md
"""


def test_cli_scrape_builds_every_version_it_can_and_names_the_one_that_failed(
        docs_server, tmp_path, embedder_cache, monkeypatch, capsys) -> None:
    from deadzone_build.cli import main

    registry = tmp_path / "libraries_sources.yaml"
    registry.write_text(TWO_VERSIONS)
    monkeypatch.setenv("DEADZONE_URL_REWRITE", docs_server.rewrite)
    monkeypatch.setenv("DEADZONE_CACHE", str(embedder_cache))
    args = ["--registry", str(registry), "--artifacts", str(tmp_path / "artifacts"), "--lib", "/knights-analytics/hugot"]
    assert main(["scrape", *args]) == 1
    out, err = capsys.readouterr()
    assert "failed     /knights-analytics/hugot@0.1: no artifact written" in err and "HTTP 404" in err
    assert "1 of 2 slots failed (/knights-analytics/hugot@0.1)" in err
    assert "scraped    /knights-analytics/hugot@0.6:" in out  # the failure did not stop the next version
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir() if not p.name.startswith(".")) == [
        "knights-analytics_hugot_0.6"]

    assert main(["explain", "knights-analytics_hugot_0.6", *args[:4]]) == 0
    assert "knights-analytics/hugot@0.6: current" in capsys.readouterr().out
    registry.write_text(TWO_VERSIONS.replace("on the ONNX Runtime", "on ONNX Runtime"))
    assert main(["explain", "knights-analytics_hugot_0.6", *args[:4]]) == 0
    out = capsys.readouterr().out
    assert "NOT current" in out and "changed slot.description:" in out


# ── doit, as users and CI run it ─────────────────────────────────────────────


def doit(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(tmp_path), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def ran(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """doit prints `.  task` for a task it runs and `-- task` for one it skips."""
    return {line.split()[1] for line in proc.stdout.splitlines() if line.startswith(".  scrape:")}


@pytest.fixture
def doit_env(tmp_path: Path, docs_server, embedder_cache: Path) -> dict[str, str]:
    (tmp_path / "libraries_sources.yaml").write_text(SMALL_REGISTRY)
    env = dict(os.environ)
    env.update(DEADZONE_REGISTRY=str(tmp_path / "libraries_sources.yaml"), DEADZONE_CACHE=str(embedder_cache),
               DEADZONE_ARTIFACTS=str(tmp_path / "artifacts"), DEADZONE_URL_REWRITE=docs_server.rewrite)
    return env


def test_doit_skips_current_slots_without_its_dep_file_and_reruns_exactly_what_changed(tmp_path, doit_env) -> None:
    hugot, chi = "scrape:knights-analytics_hugot_0.6", "scrape:go-chi_chi"
    first = doit(tmp_path, doit_env, "-n", "2", "-P", "thread", "scrape")
    assert ran(first) == {hugot, chi}
    assert "scraped    /go-chi/chi: 1 docs" in first.stdout
    assert ran(doit(tmp_path, doit_env, "scrape")) == set()
    for dep in tmp_path.glob(".doit.db*"):
        dep.unlink()
    assert ran(doit(tmp_path, doit_env, "scrape")) == set()  # a fresh CI runner: the artifact is the record

    registry = tmp_path / "libraries_sources.yaml"
    registry.write_text(SMALL_REGISTRY.replace("Lightweight, idiomatic", "Small, idiomatic"))
    assert ran(doit(tmp_path, doit_env, "scrape")) == {chi}

    vectors = tmp_path / "artifacts" / "knights-analytics_hugot_0.6" / "vectors.f32"
    data = bytearray(vectors.read_bytes())
    data[100] ^= 0x01
    vectors.write_bytes(bytes(data))
    assert ran(doit(tmp_path, doit_env, "scrape")) == {hugot}
    verify_artifact(vectors.parent)


def test_doit_kill_mid_scrape_leaves_old_artifact_or_none(tmp_path, doit_env) -> None:
    doit(tmp_path, doit_env, "scrape:go-chi_chi")
    target = tmp_path / "artifacts" / "go-chi_chi"
    old = {p.name: p.read_bytes() for p in target.iterdir()}
    registry = tmp_path / "libraries_sources.yaml"
    for i, delay in enumerate((0.3, 1.0, 2.0, 3.0)):
        registry.write_text(SMALL_REGISTRY.replace("Lightweight", f"Lightweight {i}"))
        proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), "-d", str(tmp_path),
                                 "scrape:go-chi_chi"], cwd=tmp_path, env=doit_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        names = sorted(p.name for p in target.parent.iterdir() if not p.name.startswith("."))
        assert names in ([], ["go-chi_chi"])
        if target.exists():
            now = {p.name: p.read_bytes() for p in target.iterdir()}
            meta = verify_artifact(target)  # whole, whichever it is
            assert now == old or meta["key_inputs"]["slot"]["description"].startswith(f"Lightweight {i}")
            old = now
    # and the next run finishes the job
    doit(tmp_path, doit_env, "scrape:go-chi_chi")
    assert artifact_is_current(target, slot_key(load_registry(registry)[1]))
