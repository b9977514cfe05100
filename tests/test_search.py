"""Hybrid search and library ranking over a real consolidated db."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from deadzone_build.db import schema as S
from deadzone_build.cli import main
from deadzone_build.db.consolidate import consolidate
from deadzone_build.errors import DatabaseError, SelectionError
from deadzone_build.registry.keys import registry_digest
from deadzone_build.db.search import fts_query, libs, open_index, search
from fx_artifacts import HashEmbedder, make_slot, write_text_artifact

ROUTER = make_slot("/acme/router", description="HTTP request router and middleware for Go servers.")
ROUTER_V2 = make_slot("/acme/router2", version="2.0", description="HTTP router, second generation.")
PARSER = make_slot("/zeta/yamlparse", description="YAML parsing and emitting library.")
SLOTS = [ROUTER, ROUTER_V2, PARSER]

SECTIONS = {
    ROUTER: [
        (["Router", "Routes"], "Register a route with router.Handle and a handler function for each path."),
        (["Router", "Middleware"], "Middleware wraps a handler: logging, recovery and compression."),
        (["Router", "Timeouts"], "Set read and write timeouts on the server to avoid slow clients."),
        (["Router", "Advanced"], "Call mux.SetNotFoundHandlerWithFallback to serve a custom page for unknown paths."),
    ],
    ROUTER_V2: [
        (["Router2", "Routes"], "Routes are declared with a builder; each route has a method and a path."),
        (["Router2", "Context"], "The request context carries path parameters and deadlines."),
    ],
    PARSER: [
        (["YAML", "Loading"], "Load a YAML document into native maps and lists with yaml.load."),
        (["YAML", "Emitting"], "Dump data back to YAML text, keeping key order and comments."),
        (["YAML", "Errors"], "A syntax error names the line and column of the problem."),
    ],
}
SEMANTIC_QUERY = "zzz qqq"  # shares no word with any chunk


@pytest.fixture
def stand_in() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def db(tmp_path: Path, stand_in: HashEmbedder) -> Path:
    artifacts = tmp_path / "artifacts"
    for slot, sections in SECTIONS.items():
        write_text_artifact(artifacts, slot, sections, stand_in)
    path = tmp_path / "deadzone.db"
    consolidate(slots=SLOTS, artifacts_dir=artifacts, db_path=path, registry_digest=registry_digest(SLOTS))
    return path


def test_exact_api_name_ranks_its_doc_first(db: Path, stand_in: HashEmbedder) -> None:
    hits = search(db, "SetNotFoundHandlerWithFallback", embedder=stand_in)
    assert hits[0].lib_id == "/acme/router" and "SetNotFoundHandlerWithFallback" in hits[0].text
    assert hits[0].heading_path == ["Router", "Advanced"]
    assert hits[0].url.startswith("https://raw.githubusercontent.com/acme/router/")
    assert hits[0].score > hits[1].score


def test_dotted_call_matches_as_a_phrase(db: Path, stand_in: HashEmbedder) -> None:
    hits = search(db, "yaml.load()", embedder=stand_in, limit=3)
    assert hits[0].heading_path == ["YAML", "Loading"]


def test_vector_side_finds_text_without_shared_words(db: Path) -> None:
    base = HashEmbedder()
    target = ["YAML", "Errors"], SECTIONS[PARSER][2][1]
    vector = base.embed([" > ".join(target[0]) + "\n" + target[1]])[0]
    pinned = HashEmbedder(overrides={SEMANTIC_QUERY: vector})
    assert fts_query(SEMANTIC_QUERY)  # a real keyword query that matches nothing
    hits = search(db, SEMANTIC_QUERY, embedder=pinned, limit=3)
    assert hits[0].heading_path == ["YAML", "Errors"] and hits[0].lib_id == "/zeta/yamlparse"


def test_both_signals_fuse(db: Path, stand_in: HashEmbedder) -> None:
    hits = search(db, "middleware handler logging", embedder=stand_in, limit=9)
    assert hits[0].heading_path == ["Router", "Middleware"]
    assert len(hits) == 9
    firsts = [h for n, h in enumerate(hits) if h.url not in {x.url for x in hits[:n]}]  # one per document
    assert [h.score for h in firsts] == sorted((h.score for h in firsts), reverse=True)
    assert len(firsts) == len({h.url for h in hits}) and hits[:len(firsts)] == firsts  # documents first


def test_filters_by_library_and_version(db: Path, stand_in: HashEmbedder) -> None:
    hits = search(db, "routes path", embedder=stand_in, lib="/acme/router2", limit=10)
    assert {(h.lib_id, h.version) for h in hits} == {("/acme/router2", "2.0")} and len(hits) == 2
    hits = search(db, "routes path", embedder=stand_in, lib="/acme/router2", version="2.0")
    assert len(hits) == 2
    with pytest.raises(SelectionError, match="has no version `9`.*2.0"):
        search(db, "routes", embedder=stand_in, lib="/acme/router2", version="9")
    with pytest.raises(SelectionError, match="no library `/nope/nope`.*deadzone-build libs"):
        search(db, "routes", embedder=stand_in, lib="/nope/nope")
    with pytest.raises(SelectionError, match="--version needs --lib"):
        search(db, "routes", embedder=stand_in, version="2.0")


@pytest.mark.parametrize("query", ['foo(bar)', '"x', 'AND OR NOT', 'a*', 'col:val', '^start', '-minus',
                                   'NEAR(a b)', '{text heading_path}: x', "'; DROP TABLE chunks; --", "___", "((("])
def test_fts_syntax_in_the_query_never_crashes(db: Path, stand_in: HashEmbedder, query: str) -> None:
    hits = search(db, query, embedder=stand_in, limit=3)
    assert len(hits) == 3  # the vector side always answers


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('foo(bar) "x') == '"foo(bar)" OR """x"'
    assert fts_query("!!! ---") == ""


