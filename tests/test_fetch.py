"""Fetching through a real HTTP server on 127.0.0.1 (tests/fx_docserver.py), faults included."""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import socket
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from deadzone_build.errors import FetchError
from deadzone_build.sources.fetch import (FetchResult, FetchSettings, fetch_all, is_github_url, make_client,
                                  parse_rewrite, rewrite_url, slot_failure)
from deadzone_build.registry.load import load_registry
from fx_docserver import BINARY_BODY, MIRROR_DIR, NON_UTF8_BODY

# A generous read timeout where the server is meant to answer (two busy cores may stall it), and
# a short one only for the tests whose server hangs on purpose.
FAST = FetchSettings(connect_timeout=2, read_timeout=10, retries=2, backoff_base=0.01,
                     max_retry_after=5, concurrency=4)
HANG = dataclasses.replace(FAST, read_timeout=0.3)
TOKEN = "ghp_s3cretTOKENvalue0123456789"
HUGOT = "https://raw.githubusercontent.com/knights-analytics/hugot/v0.7.2/"
README = HUGOT + "README.md"
CONTRIB = HUGOT + "contrib.md"
BIG = "https://raw.githubusercontent.com/casey/just/1.50.0/README.md"  # 136 KB


class Sleeps(list):
    """A `sleep` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(docs_server):
    with make_client(FAST, rewrite=parse_rewrite(docs_server.rewrite), token="") as client:
        yield client


@pytest.fixture
def impatient_client(docs_server):
    """A client whose read timeout (0.3 s) the hang faults outlast."""
    with make_client(HANG, rewrite=parse_rewrite(docs_server.rewrite), token="") as client:
        yield client


def fetch(urls, client, sleeps, settings=FAST):
    return fetch_all(urls, client, settings, sleep=sleeps)


def assert_ok(result: FetchResult, docs_server) -> None:
    assert result.ok, result.reason
    assert result.sha256 == docs_server.sha256_of(result.url)
    assert result.reason is None


# ── the happy path ───────────────────────────────────────────────────────────


def test_fetches_a_fixture_library_in_order_with_the_mirrored_bytes(docs_server, client, sleeps):
    slot = max(load_registry(MIRROR_DIR / "registry.yaml"), key=lambda slot: len(slot.urls))
    seen: list[str] = []
    results = fetch_all(slot.urls, client, FAST, on_result=lambda result: seen.append(result.url), sleep=sleeps)

    assert [result.url for result in results] == list(slot.urls)
    assert sorted(seen) == sorted(slot.urls)
    for result in results:
        assert_ok(result, docs_server)
        raw = docs_server.file_bytes(result.url)
        assert result.bytes == len(raw) and result.http_status == 200 and result.attempts == 1
        assert result.text == raw.decode("utf-8-sig").replace("\r\n", "\n")
    assert sleeps == []
    assert slot_failure(results) is None


def test_report_has_no_text_and_keeps_the_original_url(docs_server, client, sleeps):
    [result] = fetch([README], client, sleeps)
    assert result.report() == {"url": README, "status": "ok", "http_status": 200,
                               "bytes": len(docs_server.file_bytes(README)),
                               "sha256": docs_server.sha256_of(README), "reason": None}
    response = client.get(README)
    assert str(response.request.url) == README  # the rewrite stays inside the transport


def test_bom_and_crlf_are_normalised_and_the_hash_is_of_the_raw_body(docs_server, client, sleeps):
    raw = b"\xef\xbb\xbf# Title\r\n\r\nline one\r\nline two\r\n"
    docs_server.faults.body(README, raw)
    [result] = fetch([README], client, sleeps)
    assert result.ok and result.text == "# Title\n\nline one\nline two\n"
    assert result.sha256 == hashlib.sha256(raw).hexdigest() and result.bytes == len(raw)


def test_an_edited_document_is_fetched_as_edited(docs_server, client, sleeps):
    docs_server.faults.body(CONTRIB, "# Contributing\n\nEdited.\n")
    readme, contrib = fetch([README, CONTRIB], client, sleeps)
    assert_ok(readme, docs_server)
    assert contrib.ok and contrib.text == "# Contributing\n\nEdited.\n"
    assert contrib.sha256 != docs_server.sha256_of(CONTRIB)


def test_an_empty_url_list_fetches_nothing(client, sleeps):
    assert fetch([], client, sleeps) == []
    assert "no URLs" in slot_failure([])


# ── retries ──────────────────────────────────────────────────────────────────


def test_500_twice_then_200_succeeds_after_backing_off(docs_server, client, sleeps):
    docs_server.faults.status(README, 500, times=2)
    [result] = fetch([README], client, sleeps)
    assert_ok(result, docs_server)
    assert result.attempts == 3 and len(docs_server.requests_for(README)) == 3
    assert sleeps == [0.01, 0.02]  # exponential: base, 2 * base


def test_a_5xx_that_persists_is_dropped_after_every_retry(docs_server, client, sleeps):
    docs_server.faults.status(README, 503)
    readme, contrib = fetch([README, CONTRIB], client, sleeps)
    assert not readme.ok and readme.http_status == 503 and readme.attempts == 3
    assert "HTTP 503 Service Unavailable" in readme.reason and "3 attempts" in readme.reason
    assert len(docs_server.requests_for(README)) == 3
    assert_ok(contrib, docs_server)


def test_a_hang_past_the_read_timeout_is_dropped_and_reported(docs_server, impatient_client, sleeps):
    docs_server.faults.hang(README, seconds=10)
    readme, contrib = fetch([README, CONTRIB], impatient_client, sleeps, HANG)
    assert not readme.ok and readme.http_status is None
    assert "timed out" in readme.reason and "0.3 s" in readme.reason
    assert readme.report()["status"] == "dropped"
    assert len(docs_server.requests_for(README)) == 3
    assert_ok(contrib, docs_server)


def test_a_hang_once_then_an_answer_succeeds(docs_server, impatient_client, sleeps):
    docs_server.faults.hang(README, seconds=10, times=1)
    [result] = fetch([README], impatient_client, sleeps, HANG)
    assert_ok(result, docs_server)
    assert result.attempts == 2


def test_a_truncated_body_is_retried(docs_server, client, sleeps):
    docs_server.faults.truncate(BIG, times=1)
    [result] = fetch([BIG], client, sleeps)
    assert_ok(result, docs_server)
    assert result.attempts == 2 and sleeps == [0.01]


def test_a_body_that_keeps_truncating_is_dropped(docs_server, client, sleeps):
    docs_server.faults.truncate(BIG)
    [result] = fetch([BIG], client, sleeps)
    assert not result.ok and result.text is None and result.sha256 is None
    assert "broke off" in result.reason and "3 attempts" in result.reason
    assert len(docs_server.requests_for(BIG)) == 3


def test_a_refused_connection_is_retried_then_dropped(sleeps):
    with socket.socket() as probe:  # bound but never listening: refused, and no other test can take the port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        rewrite = [("https://raw.githubusercontent.com/", f"http://127.0.0.1:{port}/")]
        with make_client(FAST, rewrite=rewrite, token="") as client:
            [result] = fetch([README], client, sleeps)
    assert not result.ok and "network error" in result.reason and result.attempts == 3
    assert sleeps == [0.01, 0.02]


@pytest.mark.parametrize("host", ["raw.githubusercontent..com", "a" * 64 + ".example", "xn--.example"])
def test_a_malformed_host_is_dropped_and_the_rest_fetched(docs_server, client, sleeps, host):
    """The registry refuses the first two (an empty or over-long label); whatever reaches the fetcher costs
    one document, not the slot."""
    bad = f"https://{host}/acme/widgets/main/README.md"
    readme, broken = fetch([README, bad], client, sleeps)
    assert readme.ok
    assert not broken.ok and "cannot request this URL" in broken.reason and broken.attempts == 1
    assert sleeps == []


# ── Retry-After ──────────────────────────────────────────────────────────────


def test_429_waits_as_long_as_retry_after_says(docs_server, client, sleeps):
    docs_server.faults.status(README, 429, times=1, retry_after="3")
    [result] = fetch([README], client, sleeps)
    assert_ok(result, docs_server)
    assert sleeps == [3.0] and result.attempts == 2


def test_retry_after_is_capped(docs_server, client, sleeps):
    docs_server.faults.status(README, 429, times=1, retry_after="3600")
    future = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(hours=2), usegmt=True)
    docs_server.faults.status(README, 503, times=1, retry_after=future)
    [result] = fetch([README], client, sleeps)
    assert result.ok and sleeps == [FAST.max_retry_after, FAST.max_retry_after]


def test_a_403_rate_limit_is_retried_but_a_plain_403_is_not(docs_server, client, sleeps):
    docs_server.faults.status(README, 403, times=1, headers={"X-RateLimit-Remaining": "0"})
    docs_server.faults.status(CONTRIB, 403)
    readme, contrib = fetch([README, CONTRIB], client, sleeps)
    assert_ok(readme, docs_server)
    assert not contrib.ok and contrib.http_status == 403 and "GITHUB_TOKEN" in contrib.reason
    assert len(docs_server.requests_for(CONTRIB)) == 1


def test_an_exhausted_rate_limit_that_resets_too_late_is_dropped_at_once(docs_server, client, sleeps):
    reset = str(int(time.time()) + 3600)  # an hour away: past max_retry_after, so waiting cannot help
    docs_server.faults.status(README, 403, times=1, headers={"X-RateLimit-Remaining": "0",
                                                             "X-RateLimit-Reset": reset})
    [result] = fetch([README], client, sleeps)
    assert not result.ok and result.http_status == 403 and "resets in" in result.reason
    assert sleeps == [] and len(docs_server.requests_for(README)) == 1


# ── dropped at once ──────────────────────────────────────────────────────────


@pytest.mark.parametrize("status", [404, 410])
def test_a_missing_document_is_dropped_at_once_and_the_rest_is_fetched(docs_server, client, sleeps, status):
    urls = docs_server.urls("https://raw.githubusercontent.com/casey/just/1.49.0/")
    docs_server.faults.status(urls[1], status)
    results = fetch(urls, client, sleeps)
    assert [result.ok for result in results] == [True, False, True]
    dropped = results[1]
    assert dropped.http_status == status and dropped.attempts == 1 and sleeps == []
    assert f"HTTP {status}" in dropped.reason and "registry" in dropped.reason
    assert dropped.report() == {"url": urls[1], "status": "dropped", "http_status": status, "bytes": 0,
                                "sha256": None, "reason": dropped.reason}
    assert len(docs_server.requests_for(urls[1])) == 1
    assert slot_failure(results) is None


def test_a_url_the_mirror_lacks_is_a_404(docs_server, client, sleeps):
    missing = HUGOT + "docs/missing.md"
    [result] = fetch([missing], client, sleeps)
    assert not result.ok and result.http_status == 404 and result.attempts == 1


def test_binary_and_non_utf8_bodies_are_reported_not_crashed_on(docs_server, client, sleeps):
    docs_server.faults.binary(README)
    docs_server.faults.non_utf8(CONTRIB)
    readme, contrib = fetch([README, CONTRIB], client, sleeps)
    assert not readme.ok and "binary" in readme.reason and "NUL byte at offset 8" in readme.reason
    assert readme.sha256 == hashlib.sha256(BINARY_BODY).hexdigest() and readme.bytes == len(BINARY_BODY)
    assert not contrib.ok and "not valid UTF-8" in contrib.reason and "0xe9" in contrib.reason
    assert contrib.bytes == len(NON_UTF8_BODY) and contrib.text is None
    assert readme.attempts == contrib.attempts == 1


def test_utf16_is_reported_as_such(docs_server, client, sleeps):
    docs_server.faults.body(README, "\ufeff# Title\n".encode("utf-16-le"))
    [result] = fetch([README], client, sleeps)
    assert not result.ok and "UTF-16" in result.reason


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_cap_is_dropped(docs_server, client, sleeps, chunked):
    small = FetchSettings(**{**FAST.__dict__, "max_bytes": 100_000})
    docs_server.faults.body(BIG, docs_server.file_bytes(BIG), chunked=chunked)
    [result] = fetch([BIG], client, sleeps, settings=small)
    assert not result.ok and result.reason.startswith("larger than 100000 bytes")
    assert result.bytes == 0 and result.sha256 is None and result.attempts == 1


def test_a_body_exactly_at_the_cap_is_kept(docs_server, client, sleeps):
    size = len(docs_server.file_bytes(BIG))
    exact = FetchSettings(**{**FAST.__dict__, "max_bytes": size})
    docs_server.faults.body(BIG, docs_server.file_bytes(BIG), chunked=True)
    [result] = fetch([BIG], client, sleeps, settings=exact)
    assert_ok(result, docs_server)


@pytest.mark.parametrize("url", ["ftp://example.org/doc.md", "not a url", "http://", "https://[::1/a"])
def test_a_url_that_cannot_be_requested_is_dropped(client, sleeps, url):
    [result] = fetch([url], client, sleeps)
    assert not result.ok and result.url == url and "registry" in result.reason and sleeps == []


# ── the GitHub token ─────────────────────────────────────────────────────────


def test_the_token_goes_to_github_urls_only(docs_server, sleeps):
    lookalikes = ["https://docs.example.org/", "https://github.com.evil.example/",
                  "https://evilgithubusercontent.com/", "http://raw.githubusercontent.com/"]
    rewrite = parse_rewrite(";".join(f"{prefix}={docs_server.base_url}" for prefix in lookalikes))
    rewrite += parse_rewrite(docs_server.rewrite)
    path = "knights-analytics/hugot/v0.7.2/README.md"
    with make_client(FAST, rewrite=rewrite, token=TOKEN) as client:
        results = fetch([README] + [prefix + path for prefix in lookalikes] + [docs_server.url_for(README)],
                        client, sleeps)
    assert all(result.ok for result in results)
    sent = [request.headers.get("authorization") for request in docs_server.requests_for(README)]
    assert sent.count(f"Bearer {TOKEN}") == 1 and sent.count(None) == len(lookalikes) + 1
    assert all(request.headers["host"] == f"127.0.0.1:{docs_server.port}"
               for request in docs_server.requests_for(README))


def test_is_github_url():
    for url in ("https://github.com/a/b", "https://api.github.com/repos", "https://raw.githubusercontent.com/a",
                "https://objects.githubusercontent.com/x", "https://RAW.GitHubUserContent.com/a"):
        assert is_github_url(url), url
    for url in ("http://github.com/a", "https://gist.example.com/", "https://github.com.evil.example/",
                "https://notgithub.com/", "https://githubusercontent.com.evil/"):
        assert not is_github_url(url), url


def test_the_token_comes_from_github_token_then_gh_token(docs_server, monkeypatch, sleeps):
    monkeypatch.setenv("GH_TOKEN", "from-gh")
    monkeypatch.setenv("GITHUB_TOKEN", f"{TOKEN}\n")  # settings.github_token strips it
    docs_server.set_rewrite_env(monkeypatch)
    with make_client(FAST) as client:  # rewrite and token both from the environment
        [result] = fetch([README], client, sleeps)
    assert_ok(result, docs_server)
    assert docs_server.requests_for(README)[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_the_token_never_appears_in_reasons_or_exceptions(docs_server, sleeps):
    faults = docs_server.faults
    urls = docs_server.urls("https://raw.githubusercontent.com/spf13/cobra/v1.10.2/")[:7]
    faults.status(urls[0], 500)
    faults.hang(urls[1])
    faults.truncate(urls[2])
    faults.status(urls[3], 403)
    faults.binary(urls[4])
    faults.non_utf8(urls[5])
    faults.status(urls[6], 401)
    with make_client(HANG, rewrite=parse_rewrite(docs_server.rewrite), token=TOKEN) as client:
        results = fetch(urls, client, sleeps, HANG)
        assert not any(result.ok for result in results)
        assert all(result.reason and TOKEN not in repr(result) for result in results)
        assert TOKEN not in repr(client._transport)
    assert all(request.headers["authorization"] == f"Bearer {TOKEN}" for request in docs_server.requests)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = [("https://raw.githubusercontent.com/", f"http://127.0.0.1:{port}/")]
    with make_client(FAST, rewrite=closed, token=TOKEN) as client, pytest.raises(httpx.ConnectError) as caught:
        client.get(README)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
    assert "authorization" not in caught.value.request.headers
    assert str(caught.value.request.url) == README


# ── DEADZONE_URL_REWRITE ─────────────────────────────────────────────────────


def test_parse_rewrite_reads_several_pairs():
    value = " https://raw.githubusercontent.com/=http://127.0.0.1:8000/ ; https://a.example/x/=http://b.example/y/ ;"
    assert parse_rewrite(value) == [("https://raw.githubusercontent.com/", "http://127.0.0.1:8000/"),
                                    ("https://a.example/x/", "http://b.example/y/")]
    assert parse_rewrite("") == []


def test_the_longest_matching_prefix_wins():
    rewrite = [("https://a.example/", "http://one/"), ("https://a.example/docs/", "http://two/")]
    assert rewrite_url("https://a.example/docs/x.md", rewrite) == "http://two/x.md"
    assert rewrite_url("https://a.example/x.md", rewrite) == "http://one/x.md"
    assert rewrite_url("https://b.example/x.md", rewrite) == "https://b.example/x.md"


@pytest.mark.parametrize("value, problem", [
    ("https://raw.githubusercontent.com/", "no '='"),
    ("=http://127.0.0.1:8000/", "prefix ''"),
    ("https://raw.githubusercontent.com/=", "replacement ''"),
    ("raw.githubusercontent.com=http://127.0.0.1:8000/", "prefix 'raw.githubusercontent.com'"),
    ("https://a.example/=ftp://mirror/", "replacement 'ftp://mirror/'"),
    ("https://ok.example/=http://127.0.0.1/;https://b.example/ http://x/", "no '='"),
])
def test_a_bad_rewrite_is_a_clear_error(value, problem, monkeypatch):
    with pytest.raises(FetchError) as caught:
        parse_rewrite(value)
    message = str(caught.value)
    assert "DEADZONE_URL_REWRITE" in message and problem in message
    assert "PREFIX=REPLACEMENT" in message and "https://raw.githubusercontent.com/=http://127.0.0.1:8000/" in message
    bad_pair = value.split(";")[-1].strip()
    assert repr(bad_pair) in message

    monkeypatch.setenv("DEADZONE_URL_REWRITE", value)
    with pytest.raises(FetchError):
        make_client(FAST)


# ── settings and policy ──────────────────────────────────────────────────────


def test_bad_settings_are_a_clear_error():
    with pytest.raises(FetchError, match="invalid read_timeout, concurrency"):
        FetchSettings(read_timeout=0, concurrency=0)


def _result(url: str, ok: bool) -> FetchResult:
    return FetchResult(url, ok=ok, reason=None if ok else f"HTTP 404 Not Found for {url}")


def test_the_slot_fails_only_when_every_url_or_more_than_half_failed():
    assert slot_failure([_result("u1", True), _result("u2", False)]) is None  # exactly half
    message = slot_failure([_result("u1", False), _result("u2", False), _result("u3", True)])
    assert message.startswith("2 of 3 URLs could not be fetched (more than 50% of the URLs)")
    assert "u1 (HTTP 404 Not Found for u1)" in message and "u2" in message and "u3" not in message
    assert "every URL" in slot_failure([_result("u1", False)])
    assert slot_failure([_result("u1", True)]) is None
    assert slot_failure([_result("u1", False), _result("u2", True)], max_drop_fraction=0.25) is not None
    # max_drop_fraction=1 tolerates any loss but a total one
    assert slot_failure([_result("u1", False), _result("u2", True)], max_drop_fraction=1) is None


def test_a_long_failure_message_lists_ten_urls():
    message = slot_failure([_result(f"https://x.example/{n}", False) for n in range(25)])
    assert "https://x.example/9 " in message and "https://x.example/10 " not in message
    assert "and 15 more" in message
