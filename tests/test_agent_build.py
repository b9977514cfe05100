"""Acceptance of scrape-via-agent: a registry entry over real HTML, built end to end (real model).

No endpoint → a verified artifact from the deterministic route; the local endpoint → another key
and a verified artifact from the endpoint route; the endpoint stopped → the same bytes again, from
the answer cache alone. `explain` names the route each time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deadzone_build.db.consolidate import consolidate
from deadzone_build.db.search import search
from deadzone_build.errors import ScrapeError
from deadzone_build.pipeline.artifact import DATA_FILES, META_FILE, read_artifact, verify_artifact
from deadzone_build.pipeline.explain import explain_slot
from deadzone_build.pipeline.scrape import scrape_slot
from deadzone_build.registry.keys import registry_digest, slot_key
from deadzone_build.registry.load import parse_registry
from deadzone_build.sources.fetch import FetchSettings, make_client
from fx_llm import MODEL

FAST = FetchSettings(connect_timeout=2.0, read_timeout=5.0, retries=1, backoff_base=0.0, max_retry_after=0.05)
PAGES = ("click/quickstart.html", "attrs/examples.html", "jinja2/tricks.html", "mkdocs-literate-nav/index.html")


QUERIES = {"nest commands inside a group": "click/quickstart.html",
           "run a validator on an attribute value": "attrs/examples.html",
           "SUMMARY.md navigation file": "mkdocs-literate-nav/index.html",
           "highlight the active menu item in a navigation bar": "jinja2/tricks.html"}


def registry_slot(site):
    urls = "".join(f"      - {site.url(page)}\n" for page in PAGES)
    text = ("libraries:\n  - lib_id: /pallets/click\n    description: Composable command line interfaces.\n"
            "    kind: scrape-via-agent\n    versions:\n      \"8.1\": { ref: 8.1.3 }\n    urls:\n" + urls)
    return parse_registry(text, Path("libraries_sources.yaml"))[0]


def build(slot, artifacts: Path, cache: Path, embedder, force: bool = False):
    client = make_client(FAST, rewrite=[], token="")
    try:
        return scrape_slot(slot, artifacts_dir=artifacts, cache_dir=cache, client=client, fetch_settings=FAST,
                           embedder=embedder, force=force)
    finally:
        client.close()


def files(path: Path) -> dict[str, bytes]:
    return {name: (path / name).read_bytes() for name in (*DATA_FILES, META_FILE)}


def test_builds_without_endpoint_with_it_and_from_the_answer_cache(html_site, fake_llm, monkeypatch, tmp_path,
                                                                   embedder) -> None:
    slot = registry_slot(html_site)
    artifacts, cache = tmp_path / "artifacts", tmp_path / "cache"

    # 1. no endpoint: deterministic extraction
    plain = build(slot, artifacts, cache, embedder)
    meta = verify_artifact(plain.path, expected_key=slot_key(slot))
    assert plain.status == "scraped" and plain.docs_ok == 4 and plain.chunks > 20
    assert {r["route"] for r in meta["urls"]} == {"deterministic"}
    plain_key = meta["key"]
    plain_chunks = read_artifact(plain.path).chunks
    assert "route deterministic" in " ".join(explain_slot(slot, artifacts).reasons)
    assert fake_llm.requests == []

    # 2. with the local endpoint: another key, the endpoint route
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT", fake_llm.endpoint)
    monkeypatch.setenv("DEADZONE_AGENT_ENDPOINT_MODEL", MODEL)
    assert not explain_slot(slot, artifacts).current
    assert any("changed source.route: 'deterministic' -> 'endpoint'" in r for r in explain_slot(slot, artifacts).reasons)
    agent = build(slot, artifacts, cache, embedder)
    key = slot_key(slot)
    meta = verify_artifact(agent.path, expected_key=key)
    assert key != plain_key and {r["route"] for r in meta["urls"]} == {"endpoint"}
    assert all(r["fallbacks"] == [] for r in meta["urls"])
    chunks = read_artifact(agent.path).chunks
    assert any("\u2019" in c["text"] for c in plain_chunks) and not any("\u2019" in c["text"] for c in chunks)
    explained = explain_slot(slot, artifacts)
    assert explained.current and explained.route == f"route endpoint, model {MODEL}, prompt version 1"
    endpoint_bytes = files(agent.path)
    # the index is searchable: questions land on the page that answers them
    db = consolidate(slots=[slot], artifacts_dir=artifacts, db_path=tmp_path / "deadzone.db",
                     registry_digest=registry_digest([slot]), built_at="").db_path
    for query, page in QUERIES.items():
        hits = search(db, query, embedder=embedder, limit=3)
        assert html_site.url(page) in [hit.url for hit in hits], (query, [(h.url, h.heading_path) for h in hits])
    asked = len(fake_llm.chats())
    assert asked == sum(r["sections"] for r in meta["urls"])

    # 3. endpoint stopped, fresh artifacts dir, forced rebuild: same bytes from the answer cache
    fake_llm.stop()
    again = build(slot, tmp_path / "elsewhere", cache, embedder, force=True)
    verify_artifact(again.path, expected_key=key)
    assert files(again.path) == endpoint_bytes
    assert len(fake_llm.chats()) == asked

    # and without the cache, a stopped endpoint fails the slot instead of building something else
    with pytest.raises(ScrapeError, match="agent endpoint .* does not answer"):
        build(slot, tmp_path / "third", tmp_path / "empty-cache", embedder, force=True)
