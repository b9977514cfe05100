"""One HTTP client per process: slots of a run share it (one SSL context, connections kept per host)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deadzone_build.pipeline.artifact import artifact_is_current
from deadzone_build.pipeline.scrape import scrape_slot
from deadzone_build.registry.keys import slot_key
from deadzone_build.registry.load import parse_registry
from deadzone_build.sources import fetch
from deadzone_build.sources.fetch import FetchSettings, close_shared_clients, shared_client

FAST = FetchSettings(connect_timeout=2.0, read_timeout=2.0, retries=1, backoff_base=0.01, max_retry_after=0.05)

TWO_LIBRARIES = """\
libraries:
  - lib_id: /go-chi/chi
    description: Lightweight router for Go HTTP services.
    kind: github-md
    ref: v5.2.5
    urls:
      - https://raw.githubusercontent.com/go-chi/chi/{ref}/README.md
  - lib_id: /knights-analytics/hugot
    description: Transformer models on the ONNX Runtime.
    kind: github-md
    ref: v0.6.5
    urls:
      - https://raw.githubusercontent.com/knights-analytics/hugot/{ref}/README.md
"""


@pytest.fixture(autouse=True)
def no_shared_clients():
    close_shared_clients()
    yield
    close_shared_clients()


def test_one_client_per_settings_and_environment(monkeypatch) -> None:
    monkeypatch.setenv("DEADZONE_URL_REWRITE", "https://raw.githubusercontent.com/=http://127.0.0.1:9/")
    first = shared_client(FAST)
    assert shared_client(FAST) is first
    assert shared_client(FetchSettings()) is not first  # other timeouts: another client
    monkeypatch.setenv("DEADZONE_URL_REWRITE", "https://raw.githubusercontent.com/=http://127.0.0.1:10/")
    assert shared_client(FAST) is not first  # another rewrite is another client, never a stale one
    close_shared_clients()
    assert first.is_closed and not shared_client(FAST).is_closed


def test_slots_of_a_run_share_one_client_and_its_connections(docs_server, monkeypatch, tmp_path: Path, embedder,
                                                             embedder_cache: Path) -> None:
    docs_server.set_rewrite_env(monkeypatch)
    built: list[object] = []
    real_make_client = fetch.make_client
    monkeypatch.setattr(fetch, "make_client", lambda *a, **kw: built.append(a) or real_make_client(*a, **kw))
    opened: list[object] = []
    real_connect = fetch.httpx.HTTPTransport.handle_request

    def counting(self, request):  # every request goes through the one pooled transport
        opened.append(self)
        return real_connect(self, request)

    monkeypatch.setattr(fetch.httpx.HTTPTransport, "handle_request", counting)
    slots = parse_registry(TWO_LIBRARIES, "two.yaml")
    for slot in slots:
        outcome = scrape_slot(slot, artifacts_dir=tmp_path / "artifacts", cache_dir=embedder_cache,
                              fetch_settings=FAST, embedder=embedder)
        assert outcome.status == "scraped" and outcome.docs_ok == 1
        assert artifact_is_current(tmp_path / "artifacts" / slot.slug, slot_key(slot))
    assert len(built) == 1 and len(opened) == 2 and opened[0] is opened[1]
    assert not shared_client(FAST).is_closed  # scrape_slot never closes the process's client
