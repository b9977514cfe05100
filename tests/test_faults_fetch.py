"""The fetcher against a hostile HTTP server on 127.0.0.1 (tests/fx_docserver.py): transient drops,
bodies that are not docs, slow drips, compression bombs, redirects, and an unreachable network."""

from __future__ import annotations

import dataclasses
import gzip
import socket
import tracemalloc
import zlib

import pytest

from deadzone_build.errors import FetchError
from deadzone_build.sources import fetch
from deadzone_build.sources.body import DOC_ACCEPT, Accept
from deadzone_build.sources.fetch import (FetchSettings, fetch_all, fetch_one, incomplete_urls, make_client,
                                          parse_rewrite, redirect_problem)

FAST = FetchSettings(connect_timeout=2, read_timeout=10, retries=2, backoff_base=0.01, max_retry_after=0.05,
                     concurrency=4)
HUGOT = "https://raw.githubusercontent.com/knights-analytics/hugot/v0.7.2/"
README, CONTRIB = HUGOT + "README.md", HUGOT + "contrib.md"


def no_sleep(_: float) -> None:
    pass


@pytest.fixture
def client(docs_server):
    with make_client(FAST, rewrite=parse_rewrite(docs_server.rewrite), token="") as client:
        yield client


@pytest.fixture(autouse=True)
def _fresh_network_health():
    fetch.reset_network_health()
    yield
    fetch.reset_network_health()


# ── defect 1: a transient failure is marked retryable, a permanent one is not ──


@pytest.mark.parametrize("fault", ["503", "429", "truncated", "reset"])
def test_a_drop_whose_cause_may_pass_is_marked_retryable_in_the_report(docs_server, client, fault):
    if fault == "truncated":
        docs_server.faults.truncate(CONTRIB)
    elif fault == "reset":
        docs_server.faults.add(CONTRIB, __import__("fx_docserver").Fault(hang=0.01, truncate=True, body=b""))
    else:
        docs_server.faults.status(CONTRIB, int(fault))
    ok, dropped = fetch_all([README, CONTRIB], client, FAST, sleep=no_sleep)
    assert ok.ok and ok.report() == {k: v for k, v in ok.report().items() if k not in ("retryable", "final_url")}
    assert not dropped.ok and dropped.retryable and dropped.report()["retryable"] is True
    assert incomplete_urls([ok.report(), dropped.report()]) == [CONTRIB]


def test_a_permanent_drop_is_not_retryable_and_a_clean_report_keeps_its_fields(docs_server, client):
    docs_server.faults.not_found(CONTRIB)
    ok, gone = fetch_all([README, CONTRIB], client, FAST, sleep=no_sleep)
    assert not gone.retryable and "retryable" not in gone.report()
    assert set(ok.report()) == {"url", "status", "http_status", "bytes", "sha256", "reason"}  # meta bytes unchanged
    assert incomplete_urls([ok.report(), gone.report()]) == []


# ── defect 4: bodies that are not docs ──────────────────────────────────────

HTML_PAGE = ("<!DOCTYPE html>\n<html><head><title>Error</title><style>body{color:red}</style>"
             "<script>window.location='/login'</script></head><body><h1>Sign in</h1></body></html>\n")


@pytest.mark.parametrize("case", ["empty", "whitespace", "html-type", "html-body", "xhtml", "image-type"])
def test_bodies_that_are_not_markdown_are_dropped_and_said_why(docs_server, client, case):
    body, headers, needle = {
        "empty": (b"", {}, "an empty body"),
        "whitespace": (b" \n\n\t\n", {}, "an empty body"),
        "html-type": (HTML_PAGE, {"Content-Type": "text/html; charset=utf-8"}, "HTML page (Content-Type text/html)"),
        "html-body": (HTML_PAGE, {}, "an HTML page (it starts with"),
        "xhtml": (HTML_PAGE, {"Content-Type": "application/xhtml+xml"}, "HTML page"),
        "image-type": (b"GIF89a....", {"Content-Type": "image/gif"}, "Content-Type image/gif is not"),
    }[case]
    docs_server.faults.body(README, body, headers=headers)
    [result] = fetch_all([README], client, FAST, sleep=no_sleep, accept=DOC_ACCEPT)  # what github-md/rst pass
    assert not result.ok and needle in result.reason and not result.retryable
    assert result.text is None