def test_empty_query_and_bad_limit_are_refused(db: Path, stand_in: HashEmbedder) -> None:
    with pytest.raises(SelectionError, match="query is empty"):
        search(db, "   ", embedder=stand_in)
    with pytest.raises(SelectionError, match="--limit"):
        search(db, "x", embedder=stand_in, limit=0)


def test_libs_rank_by_name_and_vector(db: Path, stand_in: HashEmbedder) -> None:
    top = libs(db, "yamlparse", embedder=stand_in, limit=3)
    assert top[0].lib_id == "/zeta/yamlparse" and top[0].chunks == 3
    top = libs(db, "http router middleware", embedder=stand_in, limit=2)
    assert {t.lib_id for t in top} == {"/acme/router", "/acme/router2"}
    assert libs(db, "yaml", embedder=stand_in, limit=1)[0].lib_id == "/zeta/yamlparse"


def test_db_with_another_schema_or_pin_is_refused(db: Path, stand_in: HashEmbedder, tmp_path: Path) -> None:
    for name, value, message in [(S.META_SCHEMA_VERSION, "0", "schema version is '0'"),
                                 (S.META_PIN_ID, "feed", "embedder pin feed")]:
        copy = tmp_path / f"copy-{name}.db"
        copy.write_bytes(db.read_bytes())
        conn = sqlite3.connect(copy)
        conn.execute("UPDATE meta SET value = ? WHERE key = ?", (value, name))
        conn.commit()
        conn.close()
        with pytest.raises(DatabaseError, match=message) as info:
            search(copy, "router", embedder=stand_in)
        assert str(copy) in str(info.value) and "consolidate" in str(info.value)


def test_missing_or_foreign_file_is_refused(tmp_path: Path, stand_in: HashEmbedder) -> None:
    with pytest.raises(DatabaseError, match="no database there"):
        search(tmp_path / "none.db", "x", embedder=stand_in)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="not a readable SQLite database"):
        search(junk, "x", embedder=stand_in)


def test_index_reloads_when_the_db_changes(db: Path, stand_in: HashEmbedder, tmp_path: Path) -> None:
    first = open_index(db)
    assert open_index(db) is first
    consolidate(slots=[PARSER], artifacts_dir=tmp_path / "artifacts", db_path=db,
                registry_digest=registry_digest(SLOTS))
    assert open_index(db) is not first
    assert {h.lib_id for h in search(db, "router", embedder=stand_in)} == {"/zeta/yamlparse"}


def test_cli_refuses_a_bad_db_before_loading_the_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["search", "router", "--db", str(tmp_path / "none.db")]) == 1
    assert "no database there" in capsys.readouterr().err
    assert main(["libs", "router", "--db", str(tmp_path / "none.db"), "--json"]) == 1


