"""The GitHub client on its own: when to wait and how long, paging, settings, failures."""

from __future__ import annotations

import socket

import pytest

from deadzone_build.errors import ReleaseError
from deadzone_build.publish.github import (GitHubClient, RetryPolicy, resolve_api_url, resolve_repo, resolve_token,
                                   retry_delay)
from fx_fakegithub import FAKE_REPO, FAKE_TOKEN

POLICY = RetryPolicy()
NOW = 1_750_000_000.0


@pytest.mark.parametrize("status, headers, message, attempt, expected", [
    (500, {}, "", 1, 1.0),
    (502, {}, "", 3, 4.0),
    (503, {}, "", 10, 60.0),  # capped
    (503, {"retry-after": "5"}, "", 1, 5.0),
    (429, {"retry-after": "7"}, "", 1, 7.0),
    (429, {"retry-after": "Wed, 11 Jun 2025 15:07:00 GMT"}, "", 1, 20.0),  # HTTP-date form
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)}, "API rate limit exceeded", 1, 31.0),
    (429, {}, "", 1, 60.0),  # secondary limit, no header: at least a minute ...
    (403, {}, "You have exceeded a secondary rate limit", 2, 120.0),  # ... growing each time
    (403, {}, "Resource not accessible by integration", 1, None),
    (401, {}, "Bad credentials", 1, None),
    (404, {}, "Not Found", 1, None),
    (422, {}, "Validation Failed", 1, None),
])
def test_retry_delay_follows_githubs_guidance(status, headers, message, attempt, expected):
    now = 1_749_654_400.0 if "Jun 2025" in headers.get("retry-after", "") else NOW  # 15:06:40 GMT
    assert retry_delay(status, headers, message, attempt, POLICY, now) == expected


def test_a_rate_limit_longer_than_max_wait_fails_at_once(fake_github):
    reset = str(int(NOW) + 3600)
    fake_github.fail("GET", "/releases/latest", 403, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
                     message="API rate limit exceeded")
    sleeps: list[float] = []
    client = GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url=fake_github.api_url, sleep=sleeps.append,
                          clock=lambda: NOW)

    with pytest.raises(ReleaseError, match=r"rate limit blocks GET .*releases/latest for another 3601s"):
        client.latest_release()
    assert sleeps == []


def test_a_refused_connection_is_retried_then_reported():
    with socket.socket() as sock:  # bound but never listening: refused, and no other test can take the port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sleeps: list[float] = []
        lines: list[str] = []
        client = GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url=f"http://127.0.0.1:{port}", sleep=sleeps.append,
                              log=lines.append, policy=RetryPolicy(attempts=3))

        with pytest.raises(ReleaseError, match=r"kept failing GET .* \(connection failed: ConnectError\) after 3"):
            client.latest_release()
    assert sleeps == [1.0, 2.0] and len(lines) == 2


def test_assets_are_listed_across_pages(fake_github):
    fake_github.releases[1] = {"id": 1, "tag_name": "v1", "name": "v1", "draft": False, "prerelease": False}
    for i in range(150):
        fake_github.add_asset("v1", f"file-{i:03}", b"x")
    client = GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url=fake_github.api_url)

    names = [a["name"] for a in client.list_assets(1)]

    assert names == [f"file-{i:03}" for i in range(150)]
    assert fake_github.count("GET", "/releases/1/assets") == 2


def test_two_drafts_for_one_tag_are_an_error_not_a_guess(fake_github):
    for rid in (1, 2):
        fake_github.releases[rid] = {"id": rid, "tag_name": "v1", "name": "v1", "draft": True, "prerelease": False}
    client = GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url=fake_github.api_url)

    with pytest.raises(ReleaseError, match=r"2 draft releases for tag v1 \(ids 2, 1\); delete the extra"):
        client.release_by_tag("v1")


def test_anonymous_reads_do_not_see_drafts(fake_github):
    fake_github.releases[1] = {"id": 1, "tag_name": "v1", "name": "v1", "draft": True, "prerelease": False}
    assert GitHubClient(FAKE_REPO, token=None, api_url=fake_github.api_url).release_by_tag("v1") is None
    assert GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url=fake_github.api_url).release_by_tag("v1")["id"] == 1


def test_settings_come_from_arguments_then_the_environment(monkeypatch):
    with pytest.raises(ReleaseError, match="pass --repo OWNER/NAME or set GITHUB_REPOSITORY"):
        resolve_repo(None)
    assert resolve_token(None) is None
    assert resolve_api_url(None) == "https://api.github.com"
    monkeypatch.setenv("GITHUB_REPOSITORY", "env/repo")
    monkeypatch.setenv("GH_TOKEN", "from-gh")
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example/api/v3/")
    assert resolve_repo(None) == "env/repo" and resolve_repo("arg/repo") == "arg/repo"
    assert resolve_token(None) == "from-gh"
    monkeypatch.setenv("GITHUB_TOKEN", "from-github")
    assert resolve_token(None) == "from-github" and resolve_token("arg") == "arg"
    assert resolve_api_url(None) == "https://ghe.example/api/v3"


def test_the_client_never_shows_its_token():
    client = GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url="http://127.0.0.1:9")
    assert FAKE_TOKEN not in repr(client) and "token=set" in repr(client)