def test_a_kind_that_takes_other_bodies_passes_its_own_accept(docs_server, client):
    zipped = b"PK\x03\x04" + bytes(range(256)) * 4
    docs_server.faults.body(README, zipped, headers={"Content-Type": "application/zip"})
    docs_server.faults.body(CONTRIB, HTML_PAGE, headers={"Content-Type": "text/html"})
    binary = Accept(media_types=frozenset({"application/zip", "application/json"}), text=False, what="a module zip")
    html = Accept(media_types=frozenset({"text/html"}), html=True, what="an HTML page")
    [got] = fetch_all([README], client, FAST, sleep=no_sleep, accept=binary)
    assert got.ok and got.content == zipped and got.text is None and got.content_type == "application/zip"
    [page] = fetch_all([CONTRIB], client, FAST, sleep=no_sleep, accept=html)
    assert page.ok and "<script>" in page.text
    [refused] = fetch_all([CONTRIB], client, FAST, sleep=no_sleep, accept=DOC_ACCEPT)  # github-md's
    assert not refused.ok
    [anything] = fetch_all([CONTRIB], client, FAST, sleep=no_sleep)  # the default: any UTF-8 text, as before
    assert anything.ok
    [raw] = [fetch.fetch_one(README, client, FAST, no_sleep, binary=True)]
    assert raw.ok and raw.content == zipped


# ── defect 5: a slow drip ends at the document and slot deadlines ────────────


def test_a_slow_drip_is_cut_at_the_document_deadline_and_is_retryable(docs_server, client):
    docs_server.faults.drip(README, "# Title\n\n" + "x" * 400, every=0.05)  # 20 s if read to the end
    settings = dataclasses.replace(FAST, retries=0, doc_deadline=1.0)
    [result] = fetch_all([README], client, settings, sleep=no_sleep)
    assert not result.ok and result.retryable
    assert "deadline" in result.reason and "DEADZONE_DOC_DEADLINE" in result.reason


def test_the_slot_deadline_bounds_every_document_of_the_slot(docs_server, client):
    for url in (README, CONTRIB):
        docs_server.faults.drip(url, "y" * 400, every=0.05)
    settings = dataclasses.replace(FAST, retries=3, doc_deadline=100.0, slot_deadline=1.0)
    results = fetch_all([README, CONTRIB], client, settings, sleep=no_sleep)
    assert all(not r.ok and r.retryable and "deadline" in r.reason for r in results)


def test_deadlines_come_from_the_environment_and_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("DEADZONE_DOC_DEADLINE", "7.5")
    monkeypatch.setenv("DEADZONE_SLOT_DEADLINE", "90")
    settings = FetchSettings.from_env()
    assert (settings.doc_deadline, settings.slot_deadline) == (7.5, 90.0)
    assert FetchSettings().doc_deadline <= 120
    for bad in ("soon", "0", "-3", "nan"):
        monkeypatch.setenv("DEADZONE_DOC_DEADLINE", bad)
        with pytest.raises(FetchError, match="DEADZONE_DOC_DEADLINE"):
            FetchSettings.from_env()


# ── defect 6: the size cap holds while decoding ─────────────────────────────


