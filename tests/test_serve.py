"""`deadzone-build serve`, driven by the MCP SDK's own client over stdio (a real subprocess).

The served db is built once per module from real fixture libraries (scraped from the local docs
mirror, embedded with the real model): two versions of hugot and of direnv (much of their text is
shared, so the version collapse is exercised), gin and chi.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from deadzone_build.db import schema as dbschema
from deadzone_build.db.consolidate import consolidate
from deadzone_build.registry.keys import registry_digest
from deadzone_build.serve.budget import count_pieces

REPO = Path(__file__).resolve().parent.parent
SERVED = {("/knights-analytics/hugot", "0.6"), ("/knights-analytics/hugot", "0.7"), ("/direnv/direnv", "2.36"),
          ("/direnv/direnv", "2.37"), ("/gin-gonic/gin", ""), ("/go-chi/chi", "")}


# ── fixtures ─────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def served_db(tmp_path_factory: pytest.TempPathFactory, embedder, embedder_cache) -> Path:
    from deadzone_build.pipeline.scrape import scrape_slot
    from deadzone_build.registry.load import load_registry
    from deadzone_build.sources.fetch import FetchSettings, make_client
    from fx_docserver import MIRROR_DIR, serve_mirror

    tmp = tmp_path_factory.mktemp("served")
    slots = [s for s in load_registry(REPO / "libraries_sources.yaml") if (s.lib_id, s.version) in SERVED]
    assert len(slots) == len(SERVED)
    settings = FetchSettings(retries=2, backoff_base=0.01)
    with serve_mirror(MIRROR_DIR) as docs, make_client(
            settings, rewrite=[("https://raw.githubusercontent.com/", docs.base_url)], token="") as client:
        for slot in slots:
            scrape_slot(slot, artifacts_dir=tmp / "artifacts", cache_dir=embedder_cache, client=client,
                        fetch_settings=settings, embedder=embedder)
    db = tmp / "deadzone.db"
    consolidate(slots=slots, artifacts_dir=tmp / "artifacts", db_path=db, registry_digest=registry_digest(slots))
    return db


def server_env(embedder_cache: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    """The subprocess's environment: the project on PYTHONPATH, the session's built model, a private data dir."""
    return {"PYTHONPATH": str(REPO), "DEADZONE_CACHE": str(embedder_cache), "DEADZONE_DATA_DIR": str(data_dir),
            **extra}


@contextlib.asynccontextmanager
async def connect(args: list[str], env: dict[str, str], cwd: Path, errlog: Any) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "deadzone_build", "serve", *args],
                                   env=env, cwd=str(cwd))
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def run_session(args: list[str], env: dict[str, str], cwd: Path, calls: list[tuple[str, dict[str, Any]]],
                errlog_path: Path) -> dict[str, Any]:
    """Start the server, initialize, list tools, make `calls` in order; everything the client saw."""

    async def main() -> dict[str, Any]:
        with errlog_path.open("w") as errlog:
            async with connect(args, env, cwd, errlog) as session:
                info = session.initialize_result if hasattr(session, "initialize_result") else None
                tools = (await session.list_tools()).tools
                results = [await session.call_tool(name, arguments) for name, arguments in calls]
                return {"info": info, "tools": tools, "results": results}

    return anyio.run(main)


def structured(result) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def error_text(result) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "direnv": ("search_docs", {"query": "load environment variables when entering a directory",
                               "lib_id": "/direnv/direnv"}),
    "hugot": ("search_docs", {"query": "run a feature extraction pipeline on the onnx runtime",
                              "lib_id": "/knights-analytics/hugot"}),
    "hugot_0.7": ("search_docs", {"query": "run a feature extraction pipeline on the onnx runtime",
                                  "lib_id": "/knights-analytics/hugot", "version": "0.7"}),
    "anywhere": ("search_docs", {"query": "router middleware for http handlers"}),
    "budget_1000": ("search_docs", {"query": "router middleware for http handlers", "tokens": 1000}),
    "budget_low": ("search_docs", {"query": "router middleware for http handlers", "tokens": 200}),
    "version_alone": ("search_docs", {"query": "hooks", "version": "2.36"}),
    "unknown_lib": ("search_docs", {"query": "hooks", "lib_id": "/direnv/direnvv"}),
    "unknown_version": ("search_docs", {"query": "hooks", "lib_id": "/direnv/direnv", "version": "9.9"}),
    "empty_query": ("search_docs", {"query": "   "}),
    "libs_named": ("search_libraries", {"name": "direnv"}),
    "libs_described": ("search_libraries", {"name": "web framework with JSON binding", "limit": 2}),
    "libs_top": ("search_libraries", {}),
    "libs_capped": ("search_libraries", {"name": "", "limit": 500}),
}


@pytest.fixture(scope="module")
def session_results(served_db: Path, embedder_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One server process, every call of CALLS (the tests below only read what it answered)."""
    tmp = tmp_path_factory.mktemp("session")
    seen = run_session(["--db", str(served_db)], server_env(embedder_cache, tmp / "data"), tmp,
                       list(CALLS.values()), tmp / "stderr.txt")
    seen["by_name"] = dict(zip(CALLS, seen["results"]))
    seen["stderr"] = (tmp / "stderr.txt").read_text()
    return seen


