"""Listing actions/cache entries through the one GitHub client, against the fake GitHub on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from deadzone_build.ci.actions_cache import list_caches
from deadzone_build.errors import PlanError
from deadzone_build.publish.github import RetryPolicy
from fx_fakegithub import FAKE_REPO, FAKE_TOKEN

CACHES = "/actions/caches"


def keys(n: int, prefix: str = "deadzone-lib") -> list[str]:
    return [f"{prefix}{i:04d}-{i:064x}" for i in range(n)]


def test_walks_pages_until_a_short_page(fake_github):
    fake_github.add_caches(keys(250))
    fake_github.add_caches(["pip-linux-abc", "setup-python-xyz"])  # other caches: filtered by prefix
    entries = list_caches(FAKE_REPO, api_url=fake_github.api_url, token=FAKE_TOKEN)
    assert sorted(e.key for e in entries) == keys(250)
    assert fake_github.pages_requested(CACHES) == [1, 2, 3]
    for request in fake_github.requests:
        assert request["path"] == f"/api/v3/repos/{FAKE_REPO}/actions/caches"
        assert request["query"]["key"] == "deadzone-" and request["query"]["per_page"] == "100"
    first = next(e for e in entries if e.key == keys(1)[0])
    assert first.ref == "refs/heads/main" and first.size_in_bytes > 4096 and first.id > 1000


def test_stops_at_total_count_without_asking_an_empty_page(fake_github):
    fake_github.add_caches(keys(200))
    assert len(list_caches(FAKE_REPO, api_url=fake_github.api_url)) == 200
    assert fake_github.pages_requested(CACHES) == [1, 2]


def test_a_short_page_ends_the_walk_even_if_total_count_says_more(fake_github):
    fake_github.add_caches(keys(120))
    fake_github.total_count_override = 5000  # evictions between pages make total_count stale
    assert len(list_caches(FAKE_REPO, api_url=fake_github.api_url)) == 120
    assert fake_github.pages_requested(CACHES) == [1, 2]


def test_an_entry_shifted_onto_the_next_page_is_counted_once(fake_github):
    fake_github.add_caches(keys(100))
    fake_github.total_count_override = 101  # says a second page exists: it repeats the first page's last entry
    fake_github.caches.append(dict(fake_github.caches[-1]))
    assert len(list_caches(FAKE_REPO, api_url=fake_github.api_url)) == 100
    assert fake_github.pages_requested(CACHES) == [1, 2]


def test_no_cache_at_all_is_one_request(fake_github):
    assert list_caches(FAKE_REPO, api_url=fake_github.api_url) == []
    assert fake_github.pages_requested(CACHES) == [1]


def test_repo_token_and_api_url_come_from_the_environment(fake_github, monkeypatch):
    fake_github.add_caches(keys(3))
    monkeypatch.setenv("GITHUB_API_URL", fake_github.api_url + "/")
    monkeypatch.setenv("GITHUB_REPOSITORY", FAKE_REPO)
    monkeypatch.setenv("GH_TOKEN", f"  {FAKE_TOKEN}\n")  # a pasted secret's whitespace is stripped
    assert len(list_caches(None)) == 3
    assert [r["auth"] for r in fake_github.requests] == ["bearer"]  # one auth scheme for every GitHub call


def test_bad_credentials_is_a_clear_error_without_the_token(fake_github):
    with pytest.raises(PlanError) as err:
        list_caches(FAKE_REPO, api_url=fake_github.api_url, token="ghp_wrongTOKEN0123456789", sleep=[].append)
    message = str(err.value)
    assert "HTTP 401" in message and "actions: read" in message and f"/repos/{FAKE_REPO}/actions/caches" in message
    assert "ghp_wrongTOKEN0123456789" not in message and "ghp_wrongTOKEN0123456789" not in repr(err.value)
    assert len(fake_github.requests) == 1  # 401 is not retried


def test_server_errors_and_rate_limits_are_retried(fake_github):
    fake_github.add_caches(keys(150))
    fake_github.fail("GET", CACHES, 502)
    fake_github.fail("GET", CACHES, 429, headers={"Retry-After": "7"}, message="secondary rate limit")
    waits: list[float] = []
    assert len(list_caches(FAKE_REPO, api_url=fake_github.api_url, sleep=waits.append)) == 150
    assert waits == [1.0, 7.0]
    assert fake_github.pages_requested(CACHES) == [1, 1, 1, 2]


def test_gives_up_after_the_attempts_of_the_policy(fake_github):
    fake_github.fail("GET", CACHES, 503, times=4)
    waits: list[float] = []
    with pytest.raises(PlanError, match=r"HTTP 503 .* after 4 attempts"):
        list_caches(FAKE_REPO, api_url=fake_github.api_url, policy=RetryPolicy(attempts=4), sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0] and len(fake_github.requests) == 4


def test_unreachable_api_names_the_url():
    with socket.socket() as sock:  # bound but never listening: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(PlanError, match=rf"GET http://127\.0\.0\.1:{port}/repos/{FAKE_REPO}/actions/caches"):
            list_caches(FAKE_REPO, api_url=f"http://127.0.0.1:{port}", policy=RetryPolicy(attempts=2),
                        sleep=[].append)


def test_a_malformed_answer_is_refused(fake_github):
    fake_github.add_caches(keys(1))
    fake_github.caches[0]["id"] = "not-a-number"
    with pytest.raises(PlanError, match="malformed"):
        list_caches(FAKE_REPO, api_url=fake_github.api_url)


def test_an_answer_without_the_list_is_refused(fake_github):
    fake_github.fail("GET", CACHES, 200, message="not a cache listing")
    with pytest.raises(PlanError, match="no `actions_caches` list in the answer"):
        list_caches(FAKE_REPO, api_url=fake_github.api_url)


@pytest.mark.parametrize("repo", ["", "octo", "octo/dead zone", "https://github.com/octo/deadzone"])
def test_a_bad_repository_name_makes_no_request(fake_github, repo):
    with pytest.raises(PlanError, match="OWNER/NAME"):
        list_caches(repo, api_url=fake_github.api_url)
    assert fake_github.requests == []