def test_words_too_common_to_rank_are_left_to_the_vector_side(tmp_path: Path, stand_in: HashEmbedder) -> None:
    from deadzone_build.db.search import SearchIndex

    slot = make_slot("/acme/common")
    sections = [(["Doc", str(i)], f"common filler text number {i}") for i in range(8)]
    sections.append((["Doc", "rare"], "common words around a rareword"))
    write_text_artifact(tmp_path / "a", slot, sections, stand_in)
    db = tmp_path / "common.db"
    consolidate(slots=[slot], artifacts_dir=tmp_path / "a", db_path=db, registry_digest="d")
    full = SearchIndex(db)
    capped = SearchIndex(db, max_ranked=3)
    try:
        assert len(full.keyword_ranking("common rareword")) == 9
        assert capped.keyword_ranking("common rareword") == [9]  # "common" (9 chunks) is dropped
        assert capped.keyword_ranking("common filler") == []  # all common, and 8 chunks hold both
        assert capped.keyword_ranking("common rareword", lib="/acme/common") == [9]
        hits = capped.search("common filler", embedder=stand_in, limit=4)
        assert len(hits) == 4 and all("common" in h.text for h in hits)
    finally:
        full.close()
        capped.close()


# ── with the real model ──────────────────────────────────────────────────────

REAL_DOCS = {
    make_slot("/spf13/cobra", description="Go library for building modern command-line applications, with "
              "subcommands, POSIX flag parsing, and shell completion generation."): [
        (["Cobra", "Flags"], "Persistent flags are available to the command and every subcommand under it: "
         "rootCmd.PersistentFlags().StringVar(&cfgFile, \"config\", \"\", \"config file\")."),
        (["Cobra", "Completions"], "Cobra can generate shell completion scripts for bash, zsh, fish and "
         "PowerShell with GenBashCompletionV2."),
    ],
    make_slot("/yaml/pyyaml", description="YAML parser and emitter for Python."): [
        (["PyYAML", "Loading"], "yaml.safe_load parses a YAML document into Python dicts and lists without "
         "constructing arbitrary objects."),
        (["PyYAML", "Dumping"], "yaml.dump serialises Python objects to a YAML stream; pass sort_keys=False to "
         "keep insertion order."),
    ],
}


def test_real_model_finds_the_library_with_and_without_its_api_words(tmp_path: Path, embedder) -> None:
    """Uses the real model (`embedder` from tests/fx_model.py); checked against tests/numpy_bert.py."""
    slots = list(REAL_DOCS)
    for slot, sections in REAL_DOCS.items():
        write_text_artifact(tmp_path / "artifacts", slot, sections, embedder)
    db = tmp_path / "deadzone.db"
    consolidate(slots=slots, artifacts_dir=tmp_path / "artifacts", db_path=db, registry_digest=registry_digest(slots))
    exact = search(db, "GenBashCompletionV2", embedder=embedder, limit=3)
    assert exact[0].heading_path == ["Cobra", "Completions"]
    paraphrase = search(db, "read a configuration file into a dictionary in python", embedder=embedder, limit=2)
    assert paraphrase[0].lib_id == "/yaml/pyyaml"
    options = search(db, "option inherited by child commands", embedder=embedder, limit=2)
    assert options[0].heading_path == ["Cobra", "Flags"]
    assert libs(db, "command line interface framework for go", embedder=embedder, limit=1)[0].lib_id == "/spf13/cobra"


# ── the real fixture libraries, scraped from the local mirror with the real model ──

FIXTURE_LIBS = ("/knights-analytics/hugot", "/direnv/direnv", "/gin-gonic/gin", "/go-chi/chi")


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory: pytest.TempPathFactory, embedder, embedder_cache) -> Path:
    """Built once for the tests below, which only read it."""
    from conftest import REPO
    from deadzone_build.sources.fetch import FetchSettings, make_client
    from deadzone_build.registry.load import load_registry
    from deadzone_build.pipeline.scrape import scrape_slot
    from fx_docserver import MIRROR_DIR, serve_mirror

    tmp_path = tmp_path_factory.mktemp("fixture_db")

    slots = [s for s in load_registry(REPO / "libraries_sources.yaml")
             if s.lib_id in FIXTURE_LIBS and s.version in ("", "0.6", "2.36")]
    assert sorted(s.lib_id for s in slots) == sorted(FIXTURE_LIBS)
    settings = FetchSettings(retries=2, backoff_base=0.01)
    with serve_mirror(MIRROR_DIR) as docs_server, make_client(
            settings, rewrite=[("https://raw.githubusercontent.com/", docs_server.base_url)], token="") as client:
        for slot in slots:
            scrape_slot(slot, artifacts_dir=tmp_path / "artifacts", cache_dir=embedder_cache, client=client,
                        fetch_settings=settings, embedder=embedder)
    db = tmp_path / "deadzone.db"
    consolidate(slots=slots, artifacts_dir=tmp_path / "artifacts", db_path=db, registry_digest=registry_digest(slots))
    return db


