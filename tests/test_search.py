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
    assert len(hits) == 9 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


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
