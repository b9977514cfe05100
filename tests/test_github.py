"""The GitHub client on its own: when to wait and how long, paging, settings, failures."""

from __future__ import annotations

import socket

import httpx2
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
    monkeypatch.setenv("GITHUB_TOKEN", " from-github\n")  # one lookup for every client, stripped
    assert resolve_token(None) == "from-github" and resolve_token("arg") == "arg"
    assert resolve_token("  ") == "from-github"
    monkeypatch.setenv("GITHUB_TOKEN", "")
    monkeypatch.setenv("GH_TOKEN", "   ")
    assert resolve_token(None) is None
    assert resolve_api_url(None) == "https://ghe.example/api/v3"


def test_the_client_never_shows_its_token():
    client = GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url="http://127.0.0.1:9")
    assert FAKE_TOKEN not in repr(client) and "token=set" in repr(client)


def test_every_call_authenticates_with_one_scheme(fake_github):
    client = GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url=fake_github.api_url)
    release = client.create_release("v1", draft=True)
    client.upload_asset(release, "a.txt", b"hello")
    client.list_assets(release["id"])
    client.actions_caches("deadzone-")
    assert {r["auth"] for r in fake_github.requests} == {"bearer"}


def test_directory_listing_at_a_ref(fake_github):
    fake_github.add_file("src/net/http/doc.go", b"package http\n", ref="go1.22.0")
    fake_github.add_file("src/net/http/client.go", b"package http\n// Client\n", ref="go1.22.0")
    fake_github.add_file("src/net/http/httptest/server.go", b"package httptest\n", ref="go1.22.0")
    fake_github.add_file("src/net/http/doc.go", b"package http // newer\n", ref="master")
    client = GitHubClient(FAKE_REPO, token=None, api_url=fake_github.api_url)

    listing = client.list_directory("src/net/http/", ref="go1.22.0")

    assert [(e["type"], e["name"], e["path"]) for e in listing] == [
        ("file", "client.go", "src/net/http/client.go"), ("file", "doc.go", "src/net/http/doc.go"),
        ("dir", "httptest", "src/net/http/httptest")]
    assert fake_github.requests[-1]["query"] == {"ref": "go1.22.0"}
    assert listing[1]["size"] == len(b"package http\n")


def test_directory_listing_of_a_file_or_a_missing_path_is_an_error(fake_github):
    fake_github.add_file("README.md", b"# hi\n")
    client = GitHubClient(FAKE_REPO, token=None, api_url=fake_github.api_url, sleep=[].append)
    with pytest.raises(ReleaseError, match=r"contents/README\.md at main is not a directory"):
        client.list_directory("README.md", ref="main")
    with pytest.raises(ReleaseError, match=r"GitHub found nothing at GET .*contents/nope\?ref=main: HTTP 404"):
        client.list_directory("nope", ref="main")


def test_a_ref_resolves_to_its_commit_sha(fake_github):
    sha = "0123456789abcdef0123456789abcdef01234567"
    fake_github.set_ref("v1.2.3", sha, tag=True)
    fake_github.set_ref("feature/x", "f" * 40)
    client = GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url=fake_github.api_url)
    assert client.commit_sha("v1.2.3") == sha
    assert client.commit_sha("feature/x") == "f" * 40  # a branch name with a slash
    assert client.commit_sha("no-such-ref") is None  # GitHub answers 422 "No commit found"
    assert [r["path"].rsplit("/commits/", 1)[1] for r in fake_github.requests] == ["v1.2.3", "feature/x", "no-such-ref"]


def test_tags_are_listed_across_pages(fake_github):
    for i in range(130):
        fake_github.set_ref(f"v1.{i}.0", f"{i:040x}", tag=True)
    tags = GitHubClient(FAKE_REPO, token=None, api_url=fake_github.api_url).tags()
    assert len(tags) == 130 and tags[0]["name"] == "v1.129.0" and tags[-1]["commit"]["sha"] == f"{0:040x}"
    assert fake_github.pages_requested("/tags$") == [1, 2]


def test_the_transport_is_injectable_and_rate_limits_wait_for_the_reset():
    seen: list[httpx2.Request] = []
    answers = iter([
        httpx2.Response(403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)},
                        json={"message": "API rate limit exceeded"}),
        httpx2.Response(200, json={"id": 7, "tag_name": "v9"}),
    ])

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return next(answers)

    sleeps: list[float] = []
    client = GitHubClient(FAKE_REPO, token=FAKE_TOKEN, api_url="https://ghe.example/api/v3", sleep=sleeps.append,
                          clock=lambda: NOW, transport=httpx2.MockTransport(handler))
    assert client.latest_release() == {"id": 7, "tag_name": "v9"}
    assert sleeps == [31.0]
    assert [str(r.url) for r in seen] == [f"https://ghe.example/api/v3/repos/{FAKE_REPO}/releases/latest"] * 2
    assert seen[0].headers["authorization"] == f"Bearer {FAKE_TOKEN}"
    assert seen[0].headers["x-github-api-version"] == "2022-11-28"


def test_an_answer_that_is_not_json_is_a_clear_error():
    client = GitHubClient(FAKE_REPO, token=None, api_url="https://ghe.example",
                          transport=httpx2.MockTransport(lambda r: httpx2.Response(200, text="<html>login</html>")))
    with pytest.raises(ReleaseError, match=r"releases/latest answered HTTP 200 with a body that is not JSON"):
        client.latest_release()