def _vector_side_top_lib(db: Path, query: str, embedder) -> str:
    """The best chunk by cosine alone, straight from the stored vectors (no search code involved)."""
    import numpy as np

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT lib_id, vector FROM chunks ORDER BY id").fetchall()
    vectors = np.stack([np.frombuffer(blob, dtype="<f4") for _, blob in rows])
    return rows[int(np.argmax(vectors @ embedder.embed([query])[0]))][0]


@pytest.mark.parametrize(("query", "expected"), [
    ("load environment variables when entering a directory", "/direnv/direnv"),
    ("run transformer models from Go with onnx runtime", "/knights-analytics/hugot"),
    ("bind JSON request body to a struct", "/gin-gonic/gin"),
    ("mount a sub-router on a path prefix", "/go-chi/chi"),
])
def test_fixture_libraries_each_signal_finds_the_library_without_its_api_words(fixture_db, embedder, query,
                                                                                expected) -> None:
    index = open_index(fixture_db)  # shared and cached by the search module: not ours to close
    with sqlite3.connect(fixture_db) as conn:
        keyword_top = conn.execute("SELECT lib_id FROM chunks WHERE id = ?",
                                   (index.keyword_ranking(query)[0],)).fetchone()[0]
    if query != "mount a sub-router on a path prefix":
        # in this 4-library db, bm25 with headings weighted 3x ranks direnv's `load_prefix <prefix_path>`
        # heading first for this one; the bench (bench/relevance.py) measures that trade-off
        assert keyword_top == expected  # FTS5 alone
    assert _vector_side_top_lib(fixture_db, query, embedder) == expected  # vectors alone
    assert index.search(query, embedder=embedder, limit=1)[0].lib_id == expected  # fused


@pytest.mark.parametrize("name", ["ShouldBindJSON", "RedirectSlashes", "watch_file", "NewSession"])
def test_fixture_libraries_a_name_found_verbatim_in_one_doc_ranks_that_doc_first(fixture_db, embedder, name) -> None:
    with sqlite3.connect(fixture_db) as conn:
        holders = {url for (url,) in conn.execute("SELECT DISTINCT url FROM chunks WHERE instr(text, ?) > 0", (name,))}
    assert len(holders) == 1, holders  # the premise: one document holds the name
    assert search(fixture_db, name, embedder=embedder, limit=1)[0].url == holders.pop()


def test_fixture_libraries_rank_by_description(fixture_db, embedder) -> None:
    assert libs(fixture_db, "environment switcher for the shell", embedder=embedder, limit=1)[0].lib_id == "/direnv/direnv"
    assert libs(fixture_db, "web framework with JSON binding", embedder=embedder, limit=1)[0].lib_id == "/gin-gonic/gin"
    # "go" names the org of /go-chi/chi and "in" hides inside "gin": neither is a name match
    assert libs(fixture_db, "huggingface pipelines in go", embedder=embedder,
                limit=1)[0].lib_id == "/knights-analytics/hugot"
    assert [h.lib_id for h in libs(fixture_db, "chi", embedder=embedder, limit=1)] == ["/go-chi/chi"]


# ── versions, documents, snippets, libs names, the shared index cache ──────

def _db_of(tmp_path: Path, content: dict, embedder) -> Path:
    for slot, sections in content.items():
        write_text_artifact(tmp_path / "artifacts", slot, sections, embedder)
    db = tmp_path / "deadzone.db"
    slots = list(content)
    consolidate(slots=slots, artifacts_dir=tmp_path / "artifacts", db_path=db, registry_digest=registry_digest(slots))
    return db


