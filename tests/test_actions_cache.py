"""Listing actions/cache entries: hand-walked pages against a real local server."""

from __future__ import annotations

import socket

import pytest

from deadzone_build.ci.actions_cache import list_caches
from deadzone_build.errors import PlanError

REPO = "octo/deadzone"
TOKEN = "ghs_s3cr3tTOKENvalue0123456789"


def keys(n: int, prefix: str = "deadzone-lib") -> list[str]:
    return [f"{prefix}{i:04d}-{i:064x}" for i in range(n)]


def no_sleep(waits: list[float]):
    return waits.append


def test_walks_pages_until_a_short_page(caches_api):
    caches_api.add_caches(keys(250))
    caches_api.add_caches(["pip-linux-abc", "setup-python-xyz"])  # other caches: filtered by prefix
    entries = list_caches(REPO, api_url=caches_api.url, token=TOKEN)
    assert sorted(e.key for e in entries) == keys(250)
    assert caches_api.pages_requested() == [1, 2, 3]
    for path, query, _ in caches_api.requests:
        assert path == f"/repos/{REPO}/actions/caches"
        assert query["key"] == "deadzone-" and query["per_page"] == "100"
    first = next(e for e in entries if e.key == keys(1)[0])
    assert first.ref == "refs/heads/main" and first.size_in_bytes > 4096 and first.id > 1000


def test_stops_at_total_count_without_asking_an_empty_page(caches_api):
    caches_api.add_caches(keys(200))
    assert len(list_caches(REPO, api_url=caches_api.url)) == 200
    assert caches_api.pages_requested() == [1, 2]


def test_a_short_page_ends_the_walk_even_if_total_count_says_more(caches_api):
    caches_api.add_caches(keys(120))
    caches_api.total_count_override = 5000  # evictions between pages make total_count stale
    assert len(list_caches(REPO, api_url=caches_api.url)) == 120
    assert caches_api.pages_requested() == [1, 2]


def test_no_cache_at_all_is_one_request(caches_api):
    assert list_caches(REPO, api_url=caches_api.url) == []
    assert caches_api.pages_requested() == [1]


def test_token_and_api_url_come_from_the_environment(caches_api, monkeypatch):
    caches_api.add_caches(keys(3))
    caches_api.require_token = TOKEN
    monkeypatch.setenv("GITHUB_API_URL", caches_api.url + "/")
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    assert len(list_caches(REPO)) == 3
    assert caches_api.requests[0][2]["authorization"] == f"Bearer {TOKEN}"


def test_bad_credentials_is_a_clear_error_without_the_token(caches_api):
    caches_api.require_token = "the-right-one"
    with pytest.raises(PlanError) as err:
        list_caches(REPO, api_url=caches_api.url, token=TOKEN, sleep=no_sleep([]))
    message = str(err.value)
    assert "HTTP 401" in message and "actions: read" in message and f"/repos/{REPO}/actions/caches" in message
    assert TOKEN not in message and TOKEN not in repr(err.value)
    assert len(caches_api.requests) == 1  # 401 is not retried


def test_server_errors_and_rate_limits_are_retried(caches_api):
    caches_api.add_caches(keys(150))
    caches_api.fail(502)
    caches_api.fail(429, headers={"Retry-After": "7"})
    waits: list[float] = []
    assert len(list_caches(REPO, api_url=caches_api.url, sleep=no_sleep(waits))) == 150
    assert waits == [1.0, 7.0]
    assert caches_api.pages_requested() == [1, 1, 1, 2]


def test_gives_up_after_the_retries(caches_api):
    caches_api.fail(503, times=4)
    waits: list[float] = []
    with pytest.raises(PlanError, match="HTTP 503"):
        list_caches(REPO, api_url=caches_api.url, retries=3, sleep=no_sleep(waits))
    assert len(waits) == 3 and len(caches_api.requests) == 4


def test_unreachable_api_names_the_url():
    with socket.socket() as sock:  # bound but never listening: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(PlanError, match=rf"GET http://127\.0\.0\.1:{port}/repos/octo/deadzone/actions/caches"):
            list_caches(REPO, api_url=f"http://127.0.0.1:{port}", retries=1, sleep=no_sleep([]))


def test_a_malformed_answer_is_refused(caches_api):
    caches_api.add_caches(keys(1))
    caches_api.caches[0]["id"] = "not-a-number"
    with pytest.raises(PlanError, match="malformed"):
        list_caches(REPO, api_url=caches_api.url)


@pytest.mark.parametrize("repo", ["", "octo", "octo/dead zone", "https://github.com/octo/deadzone"])
def test_a_bad_repository_name_makes_no_request(caches_api, repo):
    with pytest.raises(PlanError, match="OWNER/NAME"):
        list_caches(repo, api_url=caches_api.url)
    assert caches_api.requests == []