def db_rows(db: Path, sql: str, *params: Any) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def item_schema(schema: dict[str, Any], field: str) -> dict[str, Any]:
    """The schema of one item of the array `field`, its $ref into $defs followed."""
    items = schema["properties"][field]["items"]
    return schema["$defs"][items["$ref"].rsplit("/", 1)[1]] if "$ref" in items else items


# ── the handshake and the tool list ──────────────────────────────────────────


def test_lists_deadzones_two_tools_with_their_arguments(session_results) -> None:
    tools = {t.name: t for t in session_results["tools"]}
    assert sorted(tools) == ["search_docs", "search_libraries"]
    docs = tools["search_docs"].input_schema
    assert docs["required"] == ["query"]
    assert {k: v["type"] for k, v in docs["properties"].items()} == {
        "query": "string", "lib_id": "string", "version": "string", "tokens": "integer"}
    libs = tools["search_libraries"].input_schema
    assert {k: v["type"] for k, v in libs["properties"].items()} == {"name": "string", "limit": "integer"}
    assert not libs.get("required")
    assert "search_libraries" in tools["search_docs"].description  # tells the agent to resolve first
    snippet = item_schema(tools["search_docs"].output_schema, "snippets")
    assert {"lib_id", "version", "title", "content", "url", "heading_path", "versions"} <= set(snippet["properties"])
    library = item_schema(tools["search_libraries"].output_schema, "libraries")
    assert {"lib_id", "version", "doc_count", "match_score", "description", "chunk_count"} <= set(library["properties"])


# ── search_docs ──────────────────────────────────────────────────────────────


def test_search_docs_in_one_library(session_results, served_db) -> None:
    result = session_results["by_name"]["direnv"]
    snippets = structured(result)["snippets"]
    assert 1 <= len(snippets) <= 10
    for s in snippets:
        assert s["lib_id"] == "/direnv/direnv"
        assert s["title"] == " > ".join(s["heading_path"]) and s["title"]
        assert s["url"].startswith("https://raw.githubusercontent.com/direnv/direnv/")
        stored = db_rows(served_db, "SELECT text FROM chunks WHERE lib_id = ? AND version = ? AND url = ?",
                         s["lib_id"], s["version"], s["url"])
        assert any(t.strip() in s["content"] for (t,) in stored)  # a whole chunk: the budget is not reached
        assert not s["truncated"]
    text = result.content[0].text  # the readable rendering carries the same snippets
    assert snippets[0]["title"] in text and snippets[0]["content"][:80] in text


def test_search_docs_shows_shared_text_once_with_its_versions(session_results, served_db) -> None:
    snippets = structured(session_results["by_name"]["hugot"])["snippets"]
    assert len({s["content"] for s in snippets}) == len(snippets)  # no text twice
    both = [s for s in snippets if s["versions"] == ["0.7", "0.6"]]  # newest first
    assert both, [s["versions"] for s in snippets]
    for s in both:  # the premise, from the db itself: that chunk is stored under both versions
        held = {v for (v, t) in db_rows(served_db, "SELECT version, text FROM chunks WHERE lib_id = ?",
                                        "/knights-analytics/hugot") if t.strip() and t.strip() in s["content"]}
        assert held == {"0.6", "0.7"} and s["version"] == "0.7" and "/v0.7." in s["url"]
    one_version = structured(session_results["by_name"]["hugot_0.7"])["snippets"]
    assert one_version and all(s["version"] == "0.7" and s["versions"] == ["0.7"] for s in one_version)


def test_search_docs_across_libraries_fills_ten_snippets_within_the_default_budget(session_results) -> None:
    snippets = structured(session_results["by_name"]["anywhere"])["snippets"]
    assert len(snippets) == 10 and not any(s["truncated"] for s in snippets)
    assert sum(count_pieces([s["content"] for s in snippets])) <= 5000
    assert [s["tokens"] for s in snippets] == count_pieces([s["content"] for s in snippets])