def test_identical_chunks_of_several_versions_are_one_hit_listing_them(tmp_path: Path, stand_in) -> None:
    same = (["Flags"], "Persistent flags apply to every subcommand of the command.")
    v9 = make_slot("/acme/cli", version="1.9", urls=("https://raw.githubusercontent.com/acme/cli/v1.9.0/guide.md",))
    v10 = make_slot("/acme/cli", version="1.10", urls=("https://raw.githubusercontent.com/acme/cli/v1.10.0/guide.md",))
    db = _db_of(tmp_path, {v9: [same, (["Old"], "Persistent flags were once called global flags.")],
                           v10: [same, (["New"], "Persistent flags may now be hidden from help.")]}, stand_in)
    hits = search(db, "persistent flags subcommand", embedder=stand_in, limit=10)
    assert len(hits) == 3  # 4 chunks, two of them identical
    shared = next(h for h in hits if h.heading_path == ["Flags"])
    assert shared.versions == ["1.10", "1.9"] and shared.version == "1.10" and "v1.10.0" in shared.url
    assert {tuple(h.versions) for h in hits if h is not shared} == {("1.9",), ("1.10",)}
    pinned = search(db, "persistent flags subcommand", embedder=stand_in, lib="/acme/cli", version="1.9")
    assert len(pinned) == 2 and all(h.versions == ["1.9"] and h.version == "1.9" for h in pinned)
    both = search(db, "persistent flags subcommand", embedder=stand_in, lib="/acme/cli")
    assert len(both) == 3


def test_one_long_document_does_not_take_every_place(tmp_path: Path, stand_in) -> None:
    long_doc = make_slot("/acme/long", urls=("https://raw.githubusercontent.com/acme/long/main/big.md",))
    other = make_slot("/acme/other", urls=("https://raw.githubusercontent.com/acme/other/main/small.md",))
    db = _db_of(tmp_path, {long_doc: [(["Big", str(i)], f"retry the request with backoff, part {i}") for i in range(6)],
                           other: [(["Small"], "retry a failed request after a delay")]}, stand_in)
    hits = search(db, "retry request backoff", embedder=stand_in, limit=5)
    assert [h.url.rsplit("/", 1)[-1] for h in hits[:2]] == ["big.md", "small.md"]
    assert all(h.url.endswith("big.md") for h in hits[2:])


def test_snippet_shows_the_fence_of_a_chunk_that_starts_inside_code(tmp_path: Path, stand_in) -> None:
    slot = make_slot("/acme/code", urls=("https://raw.githubusercontent.com/acme/code/main/api.md",))
    path = ["API", "Example"]
    db = _db_of(tmp_path, {slot: [(path, "Register the handler:\n\n```go\nr.Get(\"/\", func(w http.ResponseWriter) {\n"),
                                  (path, "    w.Write(hello)\n})\n```\n\nThen serve it with ListenAndServeZebra."),
                                  (["API", "Next"], "Unrelated text.")]}, stand_in)
    hit = search(db, "ListenAndServeZebra", embedder=stand_in, limit=1)[0]
    assert hit.text.startswith("    w.Write")  # the raw chunk begins inside the code block
    assert hit.snippet.splitlines()[0] == "```go" and hit.snippet.splitlines()[1] == "    w.Write(hello)"
    assert hit.heading_path == path and hit.url.endswith("/api.md")
    first = search(db, "Register the handler", embedder=stand_in, limit=1)[0]
    assert first.snippet.endswith("```") and first.snippet.count("```") == 2  # the open fence is closed


def test_snippet_widens_a_mid_line_cut_to_whole_lines() -> None:
    from deadzone_build.db.snippet import preview, snippet

    assert snippet("brown fox jumps.\nNext line", before=["The quick "], after=[" ends here.\nMore"]) == \
        "The quick brown fox jumps.\nNext line ends here."
    assert snippet("~~~~\ncode\n", before=["x\n"], after=[]) == "~~~~\ncode\n~~~~"
    assert snippet("plain text", before=["```\nstill code\n```\n"]) == "plain text"  # fence closed before
    assert preview("```py\na\nb\nc\n```", 2) == "```py\na\n```"
    assert preview("one\ntwo", 5) == "one\ntwo"


def test_libs_names_match_whole_words_and_word_order() -> None:
    from deadzone_build.db.lib_names import EXACT, name_score, query_words

    assert name_score("/tiangolo/fastapi", query_words("fast api")) == EXACT  # was "apifast" == "fastapi"
    assert name_score("/tiangolo/fastapi", query_words("api fast")) == 0.0
    assert name_score("/modelcontextprotocol/go-sdk", query_words("http router for go")) == 0.0  # generic word
    assert name_score("/modelcontextprotocol/go-sdk", query_words("mcp go sdk")) == EXACT
    assert name_score("/gin-gonic/gin", query_words("plugin in go")) == 0.0  # "in" is not inside "gin"
    assert name_score("/acme/yaml-parse", query_words("parse yaml files")) == 1.0 + 1.0


