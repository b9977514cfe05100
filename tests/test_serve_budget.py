"""The pieces of `serve` in process: the token budget's cuts, search_libraries' limits, the db bootstrap."""

from __future__ import annotations

import pytest

from deadzone_build.db.consolidate import consolidate
from deadzone_build.errors import DatabaseError
from deadzone_build.registry.keys import registry_digest
from deadzone_build.serve.budget import count_pieces, cut_to_budget
from test_serve import publish_release


PROSE = ("The router matches each request against the registered routes. Routes may hold parameters "
         "like {id} and wildcards. A middleware wraps every handler below it! Groups share middleware; "
         "mounting a sub-router delegates a whole prefix. ") * 3


def assert_clean_cut(text: str, budget: int) -> str:
    cut = cut_to_budget(text, budget)
    body = cut.text.removesuffix("\n```")
    assert cut.truncated and cut.text and text.startswith(body) and len(body) < len(text)
    assert count_pieces([cut.text]) == [cut.tokens] and cut.tokens <= budget
    assert text[len(body)].isspace()  # never inside a word, so never inside a word piece
    return cut.text


def test_budget_prefers_a_line_end() -> None:
    text = "\n".join(f"Line {n} says something about routers and handlers." for n in range(40))
    cut = assert_clean_cut(text, 100)
    assert text[len(cut)] == "\n" and cut.endswith(".")


def test_budget_cuts_one_long_line_at_a_sentence_end() -> None:
    cut = assert_clean_cut(PROSE, 60)
    assert cut[-1] in ".!" and count_pieces([cut])[0] > 30  # the last sentence end that fits


def test_budget_falls_back_to_a_word_end() -> None:
    text = " ".join(f"word{n}" for n in range(400))  # no line or sentence end at all
    assert_clean_cut(text, 50)
    assert cut_to_budget("a." * 1500, 50).text == ""  # 3000 pieces and no space: nothing, not a fragment


def test_budget_closes_a_code_fence_it_cut_open() -> None:
    code = "Call it like this:\n\n```go\n" + "\n".join(f"r.Get(\"/v{n}\", handler{n})" for n in range(60)) + "\n```\n"
    cut = assert_clean_cut(code, 120)
    assert cut.endswith("\n```") and cut.count("```") == 2


def test_budget_closes_a_tilde_fence_with_its_own_marker() -> None:
    """``` lines inside a ~~~ fence are code, not fences: the cut closes the ~~~ fence it left open."""
    lines = "\n".join(f"```\nstep {n}: run the handler for route {n}" for n in range(40))
    code = "Example session:\n\n~~~text\n" + lines + "\n~~~\n"
    cut = cut_to_budget(code, 120)
    assert cut.truncated and cut.text.endswith("\n~~~") and cut.tokens <= 120
    assert code.startswith(cut.text.removesuffix("\n~~~"))


def test_budget_keeps_a_text_that_fits_whole() -> None:
    cut = cut_to_budget(PROSE, 10_000)
    assert cut.text == PROSE and not cut.truncated and cut.tokens == count_pieces([PROSE])[0]


def test_search_libraries_limit_defaults_to_10_and_is_capped_at_50(tmp_path) -> None:
    from deadzone_build.db.search import SearchIndex
    from deadzone_build.serve import tools
    from fx_artifacts import HashEmbedder, make_slot, write_fake_artifact

    slots = [make_slot(f"/org/lib{n:02d}") for n in range(60)]
    for n, slot in enumerate(slots):
        write_fake_artifact(tmp_path / "artifacts", slot, n_chunks=1 + n % 7)
    db = tmp_path / "deadzone.db"
    consolidate(slots=slots, artifacts_dir=tmp_path / "artifacts", db_path=db, registry_digest=registry_digest(slots))
    index, embedder = SearchIndex(db), HashEmbedder()
    try:
        for limit, expected in ((None, 10), (0, 10), (-3, 10), (7, 7), (50, 50), (51, 50), (10_000, 50)):
            for name in ("", "lib"):
                assert len(tools.search_libraries(index, embedder, name, limit)["libraries"]) == expected
        top = tools.search_libraries(index, embedder, "", 50)["libraries"]
        assert [x["doc_count"] for x in top] == sorted((x["doc_count"] for x in top), reverse=True)
        assert tools.search_libraries(index, embedder, "lib07", 1)["libraries"][0]["lib_id"] == "/org/lib07"
    finally:
        index.close()


def test_a_pinned_tag_is_fetched_once_and_kept_beside_the_latest(tmp_path, fake_github, monkeypatch) -> None:
    from deadzone_build.serve.bootstrap import resolve_db

    for tag in ("v1", "v2"):  # resolve_db downloads and verifies; opening the db is the server's job
        (tmp_path / tag).mkdir()
        (tmp_path / tag / "deadzone.db").write_bytes(f"the db of {tag}".encode())
        publish_release(fake_github, tag, tmp_path / tag / "deadzone.db")
    monkeypatch.setenv("DEADZONE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GITHUB_API_URL", fake_github.api_url)
    monkeypatch.chdir(tmp_path)
    first = resolve_db(repo=fake_github.repo, tag="v1")
    assert (first.origin, first.tag) == ("fetched", "v1") and first.path.read_bytes() == b"the db of v1"
    latest = resolve_db(repo=fake_github.repo)
    assert (latest.origin, latest.tag) == ("fetched", "v2")
    assert not first.path.exists()  # the latest replaced the older copy
    assert resolve_db(repo=fake_github.repo, tag="v1").origin == "fetched"
    assert resolve_db(repo=fake_github.repo, tag="v1").origin == "cache"
    assert latest.path.exists()  # a pinned tag does not prune
    monkeypatch.setenv("DEADZONE_DB_OFFLINE", "1")
    assert resolve_db(repo=fake_github.repo, tag="v2").origin == "cache"
    (tmp_path / "deadzone.db").write_bytes(b"a local build")
    assert resolve_db().origin == "local"
    monkeypatch.delenv("DEADZONE_DB_OFFLINE")
    monkeypatch.delenv("GITHUB_API_URL")
    monkeypatch.setenv("DEADZONE_DB", str(tmp_path / "missing.db"))
    with pytest.raises(DatabaseError, match=r"missing.db: no database there \(given by \$DEADZONE_DB\)"):
        resolve_db()


def test_serve_points_every_model_file_reader_at_one_cache(tmp_path, monkeypatch) -> None:
    """Without $DEADZONE_CACHE the model cache is the data dir's, for the embedder and the budget's
    tokenizer alike (the tokenizer reads settings.cache_dir()); a cache set by the user is kept."""
    from deadzone_build import settings
    from deadzone_build.commands.serve import use_model_cache

    monkeypatch.setenv("DEADZONE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DEADZONE_CACHE", raising=False)
    assert use_model_cache() == settings.cache_dir() == tmp_path / "data" / "cache"
    monkeypatch.setenv("DEADZONE_CACHE", str(tmp_path / "mine"))
    assert use_model_cache() == settings.cache_dir() == tmp_path / "mine"