def test_search_docs_budget_cuts_the_last_snippet_at_a_boundary(session_results, served_db) -> None:
    full = structured(session_results["by_name"]["anywhere"])["snippets"]
    cut = structured(session_results["by_name"]["budget_1000"])["snippets"]
    sizes = count_pieces([s["content"] for s in cut])
    assert sum(sizes) <= 1000 < sum(count_pieces([s["content"] for s in full]))
    assert [s["title"] for s in cut] == [s["title"] for s in full[:len(cut)]]  # same ranking, fewer
    last = cut[-1]
    assert last["truncated"] and not any(s["truncated"] for s in cut[:-1])
    original = full[len(cut) - 1]["content"]
    assert original.startswith(last["content"].removesuffix("\n```")) and len(last["content"]) < len(original)
    after = original[len(last["content"].removesuffix("\n```"))]
    assert after.isspace() or last["content"].rstrip()[-1] in ".!?"  # a line, sentence or word end
    assert sum(sizes) > 1000 - 256  # the cut used the budget, not a whole snippet less


def test_search_docs_budget_under_1000_means_the_default(session_results) -> None:
    low = structured(session_results["by_name"]["budget_low"])
    assert low == structured(session_results["by_name"]["anywhere"])


def test_search_docs_errors_say_what_to_do(session_results) -> None:
    by_name = session_results["by_name"]
    assert "without lib_id" in error_text(by_name["version_alone"])
    unknown = error_text(by_name["unknown_lib"])
    assert "unknown lib_id `/direnv/direnvv`" in unknown and "/direnv/direnv?" in unknown
    assert "search_libraries" in unknown
    version = error_text(by_name["unknown_version"])
    assert "no version `9.9`" in version and "`2.36`" in version and "`2.37`" in version
    assert "query is empty" in error_text(by_name["empty_query"])


# ── search_libraries ─────────────────────────────────────────────────────────


def test_search_libraries_resolves_a_name_and_a_description(session_results, served_db) -> None:
    named = structured(session_results["by_name"]["libs_named"])["libraries"]
    assert [x["lib_id"] for x in named[:2]] == ["/direnv/direnv", "/direnv/direnv"]
    assert {x["version"] for x in named[:2]} == {"2.36", "2.37"}
    counts = dict(((lib, v), n) for lib, v, n in db_rows(served_db, "SELECT lib_id, version, chunk_count FROM libraries"))
    for x in named:
        assert x["doc_count"] == x["chunk_count"] == counts[(x["lib_id"], x["version"])]
        assert -1.0 <= x["match_score"] <= 1.0 and x["description"]
    described = structured(session_results["by_name"]["libs_described"])["libraries"]
    assert len(described) == 2 and described[0]["lib_id"] == "/gin-gonic/gin"
    assert "/direnv/direnv" in session_results["by_name"]["libs_named"].content[0].text


def test_search_libraries_empty_name_lists_most_docs_first_and_caps_the_limit(session_results) -> None:
    top = structured(session_results["by_name"]["libs_top"])["libraries"]
    assert len(top) == len(SERVED)  # fewer than the default 10
    assert [x["doc_count"] for x in top] == sorted((x["doc_count"] for x in top), reverse=True)
    assert all(x["match_score"] == 1.0 for x in top)
    assert structured(session_results["by_name"]["libs_capped"])["libraries"] == top


# ── other servers: no db, a db of another build, a release db ────────────────


def test_a_missing_db_is_a_tool_error_naming_it(tmp_path, embedder_cache) -> None:
    missing = tmp_path / "nowhere" / "deadzone.db"
    seen = run_session(["--db", str(missing)], server_env(embedder_cache, tmp_path / "data"), tmp_path,
                       [("search_docs", {"query": "hooks"}), ("search_libraries", {"name": "x"})],
                       tmp_path / "stderr.txt")
    assert sorted(t.name for t in seen["tools"]) == ["search_docs", "search_libraries"]  # it still serves
    for result in seen["results"]:
        assert str(missing) in error_text(result) and "--db" in error_text(result)


def test_a_db_of_another_pin_is_refused_naming_the_build_to_use(tmp_path, served_db, embedder_cache) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(served_db.read_bytes())
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("UPDATE meta SET value = 'f00d' || value WHERE key = ?", (dbschema.META_PIN_ID,))
        conn.commit()
    seen = run_session(["--db", str(other)], server_env(embedder_cache, tmp_path / "data"), tmp_path,
                       [("search_docs", {"query": "hooks"})], tmp_path / "stderr.txt")
    text = error_text(seen["results"][0])
    assert "embedder pin f00d" in text and "deadzone-build 0.1.0" in text and "serve --tag v0.1.0" in text


