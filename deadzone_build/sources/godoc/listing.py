"""The two godoc URL shapes and the GitHub Contents API listing.

    parse_url(url) -> ContentsURL | ProxyURL     (a ScrapeError for anything else)
    list_directory(url, client, settings)        the Contents API call (one function: it can move
                                                 onto the shared GitHub client unchanged)

(a) `https://api.github.com/repos/<owner>/<repo>/contents/<dir>?ref=<ref>`: a JSON array of
    entries (name, path, type, size, sha, download_url); the package is its `type: file`
    entries named `*.go`, not `*_test.go` (not recursive), each fetched from `download_url`.
    `golang/go`'s `src/<pkg>` is the standard library package `<pkg>`; any other repository's
    `<dir>` is `github.com/<owner>/<repo>/<dir>`.
(b) `https://proxy.golang.org/<escaped module>/@v/<version>.zip`: a module zip (proxy.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from deadzone_build.errors import ScrapeError
from deadzone_build.sources import fetch

_CONTENTS = re.compile(r"/repos/([^/]+)/([^/]+)/contents(?:/(.*))?$")
_PROXY = re.compile(r"^/(.+)/@v/([^/]+)\.zip$")


@dataclass(frozen=True)
class ContentsURL:
    url: str
    owner: str
    repo: str
    path: str
    ref: str

    @property
    def import_path(self) -> str:
        if (self.owner, self.repo) == ("golang", "go") and (self.path == "src" or self.path.startswith("src/")):
            return self.path[4:]
        return "/".join(p for p in (f"github.com/{self.owner}/{self.repo}", self.path) if p)


@dataclass(frozen=True)
class ProxyURL:
    url: str
    base: str  # scheme://host[/prefix] of the proxy
    module: str  # unescaped module path
    version: str


def unescape_module(escaped: str) -> str:
    """The module proxy's case encoding: `!x` is `X` (github.com/!azure → github.com/Azure)."""
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), escaped)


def escape_module(path: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), path)


def parse_url(url: str, label: str) -> ContentsURL | ProxyURL:
    parts = urlsplit(url)
    contents = _CONTENTS.match(parts.path)
    if parts.netloc == "api.github.com" and contents:
        ref = parse_qs(parts.query).get("ref", [""])[0]
        return ContentsURL(url, contents.group(1), contents.group(2), unquote(contents.group(3) or "").strip("/"), ref)
    proxy = _PROXY.match(parts.path)
    if proxy:
        base = f"{parts.scheme}://{parts.netloc}"
        return ProxyURL(url, base, unescape_module(unquote(proxy.group(1))), unquote(proxy.group(2)))
    raise ScrapeError(f"{label}: {url} is not a godoc URL; use https://api.github.com/repos/<owner>/<repo>/"
                      "contents/<dir>?ref={ref} (a package directory) or https://proxy.golang.org/<module>/"
                      "@v/<version>.zip (a module), then rebuild.")


def list_directory(target: ContentsURL, client: httpx.Client, settings: fetch.FetchSettings,
                   label: str) -> tuple[fetch.FetchResult, list[dict[str, Any]]]:
    """The Contents API listing of `target` (its fetch result and its `*.go` file entries).

    A missing directory (404) is "not found"; an exhausted rate limit is retried after its reset
    when that is within the fetch settings' `max_retry_after`, else reported with what to do.
    """
    result = fetch.fetch_one(target.url, client, settings)
    where = f"{label}: {target.url}"
    if not result.ok:
        if result.http_status == 404:
            raise ScrapeError(f"{where}: Go package not found (HTTP 404: no directory {target.path!r} in "
                              f"{target.owner}/{target.repo} at ref {target.ref or 'default'}). Fix the URL "
                              "or ref, or remove the entry.")
        if result.http_status == 403:
            raise ScrapeError(f"{where}: the GitHub Contents API refused the listing ({result.reason}) "
                              "Anonymous requests get 60 per hour; set GITHUB_TOKEN (5,000 per hour) "
                              "and retry.")
        raise ScrapeError(f"{where}: cannot list the package directory: {result.reason}")
    try:
        entries = json.loads(result.text or "")
    except ValueError as exc:
        raise ScrapeError(f"{where}: the Contents API answer is not JSON ({exc}); check "
                          f"{fetch.REWRITE_ENV} points api.github.com at a Contents API.") from None
    if not isinstance(entries, list):
        raise ScrapeError(f"{where}: not a directory (the Contents API answered a single "
                          f"{entries.get('type', 'entry') if isinstance(entries, dict) else 'value'}); "
                          "point the URL at the package directory.")
    files = [e for e in entries if isinstance(e, dict) and e.get("type") == "file"
             and str(e.get("name", "")).endswith(".go") and not str(e["name"]).endswith("_test.go")
             and isinstance(e.get("download_url"), str)]
    return result, sorted(files, key=lambda e: str(e["name"]))