def gzip_bomb(expanded: int, layers: int = 2) -> bytes:
    """`expanded` zero bytes, gzip'ed `layers` times, without ever holding the expanded bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    data = b"".join(compressor.compress(block) for _ in range(expanded >> 20)) + compressor.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


def test_a_double_gzip_bomb_is_refused_without_expanding_it(docs_server, client):
    bomb = gzip_bomb(256 << 20)  # 256 MiB of zeros, a few KB on the wire
    assert len(bomb) < 64 << 10
    docs_server.faults.body(README, bomb, headers={"Content-Encoding": "gzip, gzip"})
    settings = dataclasses.replace(FAST, max_bytes=1 << 20)
    tracemalloc.start()
    try:
        result = fetch_one(README, client, settings, no_sleep)  # in this thread: tracemalloc sees it
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not result.ok and "larger than 1048576 bytes" in result.reason
    assert peak < 8 << 20, f"decoding took {peak >> 20} MiB for a 1 MiB cap"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip, gzip", "identity"])
def test_compressed_documents_still_arrive_intact(docs_server, client, encoding):
    raw = docs_server.file_bytes(README)
    wire = {"gzip": gzip.compress(raw), "deflate": zlib.compress(raw), "gzip, gzip": gzip.compress(gzip.compress(raw)),
            "identity": raw}[encoding]
    docs_server.faults.body(README, wire, headers={"Content-Encoding": encoding})
    [result] = fetch_all([README], client, FAST, sleep=no_sleep)
    assert result.ok and result.sha256 == docs_server.sha256_of(README) and result.bytes == len(raw)


def test_an_unknown_content_encoding_is_a_clear_drop(docs_server, client):
    docs_server.faults.body(README, b"\x00\x01", headers={"Content-Encoding": "compress"})
    [result] = fetch_all([README], client, FAST, sleep=no_sleep)
    assert not result.ok and "Content-Encoding 'compress' is not supported" in result.reason


# ── defect 7: redirects ─────────────────────────────────────────────────────


@pytest.mark.parametrize("location", ["http://169.254.169.254/latest/meta-data/", "http://localhost:1/x",
                                      "https://evil.example/README.md", "ftp://raw.githubusercontent.com/x"])
def test_a_redirect_off_the_documents_host_is_not_followed(docs_server, client, location):
    docs_server.faults.redirect(README, location)
    [result] = fetch_all([README], client, FAST, sleep=no_sleep)
    assert not result.ok and result.final_url == location and "redirected" in result.reason
    assert result.attempts == 1 and len(docs_server.requests) == 1  # nothing else was asked


def test_a_redirect_on_the_same_host_is_followed_and_the_final_url_reported(docs_server, client):
    docs_server.faults.redirect(README, "/knights-analytics/hugot/v0.7.2/contrib.md", status=301)
    [result] = fetch_all([README], client, FAST, sleep=no_sleep)
    assert result.ok and result.sha256 == docs_server.sha256_of(CONTRIB)
    assert result.final_url == CONTRIB and result.report()["final_url"] == CONTRIB
    assert fetch.describe_drop({**result.report(), "reason": "x"}).endswith(f"(redirected to {CONTRIB}): x")


def test_the_redirect_rule():
    gh = "https://raw.githubusercontent.com/a/b/v1/README.md"
    assert redirect_problem(gh, "https://raw.githubusercontent.com/a/b/v1/docs/README.md") is None
    assert redirect_problem(gh, "https://github.com/a/b/raw/v1/README.md") is None  # GitHub's own hosts
    assert redirect_problem(gh, "https://objects.githubusercontent.com/x") is None
    assert "https to plain http" in redirect_problem(gh, "http://raw.githubusercontent.com/a")
    assert "credentials" in redirect_problem(gh, "https://u:p@raw.githubusercontent.com/a")
    assert "another host" in redirect_problem("https://docs.example/a", "https://docs.example.evil/a")
    mirror = [("https://raw.githubusercontent.com/", "http://127.0.0.1:9/")]
    assert redirect_problem(gh, "http://127.0.0.1:9/a/b/v1/x.md", mirror) is None  # DEADZONE_URL_REWRITE's hosts


# ── messages: an unreachable network fails fast, and says so once ───────────


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_network_fails_fast_after_two_slots_and_says_so_once():
    port = closed_port()  # nothing listens: every connection is refused, as offline
    slots = [[f"https://raw.githubusercontent.com/o/p{n}/v1/{name}.md" for name in ("a", "b", "c")] for n in range(4)]
    with make_client(FAST, rewrite=[("https://raw.githubusercontent.com/", f"http://127.0.0.1:{port}/")],
                     token="") as offline:
        first, second, third, fourth = (fetch_all(urls, offline, FAST, sleep=no_sleep) for urls in slots)
    assert all(r.unreachable and r.retryable and r.attempts == FAST.retries + 1 for r in first + second)
    assert fetch.network_looks_unreachable()
    for later in (third, fourth):  # one probe, then nothing waits out its retries
        assert later[0].attempts == 1 and all(r.attempts == 0 and r.reason.startswith("not tried") for r in later[1:])
    assert fetch.offline_hint(first) == fetch.OFFLINE_HINT and "Running offline" in fetch.OFFLINE_HINT
    assert fetch.offline_hint(second) == "the network looks unreachable"  # said in full once


def test_a_working_network_is_never_taken_for_offline(docs_server, client):
    port = closed_port()
    with make_client(FAST, rewrite=[("https://raw.githubusercontent.com/", f"http://127.0.0.1:{port}/")],
                     token="") as offline:
        fetch_all([README], offline, FAST, sleep=no_sleep)
        fetch_all([README], offline, FAST, sleep=no_sleep)
    assert fetch.network_looks_unreachable()
    [back] = fetch_all([README], client, FAST, sleep=no_sleep)  # the probe connects: a normal fetch
    assert back.ok and not fetch.network_looks_unreachable()


def test_a_drop_line_names_the_rewritten_url(monkeypatch):
    monkeypatch.setenv("DEADZONE_URL_REWRITE", "https://raw.githubusercontent.com/=http://127.0.0.1:8000/")
    line = fetch.describe_drop({"url": README, "reason": "HTTP 404 Not Found."})
    assert line == (f"{README} (fetched as http://127.0.0.1:8000/knights-analytics/hugot/v0.7.2/README.md): "
                    "HTTP 404 Not Found.")