def test_libs_fast_api_finds_fastapi_first(tmp_path: Path, stand_in) -> None:
    content = {make_slot("/tiangolo/fastapi", description="Modern Python web framework."): [(["A"], "a")],
               make_slot("/fastify/fastify", description="Fast web framework for Node.js."): [(["B"], "b")],
               make_slot("/acme/api", description="An API client for fast things."): [(["C"], "c")]}
    db = _db_of(tmp_path, content, stand_in)
    assert libs(db, "fast api", embedder=stand_in, limit=1)[0].lib_id == "/tiangolo/fastapi"


def test_an_index_dropped_from_the_cache_keeps_serving_its_holders(tmp_path: Path, stand_in) -> None:
    db = _db_of(tmp_path, SECTIONS, stand_in)
    held = open_index(db)
    others = []
    for n in range(3):  # more dbs than the cache keeps: `held` is evicted
        copy = tmp_path / f"other{n}.db"
        copy.write_bytes(db.read_bytes())
        others.append(open_index(copy))
    consolidate(slots=[PARSER], artifacts_dir=tmp_path / "artifacts", db_path=db,
                registry_digest=registry_digest(SLOTS))  # and its file changes: a new index replaces it
    assert open_index(db) is not held
    assert held.search("router", embedder=stand_in, limit=1)[0].lib_id.startswith("/acme/")  # still open
    assert all(o.search("yaml", embedder=stand_in, limit=1) for o in others)


@pytest.fixture(scope="module")
def registry_libraries_db(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """Every library of the shipped registry, with its real library vector (what `libs` ranks by)."""
    from conftest import REPO
    from deadzone_build.embed.pin import pin_id
    from deadzone_build.pipeline.artifact import write_artifact
    from deadzone_build.pipeline.scrape import library_text
    from deadzone_build.registry.keys import key_inputs, slot_key
    from deadzone_build.registry.load import load_registry
    from fx_artifacts import url_reports

    tmp = tmp_path_factory.mktemp("registry_libs")
    slots = load_registry(REPO / "libraries_sources.yaml")
    vectors = embedder.embed([library_text(s) for s in slots] + [s.description for s in slots])
    for n, slot in enumerate(slots):
        chunks = [{"url": slot.urls[0], "heading_path": ["About"], "ordinal": 0, "text": slot.description,
                   "tokens": 10}]
        write_artifact(tmp / "artifacts", slot, key=slot_key(slot), key_inputs=key_inputs(slot), pin_id=pin_id(),
                       chunks=chunks, vectors=vectors[len(slots) + n:len(slots) + n + 1], library_vector=vectors[n],
                       url_reports=url_reports(slot, chunks)[:1] + [
                           {**r, "chunks": 0} for r in url_reports(slot, chunks)[1:]],
                       counts={"urls": len(slot.urls), "docs_ok": len(slot.urls), "docs_dropped": 0})
    db = tmp / "deadzone.db"
    consolidate(slots=slots, artifacts_dir=tmp / "artifacts", db_path=db, registry_digest=registry_digest(slots))
    return db


@pytest.mark.parametrize(("query", "expected"), [
    ("http router for go", {"/go-chi/chi", "/gin-gonic/gin"}),
    ("command line framework for go", {"/spf13/cobra"}),
    ("async runtime for rust", {"/tokio-rs/tokio"}),
    ("generate type-safe go code from sql queries", {"/sqlc-dev/sqlc"}),
    ("build an MCP server in go", {"/modelcontextprotocol/go-sdk"}),
    ("node.js web framework", {"/fastify/fastify"}),
])
def test_libs_resolves_the_shipped_registry(registry_libraries_db: Path, embedder, query, expected) -> None:
    from conftest import REPO
    from deadzone_build.registry.load import load_registry

    ids = {s.lib_id for s in load_registry(REPO / "libraries_sources.yaml")}
    assert expected <= ids  # the premise: the libraries are in the shipped registry
    assert libs(registry_libraries_db, query, embedder=embedder, limit=1)[0].lib_id in expected