def publish_release(fake, tag: str, db: Path, sha256: str | None = None) -> None:
    """A published release holding `db` and its .sha256, made through the real client."""
    import hashlib

    from deadzone_build.publish.github import GitHubClient
    from fx_fakegithub import FAKE_TOKEN

    client = GitHubClient(fake.repo, token=FAKE_TOKEN, api_url=fake.api_url)
    release = client.create_release(tag, draft=False)
    digest = sha256 or hashlib.sha256(db.read_bytes()).hexdigest()
    client.upload_asset(release, "deadzone.db", db)
    client.upload_asset(release, "deadzone.db.sha256", f"{digest}  deadzone.db\n".encode())


def test_without_a_db_it_serves_the_latest_release_then_works_offline(tmp_path, served_db, embedder_cache,
                                                                      fake_github) -> None:
    publish_release(fake_github, "v2026.1.1", served_db)
    data, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    online = server_env(embedder_cache, data, GITHUB_REPOSITORY=fake_github.repo, GITHUB_API_URL=fake_github.api_url)
    call = [("search_libraries", {"name": "chi", "limit": 1})]
    first = run_session([], online, cwd, call, tmp_path / "first.txt")
    assert structured(first["results"][0])["libraries"][0]["lib_id"] == "/go-chi/chi"
    cached = data / "releases" / "acme" / "deadzone" / "v2026.1.1" / "deadzone.db"
    assert cached.read_bytes() == served_db.read_bytes()
    assert json.loads((cached.parent / "release.json").read_text())["tag"] == "v2026.1.1"
    assert fake_github.count("GET", r"/download/|/releases/assets/") >= 1

    served = len(fake_github.requests)
    again = run_session([], online, cwd, call, tmp_path / "again.txt")  # the same release: nothing downloaded
    assert structured(again["results"][0])["libraries"][0]["lib_id"] == "/go-chi/chi"
    assert [r["path"] for r in fake_github.requests[served:]] == [f"{fake_github.api_url.removeprefix(fake_github.base)}"
                                                                 f"/repos/{fake_github.repo}/releases/latest"]
    served = len(fake_github.requests)
    offline = {**online, "DEADZONE_DB_OFFLINE": "1"}
    third = run_session([], offline, cwd, call, tmp_path / "offline.txt")
    assert structured(third["results"][0])["libraries"][0]["lib_id"] == "/go-chi/chi"
    assert len(fake_github.requests) == served  # offline: not one request


def test_offline_without_a_cached_db_says_so(tmp_path, embedder_cache, fake_github) -> None:
    env = server_env(embedder_cache, tmp_path / "data", GITHUB_REPOSITORY=fake_github.repo,
                     GITHUB_API_URL=fake_github.api_url, DEADZONE_DB_OFFLINE="1")
    seen = run_session([], env, tmp_path, [("search_docs", {"query": "hooks"})], tmp_path / "stderr.txt")
    text = error_text(seen["results"][0])
    assert "DEADZONE_DB_OFFLINE" in text and "--db" in text
    assert fake_github.requests == []


def test_a_release_db_that_fails_its_sha256_is_not_served(tmp_path, served_db, embedder_cache, fake_github) -> None:
    publish_release(fake_github, "v1", served_db, sha256="0" * 64)
    env = server_env(embedder_cache, tmp_path / "data", GITHUB_REPOSITORY=fake_github.repo,
                     GITHUB_API_URL=fake_github.api_url)
    seen = run_session([], env, tmp_path, [("search_docs", {"query": "hooks"})], tmp_path / "stderr.txt")
    assert "deadzone.db.sha256 says 000" in error_text(seen["results"][0])
    assert not list((tmp_path / "data").rglob("deadzone.db"))


# ── streamable HTTP ──────────────────────────────────────────────────────────


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamable_http_on_localhost(tmp_path, served_db, embedder_cache) -> None:
    port = free_port()
    env = {**os.environ, **server_env(embedder_cache, tmp_path / "data")}
    with (tmp_path / "stderr.txt").open("w") as errlog:
        proc = subprocess.Popen([sys.executable, "-m", "deadzone_build", "serve", "--db", str(served_db),
                                 "--transport", "http", "--port", str(port)], env=env, cwd=tmp_path,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.1)

        async def main():
            async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    names = sorted(t.name for t in (await session.list_tools()).tools)
                    return names, await session.call_tool("search_docs", {"query": "mount a sub-router",
                                                                          "lib_id": "/go-chi/chi"})

        names, result = anyio.run(main)
        assert names == ["search_docs", "search_libraries"]
        assert structured(result)["snippets"][0]["lib_id"] == "/go-chi/chi"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ── start-up stays light ─────────────────────────────────────────────────────


def test_the_cli_does_not_import_mcp_until_serve_runs() -> None:
    code = ("import sys; from deadzone_build.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('mcp', 'platformdirs', 'numpy', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

